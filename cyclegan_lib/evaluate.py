"""Evaluation: KID/FID, face-detector rates, cycle and identity L1 of a run on the test split.

:func:`evaluate_run` measures both directions; :func:`load_or_evaluate` caches the result in
``RUN/metrics.json`` under a key of everything it depends on.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from . import paths
from .cyclegan import resolve_device
from .data import float_to_uint8, load_domain, uint8_to_float
from .errors import DataError
from .faces import (DETECT_MIN_SIZE, DETECT_SIZE, MIN_NEIGHBORS, SCALE_FACTOR, detection_rate,
                    human_cascade_path)
from .fidelity import (INCEPTION, check_inception_weights, image_features, kid_fid,
                       resolve_inception_weights)
from .models import count_parameters
from .runs import checkpoint_path, generator_for, load_checkpoint_config, run_info
from .tables import MISSING, fixed, lookup, markdown_table

__all__ = [
    "evaluate_run", "load_or_evaluate", "metrics_table", "metrics_rows", "detector_table",
    "image_features", "kid_fid", "resolve_inception_weights",
    "translate_batch", "l1", "pairwise_l1", "diversity", "check_inception_weights", "SET_NAMES",
    "PUBLISHED_KID_X100", "INCEPTION", "EVAL_VERSION", "METRIC_PATHS", "metric", "COLUMNS",
]

EVAL_VERSION = 2
# U-GAT-IT (Kim et al., ICLR 2020), Table 2, selfie2anime, KID x 100 (lower is better), 256 px.
PUBLISHED_KID_X100 = {"CycleGAN": 13.08, "U-GAT-IT": 11.61}

SET_NAMES = ("testA", "testB", "G_AB(testA)", "G_BA(testB)")


# -- small pieces -------------------------------------------------------------------------

@torch.no_grad()
def translate_batch(generator: torch.nn.Module, images: torch.Tensor, device: str | torch.device,
                    batch_size: int = 16) -> torch.Tensor:
    """A generator applied to ``[N, 3, S, S]`` images in [-1, 1], in batches; result on the CPU."""
    out = [generator(images[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def pairwise_l1(images: torch.Tensor) -> Any:
    """``[N, N]`` mean absolute differences between the images of a batch (numpy)."""
    x = images.detach().float().flatten(1)
    return torch.cdist(x, x, p=1).div(x.shape[1]).numpy()


def diversity(images: torch.Tensor) -> float:
    """Mean L1 distance between all pairs of a [-1, 1] batch: near 0 when a generator collapses."""
    d = pairwise_l1(images)
    return float(d.sum() / (len(d) * (len(d) - 1))) if len(d) > 1 else float("nan")


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two image batches on [-1, 1] (the cycle loss without lambda)."""
    return float((a.float() - b.float()).abs().mean())


_RATE_MEMO: dict[tuple, float] = {}


def _rate(images: torch.Tensor, cascade: str) -> float:
    """:func:`faces.detection_rate`, memoised per process (real test sets recur across runs)."""
    key = (cascade, tuple(images.shape), hashlib.sha1(images.contiguous().numpy().tobytes()
                                                      ).hexdigest())
    if key not in _RATE_MEMO:
        _RATE_MEMO[key] = detection_rate(images, cascade)
    return _RATE_MEMO[key]


# -- one run --------------------------------------------------------------------------------

def _run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _cache_key(ckpt: Path, data_dir: Path, max_images: int | None, kid: bool,
               weights: str | None, feature_extractor: str, anime_cascade: str | None) -> dict:
    st = ckpt.stat()
    return {"version": EVAL_VERSION, "checkpoint": ckpt.name, "checkpoint_bytes": st.st_size,
            "checkpoint_mtime_ns": st.st_mtime_ns, "data": str(data_dir.resolve()),
            "max_images": max_images, "kid": kid, "inception_weights": weights,
            "feature_extractor": feature_extractor, "anime_cascade": anime_cascade}


