"""Every claim of the paper as a number with an interval, and the verdict table of chapter 7.

The paper judged its qualitative tests by eye.  The functions here turn each into a
measurement on images (tensors ``[N, 3, H, W]`` in [-1, 1] or PIL images), returning
per-image numbers that :func:`bootstrap_ci` / :func:`paired_difference` give an interval;
:func:`verdict` calls a difference only when its interval excludes zero.  Image
measurements (structure, dark pixels, exposure, skin lightness, consistency, expression)
are in :mod:`cyclegan_lib.claims_images`; both are re-exported here.

Regions are fractions ``(top, bottom, left, right)`` of a face crop framed like
selfie2anime (:mod:`cyclegan_lib.faces`: the face box is 0.73 of the side and centred at
0.45 of the height, i.e. rows 0.085-0.815 and columns 0.135-0.865), which is how
:func:`cyclegan_lib.viz.face_inputs` crops photos and how the test selfies come.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .claims_images import *  # noqa: F401,F403 - re-exported measurements
from .claims_images import __all__ as _IMAGE_ALL

__all__ = [
    "bootstrap_ci", "paired_difference", "unpaired_difference", "verdict", "format_effect",
    "STATUSES", "claim_row", "claims_table", "photo_sets", "measure_test_set", *_IMAGE_ALL,
]


# -- statistics -----------------------------------------------------------------------------

def _quantiles(boots: Sequence[float], level: float) -> tuple[float, float]:
    lo, hi = np.nanquantile(np.asarray(boots, dtype=float), [(1 - level) / 2,
                                                              1 - (1 - level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(values: Any, statistic: Callable[..., float] | None = None, n: int = 2000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(estimate, low, high)``: a statistic and its percentile bootstrap interval.

    ``values`` is one array of per-image numbers, or a tuple of arrays of equal
    length (paired: the same images, resampled together) passed to
    ``statistic(*arrays)``.  The default statistic is the mean (of the first array).
    """
    arrays = [np.asarray(v, dtype=float) for v in
              (values if isinstance(values, tuple) else (values,))]
    m = len(arrays[0])
    if m == 0 or any(len(a) != m for a in arrays):
        raise ValueError("bootstrap_ci: empty input or arrays of different lengths")
    stat = statistic or (lambda *a: float(np.mean(a[0])))
    est = float(stat(*arrays))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n):
        idx = rng.integers(0, m, m)
        boots.append(stat(*(a[idx] for a in arrays)))
    return (est, *_quantiles(boots, level))


def paired_difference(a: Any, b: Any, n: int = 2000, seed: int = 0, level: float = 0.95,
                      statistic: Callable[[np.ndarray], float] = np.mean
                      ) -> tuple[float, float, float]:
    """``statistic(a) - statistic(b)`` over the SAME images (e.g. two models' detector hits on
    one test set), with a paired bootstrap interval: images are resampled once for both."""
    return bootstrap_ci((a, b), lambda x, y: float(statistic(x) - statistic(y)), n, seed, level)


