"""KID and FID with torch-fidelity's estimators and its TF-compatible Inception network.

The weights file is checked to hold only tensors before torch-fidelity unpickles it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import sys
from pathlib import Path

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from . import paths
from .checkpoint import safe_load
from .errors import CheckpointError

__all__ = ["INCEPTION", "KID_SUBSETS", "KID_SUBSET_SIZE", "resolve_inception_weights",
           "check_inception_weights", "image_features", "kid_fid"]

INCEPTION = "inception-v3-compat"   # torch-fidelity's TF-compatible InceptionV3 (FID/KID standard)
KID_SUBSETS = 100                    # torch-fidelity's default
KID_SUBSET_SIZE = 1000               # default; capped at the number of images (100 test images)


def _inception_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)


def resolve_inception_weights(path: str | Path | None = None, download: bool = True
                              ) -> tuple[str | None, str | None]:
    """``(weights file, None)``, or ``(None, why not)`` when KID/FID cannot be computed.

    Order: the argument or ``$CYCLEGAN_INCEPTION_WEIGHTS`` (``off`` disables), the torch hub
    cache, then (``download``) the release URL.
    """
    value = paths.inception_weights_setting(path)
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


def check_inception_weights(path: str) -> None:
    """torch-fidelity loads the file with full unpickling; check it holds only tensors first."""
    state = safe_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors (Inception weights expected)")


@functools.lru_cache(maxsize=2)
def _extractor(name: str, weights: str | None, device: str) -> torch.nn.Module:
    """torch-fidelity's feature extractor ``name``, built once per process."""
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
    """``[N, D]`` features of uint8 ``[N, 3, H, W]`` images (Inception resizes to 299 itself)."""
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


def kid_fid(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """KID (x100, mean and std over random subsets) and FID between two feature sets.

    FID from 100 images is biased upwards: compare it between runs, not with published FIDs.
    """
    subset = min(KID_SUBSET_SIZE, len(fake), len(real))
    if subset < 2:
        raise ValueError("KID needs at least 2 images per set")
    kid = kid_features_to_metric(fake, real, kid_subsets=KID_SUBSETS, kid_subset_size=subset,
                                 rng_seed=2020, verbose=False)
    fid = fid_statistics_to_metric(fid_features_to_statistics(fake.double()),
                                   fid_features_to_statistics(real.double()), False)
    return {"kid_x100_mean": 100 * kid[torch_fidelity.KEY_METRIC_KID_MEAN],
            "kid_x100_std": 100 * kid[torch_fidelity.KEY_METRIC_KID_STD],
            "fid": fid[torch_fidelity.KEY_METRIC_FID], "kid_subset_size": subset,
            "kid_subsets": KID_SUBSETS}