def _resolve(run_or_checkpoint: str | Path, data_dir: str | Path, max_images: int | None,
             kid: bool, anime_cascade: str | Path | None, inception_weights: str | Path | None,
             feature_extractor: str, download: bool
             ) -> tuple[Path, Path, str | None, str | None, str | None, str | None, dict]:
    """Everything evaluate_run decides before computing: paths, weights, reasons, cache key."""
    ckpt = checkpoint_path(run_or_checkpoint)
    data_dir = Path(data_dir)
    for split in ("testA", "testB"):
        if not (data_dir / split).is_dir():
            raise DataError(f"test folder not found: {data_dir / split} (evaluate needs testA "
                            f"and testB)")
    weights, kid_reason = None, None
    if not kid:
        kid_reason = "not requested (--no-kid)"
    elif feature_extractor == INCEPTION:
        weights, kid_reason = resolve_inception_weights(inception_weights, download=download)
    else:
        weights = str(inception_weights) if inception_weights else None
    try:
        cascade, cascade_reason = str(paths.anime_cascade(anime_cascade).resolve()), None
    except FileNotFoundError as exc:
        cascade, cascade_reason = None, str(exc)
    key = _cache_key(ckpt, data_dir, max_images, kid, weights, feature_extractor, cascade)
    return ckpt, data_dir, weights, kid_reason, cascade, cascade_reason, key


def evaluate_run(run_or_checkpoint: str | Path, data_dir: str | Path, device: str = "cpu",
                 kid: bool = True, max_images: int | None = None,
                 anime_cascade: str | Path | None = None,
                 inception_weights: str | Path | None = None,
                 feature_extractor: str = INCEPTION, download: bool = True,
                 batch_size: int = 16) -> dict[str, Any]:
    """All metrics of one run on the test split, as a JSON-able dict.

    Without Inception weights ``kid_x100`` and ``fid`` stay None, the reason in ``kid_skipped``.
    """
    started = time.perf_counter()
    ckpt, data_dir, weights, kid_reason, cascade, cascade_reason, key = _resolve(
        run_or_checkpoint, data_dir, max_images, kid, anime_cascade, inception_weights,
        feature_extractor, download)
    dev = resolve_device(device)
    cfg = load_checkpoint_config(ckpt)
    size = int(cfg["image_size"])
    g_ab = generator_for(ckpt, "AtoB", str(dev))
    g_ba = generator_for(ckpt, "BtoA", str(dev))
    run_dir = _run_dir_of(ckpt)
    summary = run_info(run_dir)

    real_a = load_domain(data_dir / "testA", size, max_images=max_images).images
    real_b = load_domain(data_dir / "testB", size, max_images=max_images).images
    fa, fb = uint8_to_float(real_a), uint8_to_float(real_b)
    fake_b = translate_batch(g_ab, fa, dev, batch_size)
    fake_a = translate_batch(g_ba, fb, dev, batch_size)
    rec_a = translate_batch(g_ba, fake_b, dev, batch_size)
    rec_b = translate_batch(g_ab, fake_a, dev, batch_size)
    idt_a = translate_batch(g_ba, fa, dev, batch_size)
    idt_b = translate_batch(g_ab, fb, dev, batch_size)
    translate_seconds = time.perf_counter() - started

    sets = dict(zip(SET_NAMES, (real_a, real_b, float_to_uint8(fake_b), float_to_uint8(fake_a))))
    t0 = time.perf_counter()
    detector: dict[str, Any] = {name: {} for name in SET_NAMES}
    for name, images in sets.items():
        detector[name]["human"] = _rate(images, str(human_cascade_path()))
        detector[name]["anime"] = _rate(images, cascade) if cascade else None
    detector_seconds = time.perf_counter() - t0

    metrics: dict[str, Any] = {
        "run": {
            "path": str(run_dir), "checkpoint": ckpt.name,
            "step": int(ckpt.stem[5:]) if ckpt.stem.startswith("step_")
            else int(summary.get("steps", summary.get("step", 0))),
            "preset": cfg.get("preset"), "profile": cfg.get("profile"), "image_size": size,
            "n_blocks": cfg.get("n_blocks"), "ngf": cfg.get("ngf"),
            "params_G": count_parameters(g_ab),
            "total_steps": summary.get("total_steps"), "complete": summary.get("complete"),
            "train_seconds": summary.get("train_seconds"),
            "seconds_per_step": summary.get("seconds_per_step"),
            "device": summary.get("device"),
        },
        "data": {"dir": str(data_dir.resolve()), "n_testA": len(real_a), "n_testB": len(real_b)},
        "detector": detector,
        "detector_settings": {
            "anime_cascade": Path(cascade).name if cascade else None,
            "human_cascade": human_cascade_path().name, "preprocess": "grey + equalizeHist",
            "upsample_to": DETECT_SIZE, "scale_factor": SCALE_FACTOR,
            "min_neighbors": MIN_NEIGHBORS, "min_size": DETECT_MIN_SIZE},
        # Mean pairwise L1 of a set: outputs far less diverse than their inputs = collapse.
        "diversity": {"testA": diversity(fa), "testB": diversity(fb),
                      "G_AB(testA)": diversity(uint8_to_float(sets["G_AB(testA)"])),
                      "G_BA(testB)": diversity(uint8_to_float(sets["G_BA(testB)"]))},
        "cycle_l1": {"A->B->A": l1(rec_a, fa), "B->A->B": l1(rec_b, fb)},
        "identity_l1": {"G_BA(testA)": l1(idt_a, fa), "G_AB(testB)": l1(idt_b, fb)},
        "kid_x100": None, "fid": None,
    }
    if cascade_reason:
        metrics["detector_skipped"] = f"anime detector: {cascade_reason}"
        print(f"anime-face rates skipped: {cascade_reason}", file=sys.stderr)

    t0 = time.perf_counter()
    if kid_reason is None:
        try:
            if feature_extractor == INCEPTION and weights:
                check_inception_weights(weights)
            feats = {name: image_features(images, weights, feature_extractor, dev)
                     for name, images in sets.items()}
            ab = kid_fid(feats["G_AB(testA)"], feats["testB"])
            ba = kid_fid(feats["G_BA(testB)"], feats["testA"])
            base = kid_fid(feats["testA"], feats["testB"])
            metrics["kid_x100"] = {
                "A->B": {"mean": ab["kid_x100_mean"], "std": ab["kid_x100_std"]},
                "B->A": {"mean": ba["kid_x100_mean"], "std": ba["kid_x100_std"]},
                "testA vs testB": {"mean": base["kid_x100_mean"], "std": base["kid_x100_std"]}}
            metrics["fid"] = {"A->B": ab["fid"], "B->A": ba["fid"], "testA vs testB": base["fid"]}
            metrics["kid_settings"] = {
                "feature_extractor": feature_extractor,
                "weights": Path(weights).name if weights else None,
                "image_size": size, "kid_subset_size": ab["kid_subset_size"],
                "kid_subsets": ab["kid_subsets"],
                "note": "fakes vs real target images, both at the run's image size (Inception "
                        "resizes to 299 px); 'testA vs testB' is what a translator that "
                        "changes nothing would score"}
        except Exception as exc:  # weights of the wrong shape, a damaged file...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            kid_reason = f"{type(exc).__name__}: {first}"
    if kid_reason is not None:
        metrics["kid_skipped"] = kid_reason
        if kid:
            print(f"KID/FID skipped: {kid_reason}", file=sys.stderr)
    metrics["timing"] = {"translate_seconds": round(translate_seconds, 2),
                         "detector_seconds": round(detector_seconds, 2),
                         "kid_fid_seconds": round(time.perf_counter() - t0, 2),
                         "total_seconds": round(time.perf_counter() - started, 2)}
    metrics["cache_key"] = key
    return metrics


