"""Figures for the book: image grids, training samples, loss curves, comparisons.

Images are ``[N, 3, H, W]`` tensors in [-1, 1] or PIL images, drawn without
interpolation, so a 64-pixel output is shown as the 64 pixels it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torchvision.utils import make_grid

from .data import EpochPlan, load_domain, open_rgb, to_uint8, uint8_to_float
from .runs import SAMPLE_PADDING, generator_for, image_size, read_history
from .translate import face_crop_or_square, open_photo, translate_image

__all__ = [
    "SAMPLE_ROWS", "to_unit", "as_batch", "grid_image", "show_grid", "sample_steps",
    "load_sample_grid", "sample_cells", "sample_grid_from_run", "sample_timeline",
    "test_images", "generate", "translate_examples", "smooth",
    "plot_losses", "plot_value_histogram", "plot_dose_response", "transform_steps", "face_inputs",
    "FaceTranslations", "translate_faces", "face_comparison", "plot_bars",
]

#: What the rows of the trainer's ``samples/step_*.png`` grids show, top to bottom.
SAMPLE_ROWS = ("real A (human)", "G_AB(A): anime", "G_BA(G_AB(A)): back",
               "real B (anime)", "G_BA(B): human", "G_AB(G_BA(B)): back")


# -- conversions ---------------------------------------------------------------------------

def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network images to [0, 1] for display (values outside are clipped)."""
    return ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)


def _pil_to_unit(image: Image.Image, size: int | None) -> torch.Tensor:
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def as_batch(images: "torch.Tensor | Sequence[torch.Tensor | Image.Image]",
             size: int | None = None) -> torch.Tensor:
    """Any mix of PIL images and [-1, 1] tensors as one ``[N, 3, S, S]`` tensor in [0, 1]."""
    if isinstance(images, torch.Tensor):
        items: list = list(images) if images.dim() == 4 else [images]
    else:
        items = list(images)
    if not items:
        raise ValueError("no images to show")
    sides = [it.size[0] if isinstance(it, Image.Image) else it.shape[-1] for it in items]
    size = size or max(sides)
    out = []
    for it in items:
        if isinstance(it, Image.Image):
            out.append(_pil_to_unit(it, size))
            continue
        t = to_unit(it)
        if t.dim() == 4:
            t = t[0]
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        if t.shape[-1] != size or t.shape[-2] != size:
            t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="nearest")[0]
        out.append(t)
    return torch.stack(out)


def grid_image(images: "torch.Tensor | Sequence[torch.Tensor | Image.Image]", nrow: int = 8,
               padding: int = 2, size: int | None = None) -> Image.Image:
    """A ``make_grid`` of the images as a PIL image (white padding), e.g. for PNG widgets."""
    grid = make_grid(as_batch(images, size), nrow=nrow, padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr)


def show_grid(images: "torch.Tensor | Sequence[torch.Tensor | Image.Image]", nrow: int = 8,
              titles: Sequence[str] | None = None, row_titles: Sequence[str] | None = None,
              title: str | None = None, size: int | None = None, cell_inches: float = 1.2,
              ) -> Figure:
    """Show images as a grid (``nrow`` per row) with optional column and row titles."""
    batch = as_batch(images, size)
    n, _, h, w = batch.shape
    padding = 2
    ncols = min(nrow, n)
    nrows = math.ceil(n / nrow)
    grid = make_grid(batch, nrow=nrow, padding=padding, pad_value=1.0)
    left = 1.4 if row_titles else 0.1
    top = 0.35 if titles else 0.05
    top += 0.3 if title else 0.0
    fig_w = ncols * cell_inches + left + 0.1
    fig_h = nrows * cell_inches * h / w + top + 0.1
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((left / fig_w, 0.1 / fig_h, ncols * cell_inches / fig_w,
                       nrows * cell_inches * h / w / fig_h))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if titles:
        for j, text in enumerate(titles[:ncols]):
            ax.text(padding + j * (w + padding) + w / 2, -2, text, ha="center", va="bottom",
                    fontsize=9, wrap=True)
    if row_titles:
        for i, text in enumerate(row_titles[:nrows]):
            ax.text(-4, padding + i * (h + padding) + h / 2, text, ha="right", va="center",
                    fontsize=9)
    if title:
        fig.suptitle(title, y=1 - 0.05 / fig_h, va="top", fontsize=11)
    return fig


# -- the trainer's sample grids --------------------------------------------------------------

