"""Chapter plumbing: set-up, runs, data scans, metrics, photos and showing Markdown.

Each chapter calls :func:`chapter_setup` and :func:`ensure_runs`, so the notebooks hold prose
and a few calls while the logic lives in the library, where it is tested.
"""
from __future__ import annotations

import contextlib
import io
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import torch
from markdown_it import MarkdownIt
from PIL import Image

from . import colab, paths
from .colab import SELFIE2ANIME_HELP
from .config import PROFILES, TrainConfig, make_config, resolve_profile
from .cyclegan import resolve_device
from .data import IMAGE_EXTENSIONS, load_domain
from .errors import ConfigError, DataError
from .evaluate import load_or_evaluate, metrics_table, resolve_inception_weights
from .page import display_html
from .photos import manifest_rows
from .pretrained import is_pretrained
from .report import diversity
from .trainer import ensure_run as train_or_find_run
from .viz import generate, test_images

__all__ = [
    "ChapterContext", "chapter_setup", "colab_setup", "on_colab",
    "ensure_run", "ensure_runs", "profile_config", "markdown_to_html", "show_markdown",
    "scan_overview", "folder_overview", "diversity_ratio",
    "inception_weights", "run_metrics", "show_metrics", "face_photos", "consistency_pairs",
    "photo_labels", "SMOKE_EVAL_IMAGES",
]


# -- set-up --------------------------------------------------------------------------------

@dataclass
class ChapterContext:
    """Where a chapter reads data and runs from, at which profile, on which device."""

    profile: str
    data_dir: Path
    runs_dir: Path
    faces_dir: Path
    device: str
    seed: int
    repo_root: Path
    anime_cascade: Path | None = None
    inception_weights: Path | None = None
    on_colab: bool = False

    def describe(self) -> str:
        """The one line every chapter prints: what the figures come from.

        Folders are shown relative to the repository (or by name): no machine path on a public page.
        """
        try:
            cfg = make_config("stabilized", self.profile)
            length = (f"{cfg.total_epochs * cfg.epoch_size:,} steps" if cfg.epoch_size
                      else f"{cfg.total_epochs} epochs")
            size = f" ({cfg.image_size} px, ngf {cfg.ngf}, {length})"
        except Exception:  # noqa: BLE001 - a custom profile: name only
            size = ""
        return (f"profile {self.profile}{size}; data: {self._shown(self.data_dir)}; "
                f"runs: {self._shown(self.runs_dir)}; device {self.device}; seed {self.seed}")

    def _shown(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.repo_root.resolve()).as_posix() + "/"
        except ValueError:
            return Path(path).name + "/"


def on_colab() -> bool:
    """True inside Google Colab (the chapters' install cell does nothing elsewhere)."""
    return "google.colab" in sys.modules


def chapter_setup(profile: str = "cpu", data_dir: str | Path | None = None,
                  runs_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
                  quiet: bool = False) -> ChapterContext:
    """Resolve a chapter's parameters against the environment (:mod:`.paths`), seed, print one line.

    ``CYCLEGAN_PROFILE`` forces the profile (CI runs every chapter at ``smoke``); for paths a
    parameter wins, then the environment, then the folders next to the repository.
    """
    profile = resolve_profile(paths.forced_profile() or profile)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)}, auto)")
    try:
        data = paths.data_dir(data_dir, search=True)
    except DataError:
        data = None
    if data is None or not data.is_dir():
        raise FileNotFoundError(f"data folder not found ({data}). {SELFIE2ANIME_HELP}")
    try:
        cascade: Path | None = paths.anime_cascade(search=True)
    except FileNotFoundError:
        cascade = None
    dev = str(resolve_device(device).type)
    if profile == "smoke":
        torch.set_num_threads(1)
    torch.manual_seed(seed)
    _figure_style()
    ctx = ChapterContext(profile=profile, data_dir=data.resolve(),
                         runs_dir=paths.runs_dir(runs_dir).resolve(),
                         faces_dir=paths.faces_dir(data).resolve(), device=dev, seed=int(seed),
                         repo_root=paths.find_repo_root(), anime_cascade=cascade,
                         inception_weights=paths.env_path("CYCLEGAN_INCEPTION_WEIGHTS"),
                         on_colab=on_colab())
    if not quiet:
        print(ctx.describe())
    return ctx


