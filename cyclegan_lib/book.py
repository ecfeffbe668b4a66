"""Chapter plumbing: set-up, runs, data scans, metrics, photos and showing Markdown.

Every chapter (``notebooks/NN_*.md``) starts the same way::

    ctx = chapter_setup(profile=profile, data_dir=data_dir, runs_dir=runs_dir,
                        seed=seed, device=device)
    runs = ensure_runs(ctx, ["naive", "stabilized"])

so the notebooks stay thin: they hold prose, a few calls and figures, and all
logic lives here, in :mod:`cyclegan_lib.report` (the tables and verdicts
computed from the runs' numbers), :mod:`cyclegan_lib.page` (library source on
the page, glued numbers), :mod:`cyclegan_lib.mechanics` (the teaching figures),
:mod:`cyclegan_lib.viz` and :mod:`cyclegan_lib.widgets`, where it is tested.

Book contract (shared with the book-infrastructure code, see ``book/CONTRACT.md``):
the parameters cell of every notebook holds ``profile``, ``data_dir``,
``runs_dir``, ``seed`` and ``device``; :func:`chapter_setup` applies the
environment overrides (``CYCLEGAN_PROFILE`` forces the profile, so CI can run
every chapter at ``smoke``; ``CYCLEGAN_DATA``, ``CYCLEGAN_RUNS``,
``CYCLEGAN_FACES``, ``CYCLEGAN_ANIME_CASCADE`` and
``CYCLEGAN_INCEPTION_WEIGHTS`` are defaults for what the parameters leave
``None``).
"""
from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .report import diversity

__all__ = [
    "ChapterContext", "chapter_setup", "colab_setup", "on_colab", "find_repo_root",
    "ensure_run", "ensure_runs", "profile_config", "markdown_to_html", "show_markdown",
    "scan_overview", "folder_overview", "diversity_ratio",
    "inception_weights", "run_metrics", "show_metrics", "face_photos", "consistency_pairs",
    "read_manifest", "photo_labels", "credits_table", "ANIME_CASCADE_URL",
    "SELFIE2ANIME_HELP", "SMOKE_EVAL_IMAGES",
]

ANIME_CASCADE_URL = ("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/"
                     "lbpcascade_animeface.xml")
SELFIE2ANIME_HELP = (
    "selfie2anime (U-GAT-IT, Kim et al. 2020) is not bundled: download it (for example the "
    "Kaggle copy 'arnaud58/selfie2anime' or the link in the U-GAT-IT repository), unpack it so "
    "that trainA/trainB/testA/testB are in one folder, and set data_dir (or CYCLEGAN_DATA) to it.")


# -- set-up --------------------------------------------------------------------------------

@dataclass
class ChapterContext:
    """Where a chapter reads data and runs from, at which profile, on which device.

    ``device`` is resolved (``"cpu"`` or ``"cuda"``) for inference; training
    gets the same string, so a chapter never trains on one device and
    translates on another.
    """

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
        """The one line every chapter prints, so a reader sees what the figures come from.

        Folders are shown relative to the repository, or by their last part when
        they lie outside it: the line is printed on public pages, and a path of the
        machine that built them has no place there.
        """
        from .config import make_config

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


