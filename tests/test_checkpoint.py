"""Checkpoint files: atomic writes, weights-only loading, RNG capture, keeping the newest K."""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclegan_lib import checkpoint as checkpoint_module
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


def _state_of_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_crash_mid_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    path = atomic_save({"w": torch.ones(100), "step": 1}, tmp_path / "step_00000001.pt")
    before = _state_of_folder(tmp_path)
    real_save = torch.save

    def half_then_full_disk(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_save({"w": torch.zeros(100), "step": 2}, path)  # overwrite in place
    with pytest.raises(OSError, match="No space"):
        atomic_save({"w": torch.zeros(100), "step": 2}, tmp_path / "step_00000002.pt")
    assert _state_of_folder(tmp_path) == before  # no partial file, no temp file
    assert safe_load(path)["step"] == 1


def test_failed_rename_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    path = atomic_save({"step": 1}, tmp_path / "a.pt")
    before = _state_of_folder(tmp_path)

    def no_rename(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoint_module.os, "replace", no_rename)
    with pytest.raises(OSError, match="Input/output"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert _state_of_folder(tmp_path) == before
    assert safe_load(path)["step"] == 1
