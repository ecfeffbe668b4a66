"""Evaluation: put numbers next to the pictures the paper only judged by eye.

For one run, :func:`evaluate_run` translates the test split both ways and
measures

* **KID and FID** between translated and real target images (torch-fidelity,
  standard TF-Inception features, KID reported x100 like the U-GAT-IT table);
* **detector rates**: how often an anime-face and a human-face cascade fire on
  real and translated images (a download-free "which domain does it look like");
* **cycle reconstruction** and **identity-mapping** L1 errors on [-1, 1].

:func:`load_or_evaluate` caches the result in ``RUN/metrics.json`` (recomputed
only when the checkpoint, data or settings change) and :func:`metrics_table`
turns several runs into the markdown table the chapters show.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = [
    "evaluate_run", "load_or_evaluate", "metrics_table", "metrics_rows", "detector_table",
    "fidelity_scores", "image_features", "kid_fid", "resolve_inception_weights",
    "translate_batch", "l1",
    "PUBLISHED_KID_X100", "INCEPTION", "EVAL_VERSION",
]

EVAL_VERSION = 1
INCEPTION = "inception-v3-compat"   # torch-fidelity's TF-compatible InceptionV3 (FID/KID standard)
KID_SUBSETS = 100                    # torch-fidelity's default
KID_SUBSET_SIZE = 1000               # default; capped at the number of images (100 test images)
# U-GAT-IT (Kim et al., ICLR 2020), Table 2, selfie2anime, KID x 100 (lower is better), 256 px.
PUBLISHED_KID_X100 = {"CycleGAN": 13.08, "U-GAT-IT": 11.61}

SET_NAMES = ("testA", "testB", "G_AB(testA)", "G_BA(testB)")


# -- small pieces -------------------------------------------------------------------------

def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0)


@torch.no_grad()
def translate_batch(generator: torch.nn.Module, images: torch.Tensor, device: str | torch.device,
                    batch_size: int = 16) -> torch.Tensor:
    """A generator applied to ``[N, 3, S, S]`` images in [-1, 1], in batches; result on the CPU."""
    out = [generator(images[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two image batches on [-1, 1] (the cycle loss without lambda)."""
    return float((a.float() - b.float()).abs().mean())


# -- KID / FID ----------------------------------------------------------------------------

def _inception_file() -> Path:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)


def resolve_inception_weights(path: str | Path | None = None, download: bool = True
                              ) -> tuple[str | None, str | None]:
    """``(weights file, None)``, or ``(None, why not)`` when KID/FID cannot be computed.

    Order: the argument, ``$CYCLEGAN_INCEPTION_WEIGHTS`` (``off`` disables
    KID/FID), torch-fidelity's file in the torch hub cache, then (``download``)
    torch-fidelity's release URL, hash-checked.  A given path that does not exist
    is an answer, not a reason to download.
    """
    value = str(path) if path else os.environ.get("CYCLEGAN_INCEPTION_WEIGHTS", "")
    if value.lower() == "off":
        return None, "disabled (CYCLEGAN_INCEPTION_WEIGHTS=off)"
    if value:
        p = Path(value).expanduser()
        return (str(p), None) if p.is_file() else (
            None, f"Inception weights not found: {p} (CYCLEGAN_INCEPTION_WEIGHTS)")
    cached = _inception_file()
    if cached.is_file():
        return str(cached), None
    if not download:
        return None, f"no Inception weights (set CYCLEGAN_INCEPTION_WEIGHTS to {cached.name})"
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    try:  # torch.hub announces the attempt on stdout; we report the outcome in one line
        with contextlib.redirect_stdout(io.StringIO()):
            torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False,
                                               check_hash=True, weights_only=True)
    except Exception as exc:  # offline, proxy, hash mismatch...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, (f"could not download Inception weights ({type(exc).__name__}: {first}); "
                      f"set CYCLEGAN_INCEPTION_WEIGHTS to a local copy of {cached.name}")
    print(f"downloaded Inception weights to {cached}", file=sys.stderr)
    return str(cached), None


def _check_weights(path: str) -> None:
    """torch-fidelity loads the file with full unpickling; check it holds only tensors first."""
    from .checkpoint import safe_load

    state = safe_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        from .checkpoint import CheckpointError

        raise CheckpointError(f"{path}: not a state dict of tensors (Inception weights expected)")