def find_repo_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``_toc.yml``, else cwd.

    Chapters run from ``notebooks/`` (sources) or ``book/chapters/`` (published
    copies); both find the same ``runs/`` folder this way.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def chapter_setup(profile: str = "cpu", data_dir: str | Path | None = None,
                  runs_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
                  quiet: bool = False) -> ChapterContext:
    """Resolve a chapter's parameters against the environment, seed, and print one line.

    Precedence: ``CYCLEGAN_PROFILE`` *forces* the profile (CI sets ``smoke`` to
    run every chapter in seconds); for paths a parameter wins, then the
    environment (``CYCLEGAN_DATA``, ``CYCLEGAN_RUNS``, ``CYCLEGAN_FACES``), then
    the defaults next to the repository (``<repo>/runs``,
    ``<repo>/../shared/data/selfie2anime``, ``<data>/../faces``).  The
    anime-face cascade and Inception weights come from ``CYCLEGAN_ANIME_CASCADE``
    and ``CYCLEGAN_INCEPTION_WEIGHTS`` (the cascade is also looked for in
    ``<repo>/../shared/models``) and are exported again, so the evaluation code
    finds what the chapter found.  At the ``smoke`` profile torch uses one
    thread: the tensors are tiny and extra threads only wait on each other.
    """
    import torch

    from .config import PROFILES, ConfigError, resolve_profile
    from .trainer import resolve_device

    profile = resolve_profile(os.environ.get("CYCLEGAN_PROFILE") or profile)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)}, auto)")
    root = find_repo_root()
    shared = root.parent / "shared"
    data = Path(data_dir) if data_dir else _env_path("CYCLEGAN_DATA")
    if data is None:
        for candidate in (shared / "data" / "selfie2anime", Path("/content/selfie2anime")):
            if candidate.is_dir():
                data = candidate
                break
    if data is None or not data.is_dir():
        raise FileNotFoundError(f"data folder not found ({data}). {SELFIE2ANIME_HELP}")
    runs = Path(runs_dir) if runs_dir else (_env_path("CYCLEGAN_RUNS") or root / "runs")
    faces = _env_path("CYCLEGAN_FACES") or data.parent / "faces"
    cascade = _env_path("CYCLEGAN_ANIME_CASCADE")
    if cascade is None:
        for candidate in (shared / "models" / "lbpcascade_animeface.xml",
                          Path.home() / ".cache" / "cyclegan_lib" / "lbpcascade_animeface.xml"):
            if candidate.is_file():
                cascade = candidate
                break
    if cascade is not None:
        os.environ["CYCLEGAN_ANIME_CASCADE"] = str(cascade)
    inception = _env_path("CYCLEGAN_INCEPTION_WEIGHTS")
    dev = str(resolve_device(device).type)
    if profile == "smoke":
        torch.set_num_threads(1)
    torch.manual_seed(seed)
    _figure_style()
    ctx = ChapterContext(profile=profile, data_dir=data.resolve(), runs_dir=runs.resolve(),
                         faces_dir=faces.resolve(), device=dev, seed=int(seed), repo_root=root,
                         anime_cascade=cascade, inception_weights=inception,
                         on_colab=on_colab())
    if not quiet:
        print(ctx.describe())
    return ctx


def _figure_style() -> None:
    """One look for every figure of the book (sizes readable in the HTML page)."""
    import matplotlib

    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 10,
        "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    })


def colab_setup(data_url: str | None = None, target: str | Path = "/content") -> Path | None:
    """On Colab: fetch the anime-face cascade and (if ``data_url`` is given) selfie2anime.

    A no-op returning ``None`` outside Colab.  The chapters' first code cell
    installs the library and calls this; ``data_url`` (or ``CYCLEGAN_DATA_URL``)
    may point at a zip/tar of selfie2anime, which is unpacked under
    ``target``.  Without one, the reader is told in one message where to get
    the data.  Returns the data folder it set in ``CYCLEGAN_DATA``.
    """
    if not on_colab():
        return None
    from urllib.request import urlretrieve

    cache = Path.home() / ".cache" / "cyclegan_lib"
    cache.mkdir(parents=True, exist_ok=True)
    cascade = cache / "lbpcascade_animeface.xml"
    if not cascade.is_file():
        urlretrieve(ANIME_CASCADE_URL, cascade)
    os.environ.setdefault("CYCLEGAN_ANIME_CASCADE", str(cascade))
    target = Path(target)
    data = target / "selfie2anime"
    data_url = data_url or os.environ.get("CYCLEGAN_DATA_URL")
    if not (data / "trainA").is_dir() and data_url:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(data_url, download_root=str(target),
                                     extract_root=str(data))
        inner = [p for p in data.rglob("trainA") if p.is_dir()]
        if inner and inner[0].parent != data:
            data = inner[0].parent
    if (data / "trainA").is_dir():
        os.environ.setdefault("CYCLEGAN_DATA", str(data))
        return data
    print(SELFIE2ANIME_HELP)
    return None


