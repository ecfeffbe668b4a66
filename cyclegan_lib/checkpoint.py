"""Checkpoints: atomic writes, weights-only loading, exact RNG state capture.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
``torch.load(weights_only=True)`` reads it without running code; a write goes to
a fsynced temporary file renamed over the target, so a crash leaves the old one.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT", "CheckpointError", "atomic_save", "safe_load", "capture_rng", "restore_rng",
    "list_checkpoints", "latest_checkpoint", "prune_checkpoints", "checkpoint_name",
]

_NAME = re.compile(r"^step_(\d{8})\.pt$")
# Keys: format, config, step, models, optimizers, buffers, rng, history, train_seconds[, ema].
CHECKPOINT_FORMAT = "cyclegan_lib/1"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def safe_load(path: str | Path) -> Any:
    """Load onto the CPU with ``weights_only=True``; refuse what needs arbitrary unpickling."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(2)
    # torch.save writes a zip archive (PK), legacy files start with a pickle protocol mark.
    if magic[:2] != b"PK" and not (len(magic) == 2 and magic[0] == 0x80 and 2 <= magic[1] <= 5):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ("
                              f"{'empty file' if not magic else 'unrecognised format'})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message opens with advice to retry with weights_only=False (exactly what
        # must not be done with an untrusted file); keep the line that names the culprit.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        named = [ln for ln in lines if "GLOBAL" in ln or "nsupported" in ln]
        first = (named or lines or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path}: refused to load: it holds Python objects other than weights "
            f"(possible code payload; nothing of it was run): {first}") from None
    except Exception as exc:  # noqa: BLE001  damaged files fail in many ways (EOF, KeyError...)
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def capture_rng() -> dict[str, Any]:
    """Every RNG the training loop touches, in weights-only-safe types."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": [py_version, list(py_internal), py_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and stray temp files)."""
    found = list_checkpoints(folder)
    for _, path in found[:-keep] if keep > 0 else found:
        path.unlink(missing_ok=True)
    for tmp in Path(folder).glob(".step_*.tmp"):
        tmp.unlink(missing_ok=True)
