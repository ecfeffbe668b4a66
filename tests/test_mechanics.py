"""The teaching figures' numbers: gradients, receptive field, schedule, buffer, checkerboard."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cyclegan_lib import mechanics
from cyclegan_lib.config import make_config
from cyclegan_lib.models import PatchDiscriminator


def test_generator_gradients_match_the_closed_forms():
    s = torch.tensor([-4.0, 0.0, 1.0, 3.0])
    curves = mechanics.generator_gradients(s)
    p = torch.sigmoid(s).numpy()
    np.testing.assert_allclose(curves["nll"]["grad"], -(1 - p), atol=1e-6)       # -log sigmoid
    np.testing.assert_allclose(curves["nll minimax"]["grad"], -p, atol=1e-6)     # log(1 - sigmoid)
    np.testing.assert_allclose(curves["lsgan"]["grad"], 2 * (s.numpy() - 1), atol=1e-6)


@pytest.mark.parametrize("ndf", [8, 64])
def test_patchgan_receptive_field_is_70(ndf):
    net = PatchDiscriminator(ndf=ndf)
    rows = mechanics.receptive_field_table(net)
    assert [r["receptive field (px)"] for r in rows] == [4, 10, 22, 46, 70]
    assert rows[-1]["jump (px)"] == 8
    assert mechanics.measured_receptive_field(PatchDiscriminator(ndf=8)) == 70


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34)])
def test_shallower_patchgans_see_less(n_layers, field):
    net = PatchDiscriminator(ndf=8, n_layers=n_layers)
    assert mechanics.receptive_field_table(net)[-1]["receptive field (px)"] == field
    assert mechanics.measured_receptive_field(net) == field


def test_lr_schedule_follows_the_trainer():
    cfg = make_config("stabilized", "cpu")
    steps, lr = mechanics.lr_schedule(cfg)
    assert len(steps) == cfg.total_epochs * cfg.epoch_size
    half = cfg.n_epochs * cfg.epoch_size
    assert np.all(lr[:half] == cfg.lr)
    assert np.all(np.diff(lr[half:]) <= 0) and lr[-1] == pytest.approx(
        cfg.lr / (cfg.n_epochs_decay + 1))


def test_buffer_ages():
    ages = mechanics.buffer_ages(size=10, steps=400, seed=1)
    assert ages.shape == (400, 1)
    assert np.all(ages[:10] == 0)  # filling up: every fake goes straight through
    newest = np.mean(ages[10:] == 0)
    assert 0.4 < newest < 0.6  # afterwards half are swapped for an older one
    assert ages.max() > 10
    assert np.all(mechanics.buffer_ages(size=0, steps=20) == 0)


def test_checkerboard_strength_finds_the_period():
    torch.manual_seed(0)
    noise = torch.rand(4, 3, 64, 64) * 2 - 1
    board = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32) * 0.2
    assert mechanics.checkerboard_strength(noise) < 3
    assert mechanics.checkerboard_strength(noise + board) > 20 * mechanics.checkerboard_strength(noise)


def test_figures_draw(smoke_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = mechanics.load_discriminator(smoke_run, "B")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert mechanics.patch_scores(d, x).ndim == 3
    for fig in (mechanics.plot_generator_gradients(), mechanics.plot_buffer_ages(),
                mechanics.plot_lr_schedule({"cpu": make_config("stabilized", "cpu")}),
                mechanics.plot_patch_scores({"real": x, "fake": x}, d),
                mechanics.plot_checkerboard({"x": x}, crop=8)):
        plt.close(fig)
    timeline = mechanics.checkerboard_timeline(smoke_run)
    assert timeline and all(v > 0 for _, v in timeline)
    fig = mechanics.plot_checkerboard_timeline(timeline, title="t")
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [s for s, _ in timeline]
    assert list(line.get_ydata()) == [v for _, v in timeline]
    plt.close(fig)


def test_generator_layer_table_adds_up_to_the_model():
    from cyclegan_lib.models import ResnetGenerator, count_parameters

    for blocks in (3, 9):
        rows = mechanics.generator_layer_table(ngf=64, n_blocks=blocks)
        assert sum(r["parameters"] for r in rows) == count_parameters(
            ResnetGenerator(ngf=64, n_blocks=blocks))
        res = [r for r in rows if r["layer"].startswith("residual")]
        assert res[0]["count"] == blocks and res[0]["per layer"] == 2 * (256 * 256 * 9 + 256)
    three = sum(r["parameters"] for r in mechanics.generator_layer_table(64, 3))
    nine = sum(r["parameters"] for r in mechanics.generator_layer_table(64, 9))
    assert round(three / nine, 2) == 0.38