# -- runs ----------------------------------------------------------------------------------

def ensure_run(ctx: ChapterContext, preset: str) -> Path:
    """The run of ``preset`` at the chapter's profile, trained first if it is missing.

    A complete run (from an earlier chapter, the background job or a GPU) is
    reused untouched; a half-finished one is resumed; otherwise it is trained
    here, so every chapter also runs alone.
    """
    from .trainer import ensure_run as _ensure_run

    return _ensure_run(preset, ctx.profile, ctx.data_dir, ctx.runs_dir, seed=ctx.seed,
                       device=ctx.device, progress=False)


def ensure_runs(ctx: ChapterContext, presets: Sequence[str]) -> dict[str, Path]:
    """:func:`ensure_run` for several presets: ``{preset: run_dir}`` in the given order."""
    return {preset: ensure_run(ctx, preset) for preset in presets}


def profile_config(ctx: ChapterContext, preset: str = "stabilized") -> "Any":
    """The :class:`~cyclegan_lib.config.TrainConfig` of ``preset`` at the chapter's profile."""
    from .config import make_config

    return make_config(preset, ctx.profile)


def diversity_ratio(ctx: ChapterContext, run_dir: str | Path, n: int = 16) -> float:
    """Output diversity of a run's G_AB on ``n`` test selfies, relative to the inputs'."""
    from .viz import generate, test_images

    x = test_images(ctx.data_dir, "A", n=n, size=profile_config(ctx).image_size)
    return diversity(generate(run_dir, x, device=ctx.device)) / diversity(x)


# -- display -------------------------------------------------------------------------------

def markdown_to_html(text: str) -> str | None:
    """Markdown (with tables) as HTML, or None when markdown-it-py is not installed."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - installed with the book extras
        return None
    return MarkdownIt("commonmark").enable("table").render(text)


def show_markdown(text: str) -> None:
    """Display Markdown in a notebook (print it elsewhere).

    The output carries both ``text/markdown`` and an HTML rendering: the book's
    HTML builder prefers HTML, and plain CommonMark (its default for Markdown
    outputs) has no tables.
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the book extras
        print(text)
        return
    if get_ipython() is None:
        print(text)
        return
    bundle = {"text/markdown": text, "text/plain": text}
    html = markdown_to_html(text)
    if html is not None:
        bundle["text/html"] = html
    display(bundle, raw=True)


# -- data ----------------------------------------------------------------------------------

def scan_overview(ctx: ChapterContext, splits: Iterable[str] = ("trainA", "trainB", "testA",
                                                                 "testB")
                  ) -> tuple[list[dict[str, Any]], str]:
    """Scan the data folders exactly as training does at the chapter's profile.

    Returns one row per folder (files, used, converted, skipped) and the full
    text report (one line per converted or skipped file, with the reason).  It
    uses the same :func:`cyclegan_lib.data.load_domain` call as the trainer
    (same load size, same ``max_images``), so what the chapter reports is
    what the models were trained on; the decode cache makes it cheap after
    the first run.
    """
    from .config import make_config
    from .data import load_domain

    cfg = make_config("stabilized", ctx.profile)
    rows, texts = [], []
    for split in splits:
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
    """File count, real formats and pixel sizes of a folder, from the image headers only.

    Cheap (no pixel decoding), and it shows what a file name hides: the
    original selfie2anime anime files were PNG data behind ``.jpg`` names.
    """
    from collections import Counter

    from PIL import Image

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
    """``(weights file, None)`` or ``(None, why not)`` for KID/FID, resolved once per kernel.

    :func:`cyclegan_lib.evaluate.resolve_inception_weights` looks at
    ``CYCLEGAN_INCEPTION_WEIGHTS``, torch's cache, and then tries to download the
    file.  Doing that once, quietly, keeps download chatter out of every
    metrics cell; the metrics table says in one line when KID/FID are missing.
    """
    import contextlib
    import io

    key = str(ctx.inception_weights)
    if key not in _WEIGHTS:
        from .evaluate import resolve_inception_weights

        chatter = io.StringIO()
        with contextlib.redirect_stderr(chatter), contextlib.redirect_stdout(chatter):
            _WEIGHTS[key] = resolve_inception_weights(ctx.inception_weights, download=True)
    return _WEIGHTS[key]