def _figure_style() -> None:
    """One look for every figure of the book (sizes readable in the HTML page)."""
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 10,
        "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    })


def colab_setup(data_url: str | None = None, target: str | Path = "/content",
                drive: bool = True, profile: str | None = "auto") -> Path | None:
    """On Colab, :func:`cyclegan_lib.colab.setup` (Drive, data, GPU profile); elsewhere a no-op.

    Returns the data folder it set in ``CYCLEGAN_DATA`` (None if none, or outside Colab).
    """
    if not on_colab():
        return None
    return colab.setup(data_url=data_url, target=target, drive=drive, profile=profile).data_dir


# -- runs ----------------------------------------------------------------------------------

def ensure_run(ctx: ChapterContext, preset: str) -> Path:
    """The run of ``preset`` at the chapter's profile: published, complete, or trained here."""
    return train_or_find_run(preset, ctx.profile, ctx.data_dir, ctx.runs_dir, seed=ctx.seed,
                             device=ctx.device, progress=False,
                             pretrained_dir=ctx.repo_root / "pretrained")


def ensure_runs(ctx: ChapterContext, presets: Sequence[str], quiet: bool = False
                ) -> dict[str, Path]:
    """:func:`ensure_run` for several presets: ``{preset: run_dir}`` in the given order.

    Prints where each model came from: a published folder of ``pretrained/`` or a run folder
    (complete, or trained by this call).
    """
    runs = {preset: ensure_run(ctx, preset) for preset in presets}
    if not quiet:
        print("models: " + "; ".join(
            f"{preset} from {ctx._shown(folder)} "
            f"({'published' if is_pretrained(folder) else 'trained here'})"
            for preset, folder in runs.items()))
    return runs


def profile_config(ctx: ChapterContext, preset: str = "stabilized") -> TrainConfig:
    """The :class:`~cyclegan_lib.config.TrainConfig` of ``preset`` at the chapter's profile."""
    return make_config(preset, ctx.profile)


def diversity_ratio(ctx: ChapterContext, run_dir: str | Path, n: int = 16) -> float:
    """Output diversity of a run's G_AB on ``n`` test selfies, relative to the inputs'."""
    x = test_images(ctx.data_dir, "A", n=n, size=profile_config(ctx).image_size)
    return diversity(generate(run_dir, x, device=ctx.device)) / diversity(x)


# -- display -------------------------------------------------------------------------------

def markdown_to_html(text: str) -> str | None:
    """Markdown (with tables) as HTML."""
    return MarkdownIt("commonmark").enable("table").render(text)


def show_markdown(text: str) -> None:
    """Display Markdown with an HTML copy (the book's HTML builder has no tables), or print it."""
    display_html(markdown_to_html(text), text, markdown=text)


# -- data ----------------------------------------------------------------------------------

def scan_overview(ctx: ChapterContext) -> tuple[list[dict[str, Any]], str]:
    """Scan the data folders exactly as training does at the chapter's profile."""
    cfg = make_config("stabilized", ctx.profile)
    rows, texts = [], []
    for split in ("trainA", "trainB", "testA", "testB"):
        folder = ctx.data_dir / split
        if not folder.is_dir():
            continue
        dom = load_domain(folder, cfg.resolved_load_size, min_size=cfg.image_size,
                          max_images=cfg.max_images)
        rep = dom.report
        n_files = sum(1 for p in folder.iterdir() if p.is_file())
        rows.append({"folder": split, "files": n_files, "used": len(rep.used),
                     "converted": len(rep.converted), "skipped": len(rep.skipped),
                     "tensor": "x".join(str(s) for s in dom.images.shape)})
        texts.append(rep.text().replace(rep.folder, split))
    return rows, "\n".join(texts)


