"""Multi-process training under ``torchrun``: one process per GPU (or CPU process), DDP.

Each rank trains on its disjoint share of every epoch with its own history buffers; rank 0
alone writes the run directory, and failures are reported in one line per rank.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import ErrorHandler, record
from torch.nn.parallel import DistributedDataParallel

from .config import TrainConfig
from .cyclegan import resolve_device
from .data import EpochPlan
from .errors import ConfigError, TrainingError, UserError
from .trainer import Trainer

__all__ = ["DistEnv", "launcher_env", "DistributedTrainer", "weights_checksum", "rank_seed",
           "OneLineErrors", "main_train"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a ``torchrun`` job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launcher_env(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The launcher's environment, ``None`` outside ``torchrun``; an incomplete multi-process
    environment is a :class:`ConfigError`.
    """
    env = os.environ if environ is None else environ
    if not env.get("WORLD_SIZE"):
        return None
    values = {}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        if env.get(name):
            try:
                values[name] = int(env[name])
            except ValueError:
                raise ConfigError(f"{name}={env[name]!r} is not an integer (set by torchrun)") from None
    world_size = values["WORLD_SIZE"]
    if world_size < 1:
        raise ConfigError(f"WORLD_SIZE={world_size} must be at least 1")
    if world_size == 1:
        return DistEnv(0, 1, values.get("LOCAL_RANK", 0))
    missing = [n for n in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(n)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world_size} is set but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not: start multi-process training with "
            f"'torchrun --nproc_per_node={world_size} --no-python cyclegan-anime train ...' "
            f"(or unset WORLD_SIZE)")
    rank = values["RANK"]
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside 0..{world_size - 1}")
    return DistEnv(rank, world_size, values["LOCAL_RANK"])


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for rank ``rank``'s own random streams, distinct per rank and resume step."""
    return (seed * 1_000_003 + 7919 * rank + 104_729 * step) % (2 ** 63)


def weights_checksum(modules: list[nn.Module]) -> int:
    """A 60-bit SHA-256 digest of every parameter and buffer, in order: equal iff bit-equal."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return int(h.hexdigest()[:15], 16)


class DistributedTrainer(Trainer):
    """A :class:`Trainer` for one rank of an initialised process group."""

    def __init__(self, cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True, **kwargs) -> None:
        if not dist.is_initialized():
            raise ConfigError("DistributedTrainer needs an initialised process group (torchrun)")
        if cfg.max_minutes:  # each rank's clock would stop it at a different step
            raise ConfigError("invalid option max_minutes: not supported under torchrun "
                              "(use --max-steps)")
        self.weight_check: dict | None = None
        super().__init__(cfg, data_dir, run_dir, resume=resume, progress=progress,
                         rank=dist.get_rank(), world_size=dist.get_world_size(), **kwargs)
        if self.rank and self.resume_from is None:  # same initial weights, own random streams
            torch.manual_seed(rank_seed(cfg.seed, self.rank))

    def _wrap(self, net: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)  # no buffers: InstanceNorm only

    def _reduce_losses(self, rows: torch.Tensor) -> torch.Tensor:
        """Average the pending steps' losses over the ranks (one all-reduce per flush)."""
        t = rows.to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / self.world_size).cpu()

    def _epoch_plan(self, epoch: int) -> EpochPlan:
        """This rank's shard; rank 0 logs how many A images more than one rank received."""
        if self.is_main:
            whole = self._draw_epoch(epoch)
            parts = [whole.shard(r, self.world_size).index_a.tolist()
                     for r in range(self.world_size)]
            ranks_of: dict[int, set[int]] = {}
            for r, part in enumerate(parts):
                for i in part:
                    ranks_of.setdefault(i, set()).add(r)
            shared = sum(1 for ranks in ranks_of.values() if len(ranks) > 1)
            self.log(f"epoch {epoch} data: {self.world_size} ranks x {len(parts[0])} samples, "
                     f"{len(ranks_of)} distinct A images, {shared} on more than one rank")
        return super()._epoch_plan(epoch)

    def _load(self, path: Path) -> None:
        super()._load(path)
        if self.rank:
            torch.manual_seed(rank_seed(self.cfg.seed, self.rank, self.step))
            self.model.pool_A.rng.seed(rank_seed(self.cfg.seed * 2 + 1, self.rank, self.step))
            self.model.pool_B.rng.seed(rank_seed(self.cfg.seed * 2 + 2, self.rank, self.step))

    def _after_loop(self) -> None:
        """Compare the weights of all ranks (an all-gather of one checksum)."""
        mine = torch.tensor([weights_checksum(list(self.model.networks))], dtype=torch.int64,
                            device=self.device)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        values = [int(p.item()) for p in parts]
        same = len(set(values)) == 1
        self.weight_check = {"weights_checksum": f"{values[0]:015x}",
                             "weights_identical_across_ranks": same}
        self.log(f"weights after step {self.step}: checksum "
                 + (f"{values[0]:015x} identical on all {self.world_size} ranks" if same else
                    "MISMATCH " + ", ".join(f"rank {r}: {v:015x}" for r, v in enumerate(values))))

    def fit(self) -> dict:
        b, w = self.cfg.batch_size, self.world_size
        self.log(f"distributed: {w} ranks ({dist.get_backend()}), effective batch {w * b} = "
                 f"{w} x {b}, {self.epoch_size} steps per epoch per rank, one history buffer "
                 f"per rank")
        summary = super().fit()
        if self.weight_check and not self.weight_check["weights_identical_across_ranks"]:
            raise TrainingError("the ranks' weights differ after training (see log.txt)")
        return summary

    def summary(self) -> dict:
        out = super().summary()
        out["effective_batch"] = self.world_size * self.cfg.batch_size
        return {**out, **(self.weight_check or {})}