def run_metrics(ctx: ChapterContext, runs: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    """Metrics of each run, ``{label: metrics}``, computed once and cached in ``RUN/metrics.json``.

    Calls :func:`cyclegan_lib.evaluate.load_or_evaluate` (detector rates, cycle
    and identity errors, KID/FID when the Inception weights are available) and
    reads the cache on later calls.  At the ``smoke`` profile only
    :data:`SMOKE_EVAL_IMAGES` test images per domain are used.  The one-line
    "KID/FID skipped" notice is left to the table (other messages pass through).
    """
    import contextlib
    import io

    from .evaluate import load_or_evaluate

    weights, _ = inception_weights(ctx)
    cap = SMOKE_EVAL_IMAGES if ctx.profile == "smoke" else None
    out = {}
    for label, run_dir in runs.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out[label] = dict(load_or_evaluate(Path(run_dir), ctx.data_dir, device=ctx.device,
                                               max_images=cap, inception_weights=weights,
                                               download=False))
        rest = [line for line in err.getvalue().splitlines()
                if line.strip() and not line.startswith("KID/FID skipped")]
        if rest:
            print("\n".join(rest), file=sys.stderr)
    return out


def show_metrics(ctx: ChapterContext, runs: Mapping[str, str | Path],
                 columns: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Compute (or load) the runs' metrics and display them as one table; returns them.

    A metric that could not be computed (KID/FID without the Inception weights) is
    left out of the table silently: the chapters say so once, in a note
    (:func:`cyclegan_lib.page.missing_metrics_note`).
    """
    from .evaluate import metrics_table

    metrics = run_metrics(ctx, runs)
    show_markdown(metrics_table(list(metrics.values()), names=list(metrics), columns=columns,
                                note=False))
    return metrics


# -- photos and credits --------------------------------------------------------------------

def face_photos(ctx: ChapterContext, category: str) -> list[Path]:
    """The photos of one qualitative test (``expressive``, ``angled``...), sorted by name."""
    from .data import IMAGE_EXTENSIONS

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


def read_manifest(ctx: ChapterContext) -> list[dict[str, str]]:
    """``MANIFEST.csv`` of the faces folder: file, category, source, licence, notes."""
    path = ctx.faces_dir / "MANIFEST.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def photo_labels(ctx: ChapterContext, photos: Sequence[Path]) -> list[str]:
    """Row labels for photos: the file stem, marked "(synthetic)" where the manifest says so.

    Two of the dark photos were darkened artificially; a reader must not take
    them for real low-light photos.
    """
    manifest = {row["file"]: row for row in read_manifest(ctx)}
    labels = []
    for p in photos:
        row = manifest.get(f"{p.parent.name}/{p.name}", {})
        synthetic = "synthetic" in " ".join(row.values()).lower()
        labels.append(p.stem + ("\n(SYNTHETIC: darkened)" if synthetic else ""))
    return labels


def credits_table(ctx: ChapterContext, categories: Sequence[str]) -> list[dict[str, str]]:
    """Credit lines for the photos a chapter shows: file, source, licence, notes."""
    rows = []
    for row in read_manifest(ctx):
        if row.get("category") in categories:
            rows.append({"file": row["file"],
                         "source": f"{row.get('source_repo', '')}: {row.get('source_path', '')}",
                         "licence": row.get("license", ""), "notes": row.get("notes", "")})
    return rows

