"""Shared fixtures: where the data is, tiny generated datasets, one smoke run per session.

Tests never write into ../shared: generated images go to pytest's tmp folders.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    value = os.environ.get("CYCLEGAN_DATA")
    return Path(value) if value else REPO.parent / "shared" / "data" / "selfie2anime"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real selfie2anime folder (``$CYCLEGAN_DATA`` or ``../shared/data/selfie2anime``)."""
    root = _shared_data()
    if not (root / "trainA").is_dir():
        pytest.fail(f"selfie2anime not found at {root}: set CYCLEGAN_DATA")
    return root


@pytest.fixture(scope="session")
def faces_root(data_root: Path) -> Path:
    return Path(os.environ.get("CYCLEGAN_FACES", data_root.parent / "faces"))


@pytest.fixture(scope="session")
def anime_cascade() -> Path:
    value = os.environ.get("CYCLEGAN_ANIME_CASCADE")
    path = Path(value) if value else REPO.parent / "shared" / "models" / "lbpcascade_animeface.xml"
    if not path.is_file():
        pytest.fail(f"anime cascade not found at {path}: set CYCLEGAN_ANIME_CASCADE")
    return path


def make_images(folder: Path, n: int, size: int = 40, seed: int = 0, tint: int = 0) -> list[Path]:
    """Write ``n`` random RGB JPEGs (a smooth gradient plus noise) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
        arr = np.clip(base * 0.5 + rng.normal(0, 40, (size, size, 3)) + tint, 0, 255)
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """trainA/trainB/testA/testB with 8/8/4/4 small generated images."""
    root = tmp_path / "tiny"
    for split, n in (("train", 8), ("test", 4)):
        make_images(root / f"{split}A", n, seed=1, tint=-40)
        make_images(root / f"{split}B", n, seed=2, tint=40)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test session gets its own decode cache, outside the home folder."""
    monkeypatch.setenv("CYCLEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """One ``stabilized``/``smoke`` run on the real data, trained once per session."""
    from cyclegan_lib.config import make_config
    from cyclegan_lib.trainer import train

    os.environ.setdefault("CYCLEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    run = tmp_path_factory.mktemp("smoke") / "run"
    train(make_config("stabilized", "smoke"), data_root, run, progress=False)
    return run


torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """Training runs on one thread: the machine's two cores are shared (and it is faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def twenty_steps(data, amp: str, run_dir):
    """20 training steps of ``stabilized``/``smoke`` at precision ``amp`` on in-memory ``data``:
    the stacked losses and the trainer (precision tests compare them with fp32)."""
    from cyclegan_lib.config import make_config
    from cyclegan_lib.data import EpochPlan, make_batch
    from cyclegan_lib.trainer import Trainer

    torch.manual_seed(0)
    cfg = make_config("stabilized", "smoke", amp=amp)
    trainer = Trainer(cfg, run_dir.parent / "x", run_dir, progress=False, data=data)
    plan = EpochPlan.draw(len(data.a), len(data.b), 20, cfg.resolved_load_size,
                          cfg.image_size, cfg.seed, 0)
    losses = torch.stack([trainer.train_step(*make_batch(data, plan, i, 1, cfg.image_size,
                                                          trainer.device)) for i in range(20)])
    return losses, trainer