# -- the command-line path -------------------------------------------------------------

def _is_secondary(exc: BaseException) -> bool:
    """A failure caused by another rank's death (a broken collective), not this rank's own."""
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or isinstance(exc, RuntimeError) and any(
        s in text for s in ("connection closed", "connection reset", "gloo", "nccl",
                            "broken pipe", "socket", "timed out"))


class OneLineErrors(ErrorHandler):
    """torchrun's error handler, one line per failure instead of a traceback."""

    def __init__(self, env: DistEnv, run_dir: Path) -> None:
        self.env, self.run_dir = env, run_dir

    def record_exception(self, e: BaseException) -> None:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        user = isinstance(e, (UserError, OSError))
        line = (lines[0] if lines else type(e).__name__) if user else \
            f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if _is_secondary(e):
            message = f"rank {self.env.rank} stopped after another rank failed ({line})"
        elif user:
            message = line
            if self.env.is_main:
                print(f"cyclegan-anime train: error: {line}", file=sys.stderr, flush=True)
        else:
            path = self.run_dir / f"failure_rank{self.env.rank}.txt"
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(traceback.format_exception(e)))
                line += f" (traceback in {path})"
            except OSError:
                pass
            message = f"rank {self.env.rank} failed: {line}"
            print(f"cyclegan-anime train: error: {message}", file=sys.stderr, flush=True)
        error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
        if error_file:  # torchrun shows "py_callstack" as the failure's traceback
            extra = {"py_callstack": message, "timestamp": str(int(time.time()))}
            with contextlib.suppress(OSError):
                Path(error_file).write_text(json.dumps({"message": {"message": message,
                                                                    "extraInfo": extra}}))


def _device_for(cfg: TrainConfig, env: DistEnv) -> TrainConfig:
    """Rank ``r`` trains on ``cuda:LOCAL_RANK`` when CUDA is used."""
    if resolve_device(cfg.device).type != "cuda":
        return cfg
    if cfg.device.startswith("cuda:"):
        raise ConfigError(f"invalid option device={cfg.device!r}: under torchrun each rank uses "
                          f"cuda:LOCAL_RANK; pass --device cuda (or auto)")
    if env.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} "
                          f"CUDA device(s) are visible")
    torch.cuda.set_device(env.local_rank)
    return dataclasses.replace(cfg, device=f"cuda:{env.local_rank}")


def _train_rank(cfg: TrainConfig, data_dir: Path, run_dir: Path, resume: bool, progress: bool,
                env: DistEnv) -> None:
    cfg = _device_for(cfg, env)
    dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo",
                            rank=env.rank, world_size=env.world_size)
    summary = DistributedTrainer(cfg, data_dir, run_dir, resume=resume, progress=progress).fit()
    dist.barrier()
    if env.is_main:
        print(f"run directory: {run_dir} (step {summary['step']}/{summary['total_steps']}, "
              f"{summary['train_seconds']:.0f} s, {env.world_size} processes)")


def main_train(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool,
               progress: bool, env: DistEnv) -> int:
    """``cyclegan-anime train`` on one rank of a ``torchrun`` job; returns the exit status."""
    run_dir = Path(run_dir)
    try:
        record(_train_rank, OneLineErrors(env, run_dir))(cfg, Path(data_dir), run_dir, resume,
                                                        progress, env)
        return 0
    except KeyboardInterrupt:
        if env.is_main:
            print("cyclegan-anime train: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - reported in one line by OneLineErrors
        return 2
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):  # a peer may already be gone
                dist.destroy_process_group()
