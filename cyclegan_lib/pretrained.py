"""Published models: ``pretrained/<preset>/`` holds a run's generators as fp16 safetensors.

Also ``D_A``/``D_B`` when asked, split into ``NAME-0000i-of-0000K`` shards above a size
cap, with the run's ``config.json``, ``history.csv``, ``samples/`` and ``summary.json``.
safetensors holds tensors only, so loading a folder from anyone runs no code.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file

from .checkpoint import latest_checkpoint, safe_load
from .errors import CheckpointError, ConfigError
from .config import TrainConfig, make_config, settings_differ
from .models import NETWORKS, build_network

__all__ = ["is_pretrained", "weight_files", "export_run", "load_state", "load_network", "read_config",
           "describe_machine"]


def is_pretrained(folder: str | Path) -> bool:
    """True for a published folder: ``config.json`` and a ``G_AB`` weights file."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and bool(weight_files(folder, "G_AB"))


def weight_files(folder: Path, name: str) -> list[Path]:
    whole = folder / f"{name}.safetensors"
    return [whole] if whole.is_file() else sorted(folder.glob(f"{name}-*-of-*.safetensors"))


def read_config(folder: str | Path) -> TrainConfig:
    return TrainConfig.from_dict(json.loads((Path(folder) / "config.json").read_text()))


def _save_sharded(state: dict[str, torch.Tensor], folder: Path, name: str,
                  max_bytes: int | None) -> list[Path]:
    """Write ``state`` as one file, or as shards of at most ``max_bytes`` each."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_bytes and shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor.contiguous()
        size += nbytes
    for old in weight_files(folder, name):
        old.unlink()
    if len(shards) == 1:
        paths = [folder / f"{name}.safetensors"]
    else:
        paths = [folder / f"{name}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                 for i in range(len(shards))]
    for shard, path in zip(shards, paths):
        save_file(shard, str(path), metadata={"network": name, "format": "cyclegan_lib/1"})
    return paths


def load_state(folder: str | Path, name: str) -> dict[str, torch.Tensor]:
    """One network's weights (fp32) from a published folder, joined from its shards."""
    folder = Path(folder)
    files = weight_files(folder, name)
    if not files:
        raise CheckpointError(f"{folder}: no {name}.safetensors")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(str(path)))
    return {k: v.float() for k, v in state.items()}


def load_network(folder: str | Path, name: str = "G_AB",
                 device: str | torch.device = "cpu") -> torch.nn.Module:
    """A generator (``G_AB``, ``G_BA``) or discriminator (``D_A``, ``D_B``) in eval mode."""
    net = build_network(read_config(folder), name)
    net.load_state_dict(load_state(folder, name))
    return net.to(device).eval()


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def describe_machine() -> str:
    """CPU model and core count (and the GPU, when one trained the run), for the record."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{model}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def export_run(run_dir: str | Path, out_dir: str | Path,
               discriminators: bool | Sequence[str] = False, max_shard_mb: float | None = None,
               code_commit: str | None = None, profile: str | None = None,
               max_samples: int | None = None) -> Path:
    """Publish the newest checkpoint of ``run_dir`` into ``out_dir`` (fp16 safetensors + records).

    ``discriminators``: True for both, or the names to include (e.g. ``["D_B"]``).
    ``profile`` publishes a run trained with ``--set`` overrides under the name of the profile
    its settings match (checked), e.g. a book run lengthened to the ``long`` profile.
    ``max_samples`` keeps that many sample grids, evenly spaced and ending with the last.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise CheckpointError(f"no checkpoint in {run_dir}/checkpoints")
    state = safe_load(ckpt)
    if profile is not None:
        differ = settings_differ(state["config"], make_config(state["config"]["preset"], profile),
                                 ignore=frozenset({"profile"}))
        if differ:
            raise ConfigError(f"{run_dir} does not match profile {profile!r}: "
                              f"{', '.join(differ)} differ")
        state["config"] = {**state["config"], "profile": profile}
    out_dir.mkdir(parents=True, exist_ok=True)
    max_bytes = int(max_shard_mb * 2**20) if max_shard_mb else None
    averaged = "ema" in state
    names = [*NETWORKS[:2], *(NETWORKS[2:] if discriminators is True else discriminators or [])]
    if not set(names) <= set(NETWORKS):
        raise ValueError(f"networks must be among {', '.join(NETWORKS)}: {names}")
    for name in names:
        weights = state["ema"][name] if averaged and name in state["ema"] else state["models"][name]
        _save_sharded({k: v.to(torch.float16) for k, v in weights.items()}, out_dir, name,
                      max_bytes)
    (out_dir / "config.json").write_text(json.dumps(state["config"], indent=2, sort_keys=True))
    for name in ("history.csv",):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out_dir / name)
    grids = sorted((run_dir / "samples").glob("step_*.png"))
    if max_samples is not None and len(grids) > max_samples:
        grids = [grids[len(grids) - 1 - round(i * (len(grids) - 1) / max(max_samples - 1, 1))]
                 for i in reversed(range(max_samples))] if max_samples > 0 else []
    shutil.rmtree(out_dir / "samples", ignore_errors=True)  # a re-export replaces the grids
    if grids:
        (out_dir / "samples").mkdir()
        for grid in grids:
            shutil.copyfile(grid, out_dir / "samples" / grid.name)
    run_summary = {}
    if (run_dir / "summary.json").is_file():
        run_summary = json.loads((run_dir / "summary.json").read_text())
    summary = {
        **run_summary,
        **({"profile": profile} if profile is not None else {}),
        "steps": int(state["step"]),
        "minutes": round(float(state["train_seconds"]) / 60, 1),
        "machine": describe_machine(),
        "generators": "ema" if averaged else "last",
        "ema_decay": state["config"].get("ema_decay", 0.0),
        "stored_as": "float16 safetensors",
        "code_commit": code_commit or _git_commit(Path(__file__).resolve().parent.parent),
        "checkpoint": ckpt.name,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return out_dir
