"""Checkpoint files: atomic writes, weights-only loading, RNG capture, keeping the newest K."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclegan_lib.checkpoint import (CheckpointError, atomic_save, capture_rng, checkpoint_name,
                                     latest_checkpoint, list_checkpoints, prune_checkpoints,
                                     restore_rng, safe_load)


def test_atomic_save_round_trip(tmp_path: Path) -> None:
    obj = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "name": "x", "l": [1, 2.5, None]}
    path = atomic_save(obj, tmp_path / "sub" / "a.pt")
    back = safe_load(path)
    assert torch.equal(back["w"], obj["w"]) and back["l"] == [1, 2.5, None]
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temp file left


def test_safe_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found.*missing.pt"):
        safe_load(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        safe_load(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="text.pt.*not a PyTorch checkpoint"):
        safe_load(tmp_path / "text.pt")
    good = atomic_save({"w": torch.ones(1000)}, tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="cut.pt"):
        safe_load(tmp_path / "cut.pt")


def test_names_listing_and_latest(tmp_path: Path) -> None:
    assert checkpoint_name(42) == "step_00000042.pt"
    assert latest_checkpoint(tmp_path / "none") is None
    for step in (10, 2, 30):
        atomic_save({"step": step}, tmp_path / checkpoint_name(step))
    (tmp_path / ".step_00000040.pt.abc.tmp").write_bytes(b"partial")  # an interrupted write
    (tmp_path / "notes.txt").write_text("x")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 10, 30]
    assert latest_checkpoint(tmp_path).name == "step_00000030.pt"


def test_prune_keeps_newest_k(tmp_path: Path) -> None:
    for step in range(1, 6):
        atomic_save({"step": step}, tmp_path / checkpoint_name(step))
    (tmp_path / ".step_00000006.pt.abc.tmp").write_bytes(b"partial")
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004.pt", "step_00000005.pt"]


def test_rng_capture_restores_every_generator(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.rand(3), np.random.rand(5), random.random(), np.random.randn()  # leave a cached gauss
    path = atomic_save({"rng": capture_rng()}, tmp_path / "rng.pt")
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)],
                np.random.randn(3), random.gauss(0, 1))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(safe_load(path)["rng"])  # must survive weights_only=True
    got = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)],
           np.random.randn(3), random.gauss(0, 1))
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and np.array_equal(got[3], expected[3])
    assert got[2] == expected[2] and got[4] == expected[4]
