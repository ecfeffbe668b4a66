"""Every claim of the paper as a number with an interval.

The paper judged its qualitative tests by eye; the functions here measure each on images,
per image, so that :mod:`.stats` gives it an interval and :func:`verdict` calls a difference
only when its interval excludes zero.  The image measurements themselves are in
:mod:`cyclegan_lib.claims_images` (their names are importable from here too); the rules that
turn the measurements into chapter 7's verdicts are in :mod:`cyclegan_lib.verdicts`.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image

from .book import consistency_pairs, face_photos
from .claims_images import *  # noqa: F401,F403 - re-exported measurements
from .claims_images import (IMAGE_MEASURES, as_images, change_correlation, consistency,
                             dark_share, detector_hits, dose_response, skin_lightness_change)
from .evaluate import translate_batch
from .faces import detect_boxes
from .photos import london_pairs, manifest_rows, publishable_files
from .runs import load_generator, run_info
from .stats import (bootstrap_ci, format_effect, format_interval,  # noqa: F401 (re-exported)
                    paired_difference, unpaired_difference, verdict)
from .viz import face_inputs, test_images

__all__ = [
    "bootstrap_ci", "paired_difference", "unpaired_difference", "verdict", "format_effect",
    "format_interval", "photo_sets", "measure_test_set",
    "translate_photos", "interval", "eye_size", "block_measures", "block_tables",
    "qualitative_measures", "qualitative_tables",
    *IMAGE_MEASURES,
]

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

    size = int(run_info(run_dir).get("image_size") or 64)
    x = test_images(data_dir, "A", n=n_images or 10 ** 6, size=size)
    y = translate_batch(load_generator(run_dir, "AtoB", device), x, device)
    out = {"inputs": x, "outputs": y, "anime": detector_hits(y, anime_cascade or "anime"),
           "structure": structure_kept(x, y), "skin": skin_lightness_change(x, y)}
    if human:
        out["human"] = detector_hits(y, "human")
    return out


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
    Reuses :func:`cyclegan_lib.book.face_photos` and ``consistency_pairs``.
    """

    faces_dir = Path(faces_dir)
    ctx = SimpleNamespace(faces_dir=faces_dir)
    out: dict[str, Any] = {c: face_photos(ctx, c) for c in
                           ("expressive", "angled", "dark", "facial_hair", "pool")}
    out["consistency_pairs"] = consistency_pairs(ctx)
    out["smile_pairs"] = london_pairs(faces_dir, publishable_only=False)
    out["frontal"] = [a for a, _ in out["smile_pairs"]]
    out["publishable"] = {faces_dir / f for f in publishable_files(faces_dir)}
    same, synthetic = [], {}
    for r in manifest_rows(faces_dir):
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


# -- the claims of chapters 5 and 6, measured ----------------------------------------------

def interval(values: Any) -> dict[str, float]:
    """``{"effect", "low", "high"}``: the mean of ``values`` with its bootstrap interval
    (all NaN when there are no values, e.g. no eye found in any image)."""
    if not len(values):
        return {"effect": np.nan, "low": np.nan, "high": np.nan}
    est, lo, hi = bootstrap_ci(values)
    return {"effect": est, "low": lo, "high": hi}


def _diff(a: Any, b: Any, paired: bool = True) -> dict[str, Any]:
    if not len(a) or not len(b):
        return {"effect": np.nan, "low": np.nan, "high": np.nan, "call": verdict(np.nan, np.nan)}
    est, lo, hi = (paired_difference if paired else unpaired_difference)(a, b)
    return {"effect": est, "low": lo, "high": hi, "call": verdict(lo, hi)}


def translate_photos(run_dir: str | Path, photos: Sequence[str | Path], device: str = "cpu"):
    """``(inputs, outputs)``: the photos face-cropped as the CLI does (:func:`viz.face_inputs`)
    and translated by the run's G_AB, as [-1, 1] tensors at the run's image size."""
    size = int(run_info(run_dir).get("image_size") or 64)
    x = as_images([crop for crop, _ in face_inputs(photos)], size)
    return x, translate_batch(load_generator(run_dir, "AtoB", device), x, device)


#: Same-person pairs used for :func:`consistency` (all pairs x all pairs are compared).
MAX_PAIRS = 40


def _pairs(sets: Mapping[str, Any], n_pairs: int | None) -> list[tuple[Path, Path]]:
    pairs = [*sets["consistency_pairs"], *sets["same_person"], *sets["smile_pairs"]]
    return pairs[:min(n_pairs or MAX_PAIRS, MAX_PAIRS)]