def folder_overview(folder: str | Path) -> dict[str, Any]:
    """File count, real formats and pixel sizes of a folder, from the image headers only."""
    folder = Path(folder)
    formats: Counter[str] = Counter()
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    bad = 0
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in files:
        try:
            with Image.open(path) as im:
                formats[str(im.format)] += 1
                sizes[im.size] += 1
                modes[im.mode] += 1
        except Exception:  # noqa: BLE001 - any unreadable header counts as bad
            bad += 1
    sides = [min(s) for s in sizes.elements()]
    return {
        "folder": folder.name, "files": len(files),
        "formats": ", ".join(f"{k} {v}" for k, v in formats.most_common()),
        "modes": ", ".join(f"{k} {v}" for k, v in modes.most_common()),
        "sizes": ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
                 + (f", +{len(sizes) - 3} more" if len(sizes) > 3 else ""),
        "min side": min(sides) if sides else None, "max side": max(sides) if sides else None,
        "unreadable": bad,
    }


# -- metrics (cyclegan_lib.evaluate) -------------------------------------------------------

#: At the smoke profile only this many test images per domain are evaluated: the smoke
#: models show nothing anyway, and the face detectors are the slow part.
SMOKE_EVAL_IMAGES = 8


_WEIGHTS: dict[str, tuple[str | None, str | None]] = {}


def inception_weights(ctx: ChapterContext) -> tuple[str | None, str | None]:
    """``(weights file, None)`` or ``(None, why not)`` for KID/FID, resolved once per kernel."""
    key = str(ctx.inception_weights)
    if key not in _WEIGHTS:
        chatter = io.StringIO()
        with contextlib.redirect_stderr(chatter), contextlib.redirect_stdout(chatter):
            _WEIGHTS[key] = resolve_inception_weights(ctx.inception_weights, download=True)
    return _WEIGHTS[key]


def run_metrics(ctx: ChapterContext, runs: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    """Metrics of each run, ``{label: metrics}``, computed once and cached in ``RUN/metrics.json``."""
    weights, _ = inception_weights(ctx)
    cap = SMOKE_EVAL_IMAGES if ctx.profile == "smoke" else None
    out = {}
    for label, run_dir in runs.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out[label] = dict(load_or_evaluate(Path(run_dir), ctx.data_dir, device=ctx.device,
                                               max_images=cap, inception_weights=weights,
                                               anime_cascade=ctx.anime_cascade, download=False))
        rest = [line for line in err.getvalue().splitlines()
                if line.strip() and not line.startswith("KID/FID skipped")]
        if rest:
            print("\n".join(rest), file=sys.stderr)
    return out


def show_metrics(ctx: ChapterContext, runs: Mapping[str, str | Path],
                 columns: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Compute (or load) the runs' metrics, display them as one table, and return them.

    Uncomputable metrics (KID/FID without Inception weights) are left out silently; the
    chapters say so once (:func:`cyclegan_lib.page.missing_metrics_note`).
    """
    metrics = run_metrics(ctx, runs)
    show_markdown(metrics_table(list(metrics.values()), names=list(metrics), columns=columns,
                                note=False))
    return metrics


# -- photos and credits --------------------------------------------------------------------

def face_photos(ctx: ChapterContext, category: str) -> list[Path]:
    """The photos of one qualitative test (``expressive``, ``angled``...), sorted by name."""
    folder = ctx.faces_dir / category
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def consistency_pairs(ctx: ChapterContext) -> list[tuple[Path, Path]]:
    """``(NAME_a, NAME_b)`` pairs of the consistency test: one person, two photos."""
    photos = {p.stem: p for p in face_photos(ctx, "consistency")}
    return [(photos[s], photos[s[:-2] + "_b"]) for s in sorted(photos)
            if s.endswith("_a") and s[:-2] + "_b" in photos]


def photo_labels(ctx: ChapterContext, photos: Sequence[Path]) -> list[str]:
    """Row labels for photos: the file stem, marked "(synthetic)" where the manifest says so."""
    manifest = {row["file"]: row for row in manifest_rows(ctx.faces_dir)}
    labels = []
    for p in photos:
        row = manifest.get(f"{p.parent.name}/{p.name}", {})
        synthetic = "synthetic" in " ".join(row.values()).lower()
        labels.append(p.stem + ("\n(SYNTHETIC: darkened)" if synthetic else ""))
    return labels