def load_or_evaluate(run_dir: str | Path, data_dir: str | Path,
                     cache_file: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate_run`, cached in ``cache_file`` (default ``RUN/metrics.json``).

    Reused only while its key (checkpoint name, size and mtime, data, settings) matches.
    """
    run_dir = Path(run_dir)
    cache = Path(cache_file) if cache_file else run_dir / "metrics.json"
    defaults = dict(max_images=None, kid=True, anime_cascade=None, inception_weights=None,
                    feature_extractor=INCEPTION, download=True)
    key = _resolve(run_dir, data_dir, **{n: kwargs.get(n, d) for n, d in defaults.items()})[-1]
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("cache_key") == key:
                return cached
        except (OSError, ValueError):
            pass  # unreadable cache: recompute
    metrics = evaluate_run(run_dir, data_dir, **kwargs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, cache)
    return metrics


# -- tables ---------------------------------------------------------------------------------

#: Where each named number lives in the dict of :func:`cyclegan_lib.evaluate.evaluate_run`.
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "anime det. G_AB(A)": ("detector", "G_AB(testA)", "anime"),
    "human det. G_AB(A)": ("detector", "G_AB(testA)", "human"),
    "human det. G_BA(B)": ("detector", "G_BA(testB)", "human"),
    "anime det. G_BA(B)": ("detector", "G_BA(testB)", "anime"),
    "anime det. testA": ("detector", "testA", "anime"),
    "anime det. testB": ("detector", "testB", "anime"),
    "human det. testA": ("detector", "testA", "human"),
    "human det. testB": ("detector", "testB", "human"),
    "cycle L1 A": ("cycle_l1", "A->B->A"),
    "cycle L1 B": ("cycle_l1", "B->A->B"),
    "identity L1 A": ("identity_l1", "G_BA(testA)"),
    "identity L1 B": ("identity_l1", "G_AB(testB)"),
    "KIDx100 A->B": ("kid_x100", "A->B", "mean"),
    "KIDx100 B->A": ("kid_x100", "B->A", "mean"),
    "FID A->B": ("fid", "A->B"),
    "FID B->A": ("fid", "B->A"),
}


def metric(m: Mapping[str, Any] | None, name: str) -> float | None:
    """One number of a metrics dict by its :data:`METRIC_PATHS` name (None if absent)."""
    value = lookup(m, METRIC_PATHS[name])
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _kid(m: dict, direction: str) -> str:
    kid = lookup(m, ("kid_x100", direction))
    return MISSING if kid is None else f"{kid['mean']:.2f} ± {kid['std']:.2f}"


def _cell(name: str, digits: int = 3) -> Callable[[dict], str]:
    return lambda m: fixed(metric(m, name), digits)


def _scaled(key: str, scale: float, digits: int, suffix: str = "") -> Callable[[dict], str]:
    return lambda m: fixed(None if lookup(m, ("run", key)) is None else m["run"][key] / scale,
                           digits, suffix)


# (header, function of one metrics dict -> cell text)
COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("blocks", lambda m: str(lookup(m, ("run", "n_blocks")) or MISSING)),
    ("G params", _scaled("params_G", 1e6, 2, " M")),
    ("train min", _scaled("train_seconds", 60, 1)),
    ("anime det. G_AB(A)", _cell("anime det. G_AB(A)", 2)),
    ("human det. G_AB(A)", _cell("human det. G_AB(A)", 2)),
    ("human det. G_BA(B)", _cell("human det. G_BA(B)", 2)),
    ("cycle L1 A→B→A", _cell("cycle L1 A")),
    ("cycle L1 B→A→B", _cell("cycle L1 B")),
    ("identity L1 A", _cell("identity L1 A")),
    ("identity L1 B", _cell("identity L1 B")),
    ("KID×100 A→B", lambda m: _kid(m, "A->B")),
    ("FID A→B", _cell("FID A->B", 1)),
    ("KID×100 B→A", lambda m: _kid(m, "B->A")),
    ("FID B→A", _cell("FID B->A", 1)),
]


def metrics_rows(metrics: Sequence[dict], names: Sequence[str] | None = None
                 ) -> list[dict[str, str]]:
    """One dict of formatted cells per run (``run`` first, then :data:`COLUMNS`)."""
    return [{"run": names[i] if names else f"{lookup(m, ('run', 'preset')) or '?'} "
                                           f"({lookup(m, ('run', 'profile')) or '?'})",
             **{h: f(m) for h, f in COLUMNS}} for i, m in enumerate(metrics)]


def metrics_table(metrics: Sequence[dict], names: Sequence[str] | None = None,
                  columns: Sequence[str] | None = None, note: bool = True) -> str:
    """A markdown table of several runs' metrics; ``columns`` picks headers of :data:`COLUMNS`.

    Columns empty for every run are dropped, with a note why unless ``note=False``.
    """
    if not metrics:
        raise ValueError("metrics_table: no metrics given")
    rows = metrics_rows(metrics, names)
    keep = ["run"] + [h for h, _ in COLUMNS if (columns is None or h in columns)
                      and any(r[h] != MISSING for r in rows)]
    table = markdown_table(rows, keep)
    skipped = {m.get("kid_skipped") for m in metrics if m.get("kid_skipped")}
    if skipped and note:
        table += "\n\nKID/FID not computed: " + "; ".join(sorted(skipped))
    return table


def detector_table(metrics: dict) -> str:
    """Markdown: detector firing rates on real and translated test images of one run."""
    rates = {name: lookup(metrics, ("detector", name)) or {} for name in SET_NAMES}
    return markdown_table([{"images": name, "anime-face detector": fixed(r.get("anime"), 2),
                            "human-face detector": fixed(r.get("human"), 2)}
                           for name, r in rates.items()])