def unpaired_difference(a: Any, b: Any, n: int = 2000, seed: int = 0, level: float = 0.95,
                        statistic: Callable[[np.ndarray], float] = np.mean
                        ) -> tuple[float, float, float]:
    """``statistic(a) - statistic(b)`` for two different sets of images (angled vs frontal
    photos), each resampled on its own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        raise ValueError("unpaired_difference: empty input")
    rng = np.random.default_rng(seed)
    boots = [statistic(a[rng.integers(0, len(a), len(a))])
             - statistic(b[rng.integers(0, len(b), len(b))]) for _ in range(n)]
    return (float(statistic(a) - statistic(b)), *_quantiles(boots, level))


def verdict(low: float, high: float, words: tuple[str, str, str] = (
        "higher", "lower", "no clear difference")) -> str:
    """The rule of the book: a difference is called only when its interval excludes zero.

    ``words[0]`` when the whole interval is above 0, ``words[1]`` when below, else
    ``words[2]``.  For a ratio, pass ``log(low), log(high)`` (or test against 1 yourself).
    """
    if low is None or high is None or np.isnan(low) or np.isnan(high):
        return "not measured"
    return words[0] if low > 0 else words[1] if high < 0 else words[2]


def format_effect(effect: float | None, low: float | None = None, high: float | None = None,
                  digits: int = 2, unit: str = "") -> str:
    """``"+0.12 [0.05, 0.20]"``: an effect and its 95% interval, as the tables show it."""
    if effect is None or (isinstance(effect, float) and np.isnan(effect)):
        return "n/a"
    text = f"{effect:+.{digits}f}{unit}"
    if low is not None and high is not None:
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


# -- one model on the test selfies ---------------------------------------------------------

def measure_test_set(run_dir: str | Path, data_dir: str | Path, n_images: int | None = None,
                      device: str = "cpu", human: bool = True,
                      anime_cascade: str | Path | None = None) -> dict[str, Any]:
    """Per-image measurements of a run's G_AB on ``testA``, for paired comparisons of models
    over the same selfies (e.g. 3 vs 9 blocks with :func:`paired_difference`).

    Keys: ``inputs`` and ``outputs`` ([-1, 1] tensors at the run's size); ``anime`` and
    ``human`` (detector hits, 0/1 per image; ``human`` skipped when False); ``structure``
    (:func:`structure_kept`); ``skin`` (:func:`skin_lightness_change`, L* output - input).
    ``anime_cascade`` defaults to ``$CYCLEGAN_ANIME_CASCADE``.
    """
    from .evaluate import translate_batch
    from .report import run_info
    from .trainer import load_generator
    from .viz import test_images

    size = int(run_info(run_dir).get("image_size") or 64)
    x = test_images(data_dir, "A", n=n_images or 10 ** 6, size=size)
    y = translate_batch(load_generator(run_dir, "AtoB", device), x, device)
    out = {"inputs": x, "outputs": y, "anime": detector_hits(y, anime_cascade or "anime"),
           "structure": structure_kept(x, y), "skin": skin_lightness_change(x, y)}
    if human:
        out["human"] = detector_hits(y, "human")
    return out


# -- the verdict table ----------------------------------------------------------------------

#: The four outcomes of a claim; "not testable here" must say why in parentheses.
STATUSES = ("reproduced", "not reproduced", "contradicted", "not testable here")


def claim_row(claim: str, measured: str, status: str, effect: float | None = None,
              low: float | None = None, high: float | None = None, digits: int = 2,
              effect_text: str | None = None) -> dict[str, str]:
    """One row of the verdict table, with the status checked against :data:`STATUSES`.

    ``claim`` is the paper's own words; ``effect_text`` overrides the formatted effect
    (e.g. "37.9% of the parameters" for a count that has no interval).
    """
    base = status.split("(")[0].strip()
    if base not in STATUSES:
        raise ValueError(f"status {status!r}: choose from {', '.join(STATUSES)}")
    if base == "not testable here" and "(" not in status:
        raise ValueError("a 'not testable here' status must say why, in parentheses")
    return {"claim": claim, "measured": measured,
            "effect [95% CI]": effect_text if effect_text is not None
            else format_effect(effect, low, high, digits),
            "status": status}


def claims_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The chapter 7 verdict table as Markdown (rows from :func:`claim_row`); the status
    is shown in bold so a reader scanning the column sees each outcome."""
    from .report import markdown_table

    shown = []
    for r in rows:
        row = claim_row(r["claim"], r["measured"], r["status"],
                        effect_text=r.get("effect [95% CI]", r.get("effect", "n/a")))
        row["status"] = f"**{row['status']}**"
        shown.append(row)
    return markdown_table(shown, columns=["claim", "measured", "effect [95% CI]", "status"],
                          headers={"claim": "the paper says", "measured": "what we measured",
                                   "effect [95% CI]": "effect [95% CI]"})


# -- the photo sets -------------------------------------------------------------------------

_SAME_AS = re.compile(r"same person as (\S+?)_\*")
_SECOND_OF = re.compile(r"second photo of (\S+) person")


def photo_sets(faces_dir: str | Path) -> dict[str, Any]:
    """The groups each qualitative measurement needs, from the folders and ``MANIFEST.csv``.

    Keys: ``expressive``, ``angled``, ``dark``, ``facial_hair``, ``pool`` (photo lists);
    ``consistency_pairs`` (``consistency/NAME_a`` vs ``NAME_b``, not publishable);
    ``smile_pairs`` (London set ``london_NNN_neutral`` vs ``london_NNN_smiling``: the same
    person with two expressions, publishable); ``same_person`` (other pairs the manifest
    names: a second photo of a bearded man, a facial-hair photo and its London pool twin);
    ``synthetic_dark`` (``{darkened photo: its pool original}`` for the photos darkened by
    -3 EV); ``frontal`` (the London neutral photos: frontal studio faces, the reference
    for the angled test); ``publishable`` (set of paths that may be shown).
    Reuses :func:`cyclegan_lib.book.face_photos`, ``consistency_pairs`` and ``read_manifest``.
    """
    from .book import consistency_pairs, face_photos, read_manifest

    faces_dir = Path(faces_dir)
    ctx = SimpleNamespace(faces_dir=faces_dir)
    out: dict[str, Any] = {c: face_photos(ctx, c) for c in
                           ("expressive", "angled", "dark", "facial_hair", "pool")}
    out["consistency_pairs"] = consistency_pairs(ctx)
    pool = {p.name: p for p in out["pool"]}
    out["smile_pairs"] = [(pool[n], pool[n.replace("_neutral", "_smiling")])
                          for n in sorted(pool) if n.startswith("london_")
                          and n.endswith("_neutral.jpg") and n.replace("_neutral", "_smiling")
                          in pool]
    out["frontal"] = [a for a, _ in out["smile_pairs"]]
    manifest = read_manifest(ctx)
    out["publishable"] = {faces_dir / r["file"] for r in manifest
                          if r.get("publishable", "").strip().lower() == "yes"}
    same, synthetic = [], {}
    for r in manifest:
        path, notes = faces_dir / r["file"], r.get("notes", "")
        if (m := _SAME_AS.search(notes)) and (faces_dir / f"{m.group(1)}_neutral.jpg").is_file():
            twin = faces_dir / f"{m.group(1)}_neutral.jpg"
            if "SYNTHETIC" in notes:
                synthetic[path] = twin
            else:
                same.append((twin, path))
        if (m := _SECOND_OF.search(notes)):
            first = path.parent / f"{m.group(1)}{path.suffix}"
            if first.is_file():
                same.append((first, path))
    out["same_person"] = same
    out["synthetic_dark"] = synthetic
    return out