@functools.lru_cache(maxsize=2)
def _extractor(name: str, weights: str | None, device: str) -> torch.nn.Module:
    """torch-fidelity's feature extractor ``name``, built once per process."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"unknown feature extractor {name!r} (register it with "
                         f"torch_fidelity.register_feature_extractor)")
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("kid")
    dev = torch.device(device)
    ctx = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    with ctx:
        return create_feature_extractor(name, [layer], cuda=dev.type == "cuda",
                                        feature_extractor_weights_path=weights, verbose=False)


_FEATURE_MEMO: dict[tuple, torch.Tensor] = {}


@torch.no_grad()
def image_features(images: torch.Tensor, weights: str | None = None,
                   feature_extractor: str = INCEPTION, device: str | torch.device = "cpu",
                   batch_size: int = 50) -> torch.Tensor:
    """``[N, D]`` features of uint8 ``[N, 3, H, W]`` images (Inception resizes to 299 itself).

    Results are memoised per process on the images' bytes, so the real test
    sets are run through Inception once however many runs are evaluated.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError("expected uint8 images [N, 3, H, W]")
    images = images.contiguous()
    key = (feature_extractor, weights, tuple(images.shape),
           hashlib.sha1(images.numpy().tobytes()).hexdigest())
    if key in _FEATURE_MEMO:
        return _FEATURE_MEMO[key]
    dev = torch.device(device)
    net = _extractor(feature_extractor, weights, str(dev))
    feats = torch.cat([net(images[i:i + batch_size].to(dev))[0].float().cpu()
                       for i in range(0, len(images), batch_size)])
    if len(_FEATURE_MEMO) >= 8:
        _FEATURE_MEMO.pop(next(iter(_FEATURE_MEMO)))
    _FEATURE_MEMO[key] = feats
    return feats


