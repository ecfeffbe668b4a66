"""Finished runs: find, read and load a run directory or a published ``pretrained/`` folder.

Everything that *uses* a trained model (evaluate, translate, viz, widgets, the chapters)
reads it through here; the training loop only writes run directories.
"""
from __future__ import annotations

import csv
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CHECKPOINT_FORMAT, latest_checkpoint, safe_load
from .config import SHORT_RUNS, TrainConfig, make_config, resolve_profile
from .errors import CheckpointError
from .models import ResnetGenerator, build_network
from .pretrained import is_pretrained, load_network, read_config, weight_files

__all__ = ["RUN_ALIASES", "checkpoint_path", "load_checkpoint_config", "load_run_network",
           "load_generator",
           "generator_for", "image_size", "SAMPLE_PADDING", "run_info", "run_is_complete", "run_until",
           "read_history",
           "find_run"]

#: Padding between the cells of a run's ``samples/step_*.png`` grids.
SAMPLE_PADDING = 2
# Presets with identical settings share one run directory (trained once).
RUN_ALIASES = {"blocks9": "stabilized"}


def checkpoint_path(run_or_file: str | Path) -> Path:
    """The file that holds a run's weights: the newest checkpoint of a run directory, the
    ``G_AB`` weights of a published folder, or the checkpoint file given."""
    path = Path(run_or_file)
    if path.is_dir() and is_pretrained(path):
        return weight_files(path, "G_AB")[0]
    if path.is_dir():
        latest = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no checkpoint in {path} (expected {path}/checkpoints/step_*.pt)")
        return latest
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def _checkpoint(path: Path) -> dict:
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a cyclegan_lib checkpoint")
    return state


def load_checkpoint_config(run_or_file: str | Path) -> dict:
    """The config dict of a run, checkpoint file or published folder."""
    path = checkpoint_path(run_or_file)
    if path.suffix == ".safetensors":
        return read_config(path.parent).to_dict()
    return _checkpoint(path)["config"]


def load_run_network(run_or_file: str | Path, name: str, device: str | torch.device = "cpu",
                     ema: bool = True) -> torch.nn.Module:
    """Network ``name`` (``G_AB``, ``G_BA``, ``D_A``, ``D_B``) of a run, checkpoint file or
    published folder, in eval mode, never unpickling code; with ``ema`` the averaged
    generators where the run kept them."""
    path = checkpoint_path(run_or_file)
    if path.suffix == ".safetensors":
        return load_network(path.parent, name, device)
    state = _checkpoint(path)
    net = build_network(TrainConfig.from_dict(state["config"]), name)
    averaged = state.get("ema", {}) if ema else {}
    net.load_state_dict(averaged[name] if name in averaged else state["models"][name])
    return net.to(device).eval()


def load_generator(run_or_file: str | Path, direction: str = "AtoB",
                   device: str | torch.device = "cpu", ema: bool = True) -> ResnetGenerator:
    """A run's generator (``AtoB``: human to anime) in eval mode (:func:`load_run_network`)."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")
    key = "G_AB" if direction == "AtoB" else "G_BA"
    return load_run_network(run_or_file, key, device, ema)  # type: ignore[return-value]


@lru_cache(maxsize=16)
def _cached(path: str, mtime_ns: int, direction: str, device: str) -> ResnetGenerator:
    return load_generator(path, direction, device)


def generator_for(run_or_file: str | Path, direction: str = "AtoB", device: str = "cpu"
                  ) -> ResnetGenerator:
    """:func:`load_generator`, cached per weights file (a retrained run is loaded afresh)."""
    path = checkpoint_path(run_or_file)
    source = path.parent if path.suffix == ".safetensors" else path
    return _cached(str(source.resolve()), path.stat().st_mtime_ns, direction, str(device))


def image_size(run_or_file: str | Path) -> int:
    """The image size a run was trained at (its ``config.json``, else its checkpoint)."""
    config = Path(run_or_file) / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["image_size"])
    return int(load_checkpoint_config(run_or_file)["image_size"])


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``config.json`` and ``summary.json`` merged (summary keys win)."""
    run_dir = Path(run_dir)
    info: dict[str, Any] = {}
    for name in ("config.json", "summary.json"):
        if (run_dir / name).is_file():
            info.update(json.loads((run_dir / name).read_text()))
    info["run_dir"] = str(run_dir)
    return info


def run_until(run_dir: str | Path, step: int, out_dir: str | Path) -> Path:
    """``out_dir`` made a view of the run as it stood at ``step``: its config, that checkpoint
    (linked, not copied) and the history up to it, so that anything that reads a run reads
    the run at that step (e.g. two runs compared at the same budget)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ckpt = run_dir / "checkpoints" / f"step_{step:08d}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoint at step {step} ({ckpt.name})")
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "checkpoints").glob("step_*.pt"):
        old.unlink()
    (out_dir / "checkpoints" / ckpt.name).symlink_to(ckpt.resolve())
    shutil.copy2(run_dir / "config.json", out_dir / "config.json")
    with open(run_dir / "history.csv", newline="") as f:
        lines = f.readlines()
    kept = [lines[0], *[ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]]
    (out_dir / "history.csv").write_text("".join(kept))
    (out_dir / "summary.json").write_text(json.dumps(
        {"step": step, "complete": False, "view_of": str(run_dir.resolve())}, indent=2))
    return out_dir


def run_is_complete(run_dir: str | Path) -> bool:
    return bool(run_info(run_dir).get("complete"))


def read_history(run_dir: str | Path) -> dict[str, list[float]]:
    """``history.csv`` as columns of floats."""
    with open(Path(run_dir) / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}


def find_run(preset: str, profile: str, runs_dir: str | Path,
             pretrained_dir: str | Path | None = None) -> tuple[Path, TrainConfig | None]:
    """Where the run of ``preset`` at ``profile`` lives: ``(folder, None)`` when a published
    folder or a complete run holds it, else ``(run directory, config to train)``."""
    profile = resolve_profile(profile)
    preset = RUN_ALIASES.get(preset, preset)
    profile = SHORT_RUNS.get(profile, {}).get(preset, profile)
    if pretrained_dir is not None:  # pretrained/<preset>, or pretrained/<preset>_<anything>
        root = Path(pretrained_dir)
        for folder in [root / preset, *sorted(root.glob(f"{preset}_*"))]:
            if is_pretrained(folder):
                cfg = read_config(folder)
                if (cfg.preset, cfg.profile) == (preset, profile):
                    return folder, None
    run_dir = Path(runs_dir) / profile / preset
    return run_dir, None if run_is_complete(run_dir) else make_config(preset, profile)
