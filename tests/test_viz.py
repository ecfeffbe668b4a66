"""cyclegan_lib.viz: grids, sample grids, loss curves, transform and face figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cyclegan_lib import viz  # noqa: E402
from cyclegan_lib.runs import generator_for  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_as_batch_mixes_pil_and_tensors() -> None:
    t = torch.full((2, 3, 8, 8), -1.0)
    pil = Image.new("RGB", (16, 16), (255, 255, 255))
    batch = viz.as_batch([*t, pil])
    assert batch.shape == (3, 3, 16, 16)
    assert batch[:2].max() == 0.0 and batch[2].min() == 1.0  # [-1, 1] -> [0, 1]
    assert viz.as_batch(torch.zeros(1, 3, 4, 4)).unique().tolist() == [0.5]
    with pytest.raises(ValueError):
        viz.as_batch([])


def test_grid_image_and_show_grid() -> None:
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    grid = viz.grid_image(x, nrow=3)
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)
    fig = viz.show_grid(x, nrow=3, titles=["a", "b", "c"], row_titles=["r1", "r2"], title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["a", "b", "c", "r1", "r2"]
    assert len(fig.axes) == 1


def test_sample_cells_match_the_trainers_grid(smoke_run: Path, data_root: Path) -> None:
    steps = viz.sample_steps(smoke_run)
    assert steps == sorted(steps) and steps[-1] == 8
    cells = viz.sample_cells(smoke_run)
    assert cells.shape == (6, 4, 3, 32, 32)
    assert cells.min() >= -1 and cells.max() <= 1
    real_a = viz.test_images(data_root, "A", n=4, size=32)
    # Row 0 is real A: the PNG holds the same pixels up to 8-bit rounding.
    assert (cells[0] - real_a).abs().max() < 2.5 / 127.5
    with pytest.raises(FileNotFoundError):
        viz.load_sample_grid(smoke_run, step=3)


def test_sample_figures(smoke_run: Path) -> None:
    fig = viz.sample_grid_from_run(smoke_run)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == list(viz.SAMPLE_ROWS)
    fig = viz.sample_timeline(smoke_run, max_steps=2)
    assert [t.get_text() for t in fig.axes[0].texts] == [f"step {s}" for s in
                                                         viz.sample_steps(smoke_run)[:2]]


def test_generate_and_translate_examples(smoke_run: Path, data_root: Path) -> None:
    x = viz.test_images(data_root, "A", n=3, size=48)  # resized to the run's 32 px
    y = viz.generate(smoke_run, x)
    assert y.shape == (3, 3, 32, 32) and y.abs().max() <= 1
    assert generator_for(smoke_run) is generator_for(smoke_run)  # cached
    fig = viz.translate_examples({"a": smoke_run, "b": smoke_run}, data_root, n=3)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["input (testA)", "a", "b"]


def test_smooth() -> None:
    out = viz.smooth([1, 2, 3, 4], window=2)
    assert np.allclose(out, [1, 1.5, 2.5, 3.5])
    assert np.allclose(viz.smooth([5.0], window=10), [5.0])


def test_plot_losses(smoke_run: Path) -> None:
    fig = viz.plot_losses({"one": smoke_run, "two": smoke_run})
    assert len(fig.axes) == 4
    # both runs, both directions, raw + smoothed curve
    assert len(fig.axes[0].lines) == 2 * 2 * 2
    assert fig.axes[0].get_title() == "generators: adversarial"


def test_bars() -> None:
    fig = viz.plot_bars({"x": 1.0, "y": 2.0}, xlabel="s")
    assert len(fig.axes[0].patches) == 2


def test_value_histogram_runs_to_the_largest_value() -> None:
    relu_like = torch.rand(2, 3, 8, 8) * 3.0  # a ReLU output: nothing below 0, up to 3
    fig = viz.plot_value_histogram({"real": torch.rand(2, 3, 8, 8) * 2 - 1, "relu": relu_like})
    ax = fig.axes[0]
    assert ax.get_xlim()[1] >= float(relu_like.max()) and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "relu", "above white (1)"]
    plt.close(fig)


def test_dose_response_plots_both_measures_per_generator() -> None:
    dose = [{"EV": ev, **{f"{k}{s}": v + dv for k in ("anime rate", "turned dark")
                          for s, dv in (("", 0.0), (" low", -0.1), (" high", 0.1))}}
            for ev, v in ((0.0, 0.5), (-3.0, 0.3))]
    fig = viz.plot_dose_response({"3 blocks": {"dose": dose}, "9 blocks": {"dose": dose}})
    assert [ax.get_ylabel() for ax in fig.axes] == ["anime-detector rate", "share of face turned dark"]
    assert all(ax.xaxis_inverted() for ax in fig.axes) and len(fig.axes[0].containers) == 2
    plt.close(fig)


def test_transform_steps(data_root: Path) -> None:
    first = sorted((data_root / "trainA").iterdir())[0]
    fig = viz.transform_steps(first, load_size=36, crop_size=32, seed=0, flip=True)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 5 and titles[0].startswith("1. file") and titles[3] == "4. flipped"
    # The crop box drawn on the resized image has the crop's size.
    box = fig.axes[1].patches[0]
    assert box.get_width() == 32 and box.get_height() == 32


def test_face_translations_and_comparison(smoke_run: Path, faces_root: Path,
                                          tmp_path: Path) -> None:
    photos = sorted((faces_root / "expressive").iterdir())[:2]
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (120, 80), (90, 90, 90)).save(blank)  # no face: centre square
    faces = viz.translate_faces([*photos, blank], {"3 blocks": smoke_run, "9 blocks": smoke_run})
    assert faces.found[-1] is False
    assert faces.inputs[-1].size == (80, 80)
    assert len(faces.outputs["3 blocks"]) == 3 and faces.outputs["9 blocks"][0].size == (32, 32)
    fig = viz.face_comparison(faces)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:3] == ["input crop", "3 blocks", "9 blocks"]
    assert "no face" in texts[-1]
    fig = viz.face_comparison(faces, photos_per_row=2, labels=["p", "q", "r"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:6] == ["input crop", "3 blocks", "9 blocks"] * 2
    assert texts[6:] == ["p\nq", "r\n(no face: centre crop)"]