def kid_fid(fake: torch.Tensor, real: torch.Tensor, kid_subsets: int = KID_SUBSETS,
            seed: int = 2020) -> dict[str, float]:
    """KID (x100, mean and std over random subsets) and FID between two feature sets.

    torch-fidelity's own estimators (unbiased MMD with the cubic polynomial
    kernel; Frechet distance of Gaussians).  The KID subset size is capped at
    the smaller set, so 100 test images work.  FID from 100 images is biased
    upwards: compare it between runs here, not with published FIDs.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    import torch_fidelity

    subset = min(KID_SUBSET_SIZE, len(fake), len(real))
    if subset < 2:
        raise ValueError("KID needs at least 2 images per set")
    kid = kid_features_to_metric(fake, real, kid_subsets=kid_subsets, kid_subset_size=subset,
                                 rng_seed=seed, verbose=False)
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake.double()),
                                   fid_features_to_statistics(real.double()), False)
    return {"kid_x100_mean": 100 * kid[torch_fidelity.KEY_METRIC_KID_MEAN],
            "kid_x100_std": 100 * kid[torch_fidelity.KEY_METRIC_KID_STD],
            "fid": fid[torch_fidelity.KEY_METRIC_FID], "kid_subset_size": subset,
            "kid_subsets": kid_subsets}


def fidelity_scores(fake: torch.Tensor, real: torch.Tensor, weights: str | None = None,
                    feature_extractor: str = INCEPTION, device: str | torch.device = "cpu",
                    kid_subsets: int = KID_SUBSETS, seed: int = 2020) -> dict[str, float]:
    """KID x100 and FID between two uint8 image sets: :func:`image_features` + :func:`kid_fid`.

    ``feature_extractor`` is any name registered with
    ``torch_fidelity.register_feature_extractor`` (tests use a small stand-in);
    ``weights`` is its weights file (None: torch-fidelity downloads its own).
    """
    f_fake = image_features(fake, weights, feature_extractor, device)
    f_real = image_features(real, weights, feature_extractor, device)
    return kid_fid(f_fake, f_real, kid_subsets, seed)


_RATE_MEMO: dict[tuple, float] = {}


def _rate(images: torch.Tensor, cascade: str) -> float:
    """:func:`faces.detection_rate`, memoised per process (real test sets recur across runs)."""
    from .faces import detection_rate

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
    from .data import DataError
    from .faces import anime_cascade_path
    from .trainer import _checkpoint_path

    ckpt = _checkpoint_path(run_or_checkpoint)
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
        cascade, cascade_reason = str(anime_cascade_path(anime_cascade).resolve()), None
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

    Loads both generators (newest checkpoint of a run directory, or a checkpoint
    file), translates ``testA`` and ``testB`` at the run's image size and
    measures detector rates, cycle and identity L1, and KID/FID of both
    directions.  When the Inception weights are unavailable (offline, see
    :func:`resolve_inception_weights`) it prints one line, sets ``kid_x100`` and
    ``fid`` to None with the reason in ``kid_skipped``, and goes on.
    """
    from .data import load_domain
    from .faces import human_cascade_path
    from .checkpoint import safe_load
    from .models import count_parameters
    from .trainer import load_generator, resolve_device

    started = time.perf_counter()
    ckpt, data_dir, weights, kid_reason, cascade, cascade_reason, key = _resolve(
        run_or_checkpoint, data_dir, max_images, kid, anime_cascade, inception_weights,
        feature_extractor, download)
    dev = resolve_device(device)
    state = safe_load(ckpt)
    cfg = state["config"]
    size = int(cfg["image_size"])
    g_ab = load_generator(ckpt, "AtoB", dev)
    g_ba = load_generator(ckpt, "BtoA", dev)
    run_dir = _run_dir_of(ckpt)
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}

    real_a = load_domain(data_dir / "testA", size, max_images=max_images).images
    real_b = load_domain(data_dir / "testB", size, max_images=max_images).images
    fa, fb = _to_float(real_a), _to_float(real_b)
    fake_b = translate_batch(g_ab, fa, dev, batch_size)
    fake_a = translate_batch(g_ba, fb, dev, batch_size)
    rec_a = translate_batch(g_ba, fake_b, dev, batch_size)
    rec_b = translate_batch(g_ab, fake_a, dev, batch_size)
    idt_a = translate_batch(g_ba, fa, dev, batch_size)
    idt_b = translate_batch(g_ab, fb, dev, batch_size)
    translate_seconds = time.perf_counter() - started

    sets = dict(zip(SET_NAMES, (real_a, real_b, _to_uint8(fake_b), _to_uint8(fake_a))))
    t0 = time.perf_counter()
    detector: dict[str, Any] = {name: {} for name in SET_NAMES}
    for name, images in sets.items():
        detector[name]["human"] = _rate(images, str(human_cascade_path()))
        detector[name]["anime"] = _rate(images, cascade) if cascade else None
    detector_seconds = time.perf_counter() - t0

    metrics: dict[str, Any] = {
        "run": {
            "path": str(run_dir), "checkpoint": ckpt.name, "step": int(state.get("step", 0)),
            "preset": cfg.get("preset"), "profile": cfg.get("profile"), "image_size": size,
            "n_blocks": cfg.get("n_blocks"), "ngf": cfg.get("ngf"),
            "params_G": count_parameters(g_ab),
            "total_steps": summary.get("total_steps"), "complete": summary.get("complete"),
            "train_seconds": summary.get("train_seconds", state.get("train_seconds")),
            "seconds_per_step": summary.get("seconds_per_step"),
            "device": summary.get("device"),
        },
        "data": {"dir": str(data_dir.resolve()), "n_testA": len(real_a), "n_testB": len(real_b)},
        "detector": detector,
        "detector_settings": {
            "anime_cascade": Path(cascade).name if cascade else None,
            "human_cascade": human_cascade_path().name, "preprocess": "grey + equalizeHist",
            "upsample_to": 256, "scale_factor": 1.1, "min_neighbors": 5, "min_size": 48},
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
                _check_weights(weights)
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

    The cache is reused only when its key matches: same checkpoint file (name,
    size, mtime), data folder, image cap, KID request, Inception weights,
    feature extractor and anime cascade.  So a retrained run, or weights that
    became available, trigger a fresh evaluation; re-rendering a chapter does not.
    """
    run_dir = Path(run_dir)
    cache = Path(cache_file) if cache_file else run_dir / "metrics.json"
    names = ("max_images", "kid", "anime_cascade", "inception_weights", "feature_extractor",
             "download")
    defaults = dict(max_images=None, kid=True, anime_cascade=None, inception_weights=None,
                    feature_extractor=INCEPTION, download=True)
    opts = {n: kwargs.get(n, defaults[n]) for n in names}
    key = _resolve(run_dir, data_dir, opts["max_images"], opts["kid"], opts["anime_cascade"],
                   opts["inception_weights"], opts["feature_extractor"], opts["download"])[-1]
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

def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _kid(m: dict, direction: str) -> str:
    kid = _get(m, "kid_x100", direction)
    return "-" if kid is None else f"{kid['mean']:.2f} ± {kid['std']:.2f}"


# (header, function of one metrics dict -> cell text)
COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("blocks", lambda m: _fmt(_get(m, "run", "n_blocks"))),
    ("G params", lambda m: _fmt(None if _get(m, "run", "params_G") is None
                                else f"{m['run']['params_G'] / 1e6:.2f} M")),
    ("train min", lambda m: _fmt(None if _get(m, "run", "train_seconds") is None
                                 else m["run"]["train_seconds"] / 60, 1)),
    ("anime det. G_AB(A)", lambda m: _fmt(_get(m, "detector", "G_AB(testA)", "anime"), 2)),
    ("human det. G_AB(A)", lambda m: _fmt(_get(m, "detector", "G_AB(testA)", "human"), 2)),
    ("human det. G_BA(B)", lambda m: _fmt(_get(m, "detector", "G_BA(testB)", "human"), 2)),
    ("cycle L1 A→B→A", lambda m: _fmt(_get(m, "cycle_l1", "A->B->A"))),
    ("cycle L1 B→A→B", lambda m: _fmt(_get(m, "cycle_l1", "B->A->B"))),
    ("identity L1 A", lambda m: _fmt(_get(m, "identity_l1", "G_BA(testA)"))),
    ("identity L1 B", lambda m: _fmt(_get(m, "identity_l1", "G_AB(testB)"))),
    ("KID×100 A→B", lambda m: _kid(m, "A->B")),
    ("FID A→B", lambda m: _fmt(_get(m, "fid", "A->B"), 1)),
    ("KID×100 B→A", lambda m: _kid(m, "B->A")),
    ("FID B→A", lambda m: _fmt(_get(m, "fid", "B->A"), 1)),
]


def metrics_rows(metrics: Sequence[dict], names: Sequence[str] | None = None
                 ) -> list[dict[str, str]]:
    """One dict of formatted cells per run (``run`` first, then :data:`COLUMNS`)."""
    rows = []
    for i, m in enumerate(metrics):
        name = names[i] if names else (
            f"{_get(m, 'run', 'preset') or '?'} ({_get(m, 'run', 'profile') or '?'})")
        rows.append({"run": name, **{h: f(m) for h, f in COLUMNS}})
    return rows


def _markdown(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r[h] for h in headers) + " |" for r in rows]
    return "\n".join(lines)


def metrics_table(metrics: Sequence[dict], names: Sequence[str] | None = None,
                  columns: Sequence[str] | None = None, note: bool = True) -> str:
    """A markdown table of several runs' metrics (``IPython.display.Markdown`` shows it).

    ``columns`` picks headers of :data:`COLUMNS` (default all); columns that are
    empty for every run (e.g. KID when the weights were unavailable) are dropped,
    and a note under the table says why (``note=False``: the page says it once elsewhere).
    """
    if not metrics:
        raise ValueError("metrics_table: no metrics given")
    rows = metrics_rows(metrics, names)
    keep = ["run"] + [h for h, _ in COLUMNS if (columns is None or h in columns)
                      and any(r[h] != "-" for r in rows)]
    table = _markdown([{h: r[h] for h in keep} for r in rows])
    skipped = {m.get("kid_skipped") for m in metrics if m.get("kid_skipped")}
    if skipped and note:
        table += "\n\nKID/FID not computed: " + "; ".join(sorted(skipped))
    return table


def detector_table(metrics: dict) -> str:
    """Markdown: detector firing rates on real and translated test images of one run."""
    rows = []
    for name in SET_NAMES:
        rates = _get(metrics, "detector", name) or {}
        rows.append({"images": name, "anime-face detector": _fmt(rates.get("anime"), 2),
                     "human-face detector": _fmt(rates.get("human"), 2)})
    return _markdown(rows)