def eye_size(images: torch.Tensor) -> np.ndarray:
    """Per image, the width of the largest eye OpenCV's Haar eye cascade finds, as a share of
    the image width (NaN where it finds none): "bigger, anime eyes" as a number.  Images are
    upscaled to 256 px (bicubic) like the face detectors' inputs; eyes of 16 px and up."""
    cascade = Path(cv2.data.haarcascades) / "haarcascade_eye.xml"
    sizes = []
    for x in as_images(images):
        image = to_pil_image((x.clamp(-1, 1) + 1) / 2).resize((256, 256), Image.BICUBIC)
        boxes = detect_boxes(image, cascade, min_size=16)
        sizes.append(max(b.w for b in boxes) / 256 if boxes else np.nan)
    return np.array(sizes)


def _eyes(sizes: np.ndarray) -> dict[str, float]:
    """:func:`interval` of the eye sizes found, and the share of images with one found."""
    return {**interval(_found(sizes)[0]), "found": float(np.mean(~np.isnan(sizes)))}


def _found(*values: np.ndarray) -> list[np.ndarray]:
    """The values where every array has one (not NaN), for paired comparisons."""
    keep = np.all([~np.isnan(v) for v in values], axis=0)
    return [v[keep] for v in values]


def block_measures(runs: Mapping[str, str | Path], data_dir: str | Path,
                   faces_dir: str | Path, reference: str, n_images: int | None = None,
                   n_pairs: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """The block-count claims, per run with intervals: anime and human detector rates,
    :func:`structure_kept` and :func:`eye_size` (over the images with an eye found) of
    G_AB(testA), their paired differences from ``reference`` over the same selfies, and
    same-person :func:`consistency` on the :func:`photo_sets` pairs (:data:`MAX_PAIRS`).

    Keys: ``rows`` (one per run), ``diffs`` (``{label: {"anime"|"human"|"structure"|"eyes":
    ...}}``), ``consistency`` (per run), ``inputs consistency`` (the photos' own ratio) and
    ``eyes check`` (eye size of real selfies vs real anime: can the measure tell them apart?).
    """
    pairs = _pairs(photo_sets(faces_dir), n_pairs)
    measured = {k: measure_test_set(r, data_dir, n_images, device) for k, r in runs.items()}
    for m in measured.values():
        m["eyes"] = eye_size(m["outputs"])
    size = next(iter(measured.values()))["inputs"].shape[-1]
    real = {"selfies": eye_size(next(iter(measured.values()))["inputs"]),
            "anime": eye_size(test_images(data_dir, "B", n=n_images or 10 ** 6, size=size))}
    out: dict[str, Any] = {"rows": [], "diffs": {}, "consistency": {}, "eyes check": {
        **{k: _eyes(v) for k, v in real.items()},
        "anime - selfies": _diff(_found(real["anime"])[0], _found(real["selfies"])[0],
                                 paired=False)}}
    for label, run in runs.items():
        m = measured[label]
        xa, ya = translate_photos(run, [a for a, _ in pairs], device)
        xb, yb = translate_photos(run, [b for _, b in pairs], device)
        out["consistency"][label] = consistency(ya, yb)
        out.setdefault("inputs consistency", consistency(xa, xb))
        out["rows"].append({"run": label, **{k: interval(m[k]) for k in
                                             ("anime", "human", "structure")},
                            "eyes": _eyes(m["eyes"])})
        if label != reference:
            ref = measured[reference]
            out["diffs"][label] = {k: _diff(m[k], ref[k]) for k in ("anime", "human", "structure")}
            out["diffs"][label]["eyes"] = _diff(*_found(m["eyes"], ref["eyes"]))
    return out


def block_tables(blocks: Mapping[str, Any], reference: str = "9 blocks"
                 ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """:func:`block_measures` as two tables: every generator's measures with their intervals,
    and every other generator minus ``reference`` with the call."""
    models = [{"generator": r["run"],
               "anime det. [95% CI]": format_interval(r["anime"], signed=False),
               "human det. [95% CI]": format_interval(r["human"], signed=False),
               "structure SSIM [95% CI]": format_interval(r["structure"], signed=False),
               "eye width / image [95% CI]": format_interval(r["eyes"], 3, signed=False),
               "same-person ratio [95% CI]": format_interval(
                   blocks["consistency"][r["run"]], signed=False, key="ratio")}
              for r in blocks["rows"]]
    diffs = [{"comparison": f"{label} - {reference}",
              **{f"{k} [95% CI]": format_interval(d, call=True) for k, d in measured.items()}}
             for label, measured in blocks["diffs"].items()]
    return models, diffs


def qualitative_tables(qual: Mapping[str, Mapping[str, Any]], reference: str = "9 blocks"
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`qualitative_measures` of several generators as two tables: each claim's effect
    (with its call) per generator, and each photo group's anime rate per generator."""
    def ratio(c: Mapping[str, float]) -> str:
        return format_interval(c, signed=False, key="ratio")

    claims_rows = [{"generator": label,
                    "expression: matched - mismatched corr.":
                        format_interval(q["expressions"]["diff"], call=True),
                    f"same-person ratio (inputs: {ratio(q['inputs consistency'])})":
                        ratio(q["consistency"]),
                    "beard dark share: output - input":
                        format_interval(q["facial_hair"]["diff"], call=True),
                    "anime rate: angled - frontal":
                        format_interval(q["angled_vs_frontal"], call=True),
                    "anime rate: dark photos - frontal":
                        format_interval(q["dark_vs_frontal"], call=True)}
                   for label, q in qual.items()]
    groups = [{"group": g, "photos": r["photos"],
               **{label: format_interval(q["rates"][g], signed=False) for label, q in qual.items()}}
              for g, r in qual[reference]["rates"].items()]
    return claims_rows, groups


def qualitative_measures(run_dir: str | Path, faces_dir: str | Path, n: int | None = None,
                         device: str = "cpu") -> dict[str, Any]:
    """The paper's five qualitative tests and the skin-tone change, measured for one model
    (``n`` caps every photo list, for quick runs).

    Keys: ``expressions`` (:func:`change_correlation` on the London smile/neutral pairs:
    ``matched``, ``mismatched`` and their paired difference ``diff``); ``consistency`` and
    ``inputs consistency``; ``facial_hair`` (lower-face :func:`dark_share` of input and
    output and their paired difference); ``rates`` (anime-detector rate per photo group),
    ``angled_vs_frontal`` and ``dark_vs_frontal`` (unpaired differences); ``dose``
    (:func:`dose_response` of the frontal photos at :data:`DOSE_EVS`); ``skin``
    (:func:`skin_lightness_change` over the publishable photos, L* output - input).
    """
    sets = photo_sets(faces_dir)
    cap = (lambda xs: list(xs)[:n]) if n else list
    smile = cap(sets["smile_pairs"])
    xa, ya = translate_photos(run_dir, [a for a, _ in smile], device)
    xb, yb = translate_photos(run_dir, [b for _, b in smile], device)
    cc = change_correlation(xa, xb, ya, yb)
    out: dict[str, Any] = {"expressions": {"matched": interval(cc["matched"]),
                                           "mismatched": interval(cc["mismatched"]),
                                           "diff": _diff(cc["matched"], cc["mismatched"])}}
    pairs = _pairs(sets, n)
    pa, qa = translate_photos(run_dir, [a for a, _ in pairs], device)
    pb, qb = translate_photos(run_dir, [b for _, b in pairs], device)
    out["consistency"], out["inputs consistency"] = consistency(qa, qb), consistency(pa, pb)
    hx, hy = translate_photos(run_dir, cap(sets["facial_hair"]), device)
    din, dout = dark_share(hx), dark_share(hy)
    out["facial_hair"] = {"input": interval(din), "output": interval(dout),
                          "diff": _diff(dout, din)}
    hits = {"frontal": detector_hits(ya), "smiling": detector_hits(yb),
            "expressive": None, "angled": None, "dark": None}
    for group in ("expressive", "angled", "dark"):
        hits[group] = detector_hits(translate_photos(run_dir, cap(sets[group]), device)[1])
    out["rates"] = {g: {**interval(h), "photos": len(h)} for g, h in hits.items()}
    out["angled_vs_frontal"] = _diff(hits["angled"], hits["frontal"], paired=False)
    out["dark_vs_frontal"] = _diff(hits["dark"], hits["frontal"], paired=False)
    out["dose"] = dose_response(load_generator(run_dir, "AtoB", device), xa, device=device)
    shown = cap(sorted(sets["publishable"]))
    sx, sy = translate_photos(run_dir, shown, device)
    skin = skin_lightness_change(sx, sy)
    out["skin"] = {**interval(skin), "values": skin, "photos": [Path(p) for p in shown]}
    return out