def sample_steps(run_dir: str | Path) -> list[int]:
    """The steps at which the trainer saved a sample grid, in order."""
    folder = Path(run_dir) / "samples"
    if not folder.is_dir():
        return []
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("step_*.png"))


def load_sample_grid(run_dir: str | Path, step: int | None = None) -> tuple[Image.Image, int]:
    """The sample grid saved at ``step`` (default: the last) and that step."""
    steps = sample_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"no sample grids in {Path(run_dir) / 'samples'}")
    step = steps[-1] if step is None else step
    path = Path(run_dir) / "samples" / f"step_{step:08d}.png"
    if not path.is_file():
        raise FileNotFoundError(f"no sample grid for step {step} ({path})")
    return Image.open(path).convert("RGB"), step


def sample_cells(run_dir: str | Path, step: int | None = None) -> torch.Tensor:
    """The cells of a sample grid as ``[6, columns, 3, S, S]`` in [-1, 1] (rows: SAMPLE_ROWS).

    The cells are the run's ``image_size``, :data:`~cyclegan_lib.runs.SAMPLE_PADDING` apart.
    """
    grid, _ = load_sample_grid(run_dir, step)
    size = image_size(run_dir)
    arr = torch.from_numpy(np.asarray(grid, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    pad = SAMPLE_PADDING
    ncols = (arr.shape[-1] - pad) // (size + pad)
    nrows = (arr.shape[-2] - pad) // (size + pad)
    cells = torch.empty(nrows, ncols, 3, size, size)
    for i in range(nrows):
        for j in range(ncols):
            y, x = pad + i * (size + pad), pad + j * (size + pad)
            cells[i, j] = arr[:, y:y + size, x:x + size]
    return cells


def sample_grid_from_run(run_dir: str | Path, step: int | None = None, title: str | None = None,
                         cell_inches: float = 1.0) -> Figure:
    """The trainer's sample grid at ``step`` (default: last), with its rows labelled."""
    cells = sample_cells(run_dir, step)
    used = sample_steps(run_dir)[-1] if step is None else step
    rows, cols = cells.shape[:2]
    return show_grid(cells.reshape(-1, *cells.shape[2:]), nrow=cols,
                     row_titles=list(SAMPLE_ROWS[:rows]), size=cells.shape[-1],
                     title=title or f"{Path(run_dir).name}: samples at step {used}",
                     cell_inches=cell_inches)


def sample_timeline(run_dir: str | Path, row: int = 1, max_steps: int = 6,
                    title: str | None = None, cell_inches: float = 1.0) -> Figure:
    """One row of the sample grids (default: G_AB(A)) at several steps, top to bottom."""
    steps = sample_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"no sample grids in {run_dir}")
    if len(steps) > max_steps:
        picks = np.linspace(0, len(steps) - 1, max_steps).round().astype(int)
        steps = [steps[i] for i in sorted(set(picks.tolist()))]
    strips = [sample_cells(run_dir, s)[row] for s in steps]
    cols = strips[0].shape[0]
    return show_grid(torch.cat(strips), nrow=cols, row_titles=[f"step {s}" for s in steps],
                     size=strips[0].shape[-1], cell_inches=cell_inches,
                     title=title or f"{Path(run_dir).name}: {SAMPLE_ROWS[row]} during training")


# -- translating test images -----------------------------------------------------------------

def test_images(data_dir: str | Path, domain: str = "A", n: int = 6, size: int = 64,
                split: str = "test") -> torch.Tensor:
    """The first ``n`` images of ``data_dir/{split}{domain}`` at ``size`` px, in [-1, 1].

    Same decoding and bicubic resize as training (:func:`cyclegan_lib.data.load_domain`).
    """
    dom = load_domain(Path(data_dir) / f"{split}{domain}", size, min_size=min(size, 32),
                      max_images=n)
    return uint8_to_float(dom.images)


@torch.no_grad()
def generate(run_dir: str | Path, images: torch.Tensor, direction: str = "AtoB",
             device: str = "cpu") -> torch.Tensor:
    """Translate a [-1, 1] batch with a run's generator; returns [-1, 1] on the CPU."""
    net = generator_for(run_dir, direction, device)
    size = image_size(run_dir)
    x = images.to(device)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False, antialias=True)
    return net(x).float().cpu()


def translate_examples(runs: Mapping[str, str | Path], data_dir: str | Path, n: int = 6,
                       direction: str = "AtoB", device: str = "cpu", title: str | None = None,
                       cell_inches: float = 1.1) -> Figure:
    """Test images (top row) and each run's translation of them (one row per run)."""
    size = image_size(next(iter(runs.values())))
    dom = "A" if direction == "AtoB" else "B"
    x = test_images(data_dir, dom, n, size)
    rows = [x] + [generate(r, x, direction, device) for r in runs.values()]
    names = ["input (test" + dom + ")"] + list(runs)
    return show_grid(torch.cat(rows), nrow=len(x), row_titles=names, size=size,
                     cell_inches=cell_inches,
                     title=title or ("human -> anime" if direction == "AtoB"
                                     else "anime -> human") + " on test images")


# -- losses --------------------------------------------------------------------------------

def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (``window`` steps; shorter at the start), for noisy GAN losses."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


LOSS_PANELS = (
    ("generators: adversarial", ("G_AB", "G_BA")),
    ("discriminators", ("D_A", "D_B")),
    ("cycle consistency (x lambda)", ("cycle_A", "cycle_B")),
    ("identity (x lambda x 0.5)", ("idt_A", "idt_B")),
)


def plot_losses(runs: Mapping[str, str | Path], title: str | None = None) -> Figure:
    """Loss curves of one or more runs from their ``history.csv``, one panel per loss group
    (light: every step; bold: a moving average over a 50th of the run)."""
    cols = 2
    rows = math.ceil(len(LOSS_PANELS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.0 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, run_dir) in enumerate(runs.items()):
        hist = read_history(run_dir)
        steps = np.asarray(hist.get("step", []))
        if len(steps) == 0:
            continue
        window = max(1, len(steps) // 50)
        for ax, (name, keys) in zip(axes.flat, LOSS_PANELS):
            for key, style in zip(keys, ("-", "--")):
                if key not in hist:
                    continue
                color = colors[k % len(colors)]
                ax.plot(steps, hist[key], color=color, alpha=0.15, lw=0.6)
                ax.plot(steps, smooth(hist[key], window), style, color=color, lw=1.4,
                        label=f"{label}: {key}")
            ax.set_title(name)
            ax.set_xlabel("step")
    for ax in axes.flat[len(LOSS_PANELS):]:
        ax.set_axis_off()
    for ax in axes.flat[:len(LOSS_PANELS)]:
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_value_histogram(batches: Mapping[str, torch.Tensor], bins: int = 60) -> Figure:
    """Histograms of the raw pixel values of [-1, 1] image batches, not clamped: a ReLU output
    can exceed white (1), and the axis runs to the largest value (log density)."""
    top = max(1.0, max(float(x.max()) for x in batches.values()))
    edges = np.linspace(-1, top, bins + 1)
    fig, ax = plt.subplots(figsize=(7, 3))
    for label, x in batches.items():
        ax.hist(x.detach().float().flatten().numpy(), bins=edges, histtype="step", lw=1.5,
                label=label, density=True)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.axvspan(1, top, color="0.9", zorder=0, label="above white (1)")
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (network scale: -1 black, 0 mid-grey, 1 white)")
    ax.set_ylabel("density (log)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_dose_response(qual: Mapping[str, Mapping[str, Any]]) -> Figure:
    """The dark-photo dose-response of :func:`cyclegan_lib.claims.qualitative_measures`, per
    generator: anime rate and share of the face turned dark against the exposure change."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for label, q in qual.items():
        ev = [r["EV"] for r in q["dose"]]
        for ax, key in zip(axes, ("anime rate", "turned dark")):
            ax.errorbar(ev, [r[key] for r in q["dose"]],
                        yerr=[[r[key] - r[f"{key} low"] for r in q["dose"]],
                              [r[f"{key} high"] - r[key] for r in q["dose"]]],
                        marker="o", capsize=3, label=label)
    axes[0].set_ylabel("anime-detector rate")
    axes[1].set_ylabel("share of face turned dark")
    for ax in axes:
        ax.set_xlabel("exposure change (EV)")
        ax.invert_xaxis()
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- data transforms -----------------------------------------------------------------------

def transform_steps(image_path: str | Path, load_size: int, crop_size: int, seed: int = 0,
                    flip: bool | None = None) -> Figure:
    """The training transforms on one image, step by step, as the trainer applies them."""
    original, _ = open_rgb(image_path)
    resized = original.resize((load_size, load_size), Image.BICUBIC)
    plan = EpochPlan.draw(1, 1, 1, load_size, crop_size, seed, 0)
    y, x = plan.crop_a[0].tolist()
    do_flip = bool(plan.flip_a[0]) if flip is None else flip
    u8 = to_uint8(resized)
    crop = u8[:, y:y + crop_size, x:x + crop_size]
    flipped = crop.flip(-1) if do_flip else crop
    normed = uint8_to_float(flipped)

    fig, axes = plt.subplots(1, 5, figsize=(13, 2.9),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.3]})
    axes[0].imshow(original)
    axes[0].set_title(f"1. file: {original.width}x{original.height}")
    axes[1].imshow(resized, interpolation="nearest")
    axes[1].add_patch(patches.Rectangle((x - 0.5, y - 0.5), crop_size, crop_size, fill=False,
                                        ec="red", lw=1.5))
    axes[1].set_title(f"2. resize to {load_size} (crop box)")
    axes[2].imshow(crop.permute(1, 2, 0).numpy(), interpolation="nearest")
    axes[2].set_title(f"3. crop {crop_size} at ({x},{y})")
    axes[3].imshow(flipped.permute(1, 2, 0).numpy(), interpolation="nearest")
    axes[3].set_title("4. flipped" if do_flip else "4. not flipped (p=1/2)")
    for ax in axes[:4]:
        ax.set_axis_off()
    for c, color in enumerate(("red", "green", "blue")):
        axes[4].hist(normed[c].flatten().numpy(), bins=np.linspace(-1, 1, 33), histtype="step",
                     color=color, lw=1.2)
    axes[4].set_title("5. values scaled to [-1, 1]")
    axes[4].set_xlabel("value")
    fig.tight_layout()
    return fig


# -- photos: qualitative comparisons ---------------------------------------------------------

@lru_cache(maxsize=256)
def _face_input(path: str, mtime: int) -> tuple[Image.Image, bool]:
    crop, found = face_crop_or_square(open_photo(path), fallback=True)
    assert crop is not None  # fallback=True always returns an image
    return crop, found


def face_inputs(photos: Sequence[str | Path]) -> list[tuple[Image.Image, bool]]:
    """Each photo's network input and whether a face was found, as the CLI computes them."""
    return [_face_input(str(Path(p).resolve()), Path(p).stat().st_mtime_ns) for p in photos]


@dataclass
class FaceTranslations:
    """Photos, their network inputs, whether a face was found, and each run's outputs."""

    photos: list[Path]
    inputs: list[Image.Image]
    found: list[bool]
    outputs: dict[str, list[Image.Image]]
    size: int


def translate_faces(photos: Sequence[str | Path], runs: Mapping[str, str | Path],
                    device: str = "cpu") -> FaceTranslations:
    """Face-crop every photo and translate it (human -> anime) with every run."""
    size = image_size(next(iter(runs.values())))
    pairs = face_inputs(photos)
    crops = [c for c, _ in pairs]
    outputs = {label: [translate_image(generator_for(r, "AtoB", device), c, image_size(r),
                                       device) for c in crops]
               for label, r in runs.items()}
    return FaceTranslations([Path(p) for p in photos], crops, [f for _, f in pairs], outputs,
                            size)


def face_comparison(faces: FaceTranslations, title: str | None = None,
                    labels: Sequence[str] | None = None, photos_per_row: int = 1,
                    cell_inches: float = 1.1) -> Figure:
    """Face crops (as the network sees them), each followed by every run's output."""
    size = faces.size
    runs = list(faces.outputs)
    cells: list[Image.Image] = []
    row_titles, row = [], []
    for k, (path, crop, found) in enumerate(zip(faces.photos, faces.inputs, faces.found)):
        cells.append(crop.resize((size, size), Image.BICUBIC))
        cells += [faces.outputs[r][k] for r in runs]
        name = labels[k] if labels else path.stem
        row.append(name if found else f"{name}\n(no face: centre crop)")
        if len(row) == photos_per_row or k == len(faces.photos) - 1:
            row_titles.append("\n".join(row))
            row = []
    titles = ["input crop", *runs] * photos_per_row
    return show_grid(cells, nrow=(1 + len(runs)) * photos_per_row, titles=titles,
                     row_titles=row_titles, size=size, cell_inches=cell_inches, title=title)


def plot_bars(values: Mapping[str, float], xlabel: str, title: str | None = None,
              fmt: str = "{:,.0f}") -> Figure:
    """A small horizontal bar chart with the value written at each bar."""
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(values) + 0.9))
    names = list(values)
    nums = [float(values[k]) for k in names]
    ax.barh(names, nums, color="#4C72B0")
    for i, v in enumerate(nums):
        ax.text(v, i, " " + fmt.format(v), va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max(nums) * 1.25 if nums and max(nums) > 0 else 1)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
