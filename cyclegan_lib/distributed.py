"""Multi-process training with ``torchrun`` (DistributedDataParallel).

The same command scales out unchanged::

    torchrun --nproc_per_node=N --no-python cyclegan-anime train --preset P --profile F \\
        --data DIR --out RUN_DIR

What happens under the launcher (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT`` set by ``torchrun``):

* one process per rank; NCCL on ``cuda:LOCAL_RANK`` when CUDA is used, Gloo on
  CPU.  ``G_AB``, ``G_BA``, ``D_A`` and ``D_B`` are each wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel`, which averages their
  gradients over the ranks at every backward pass.  The iteration is the
  official one unchanged: each generator runs three times (fake, cycle,
  identity) before the single generator backward, and each discriminator runs
  once in the generator step (parameters frozen, so it produces no gradient and
  DDP syncs nothing for it there) and twice before the single discriminator
  backward, where its gradients are averaged;
* every epoch is drawn from the seed alone, identically on every rank, and
  split by :meth:`EpochPlan.shard <cyclegan_lib.data.EpochPlan.shard>` into
  disjoint parts: rank ``r`` takes samples ``r, r+W, r+2W, ...``;
* the effective batch is ``world_size x batch_size``.  ``epoch_size`` counts
  steps *per rank*: when a profile leaves it unset (``full``) an epoch is still
  one pass over the larger domain, in ``1/W`` as many steps; when a profile
  fixes it (``smoke``, ``cpu``) a ``W``-process run takes the same steps and
  sees ``W`` times as many images;
* each rank keeps its own image history buffer (as the official code's DDP
  mode does): the discriminator batch of rank ``r`` mixes rank ``r``'s fakes;
* rank 0 alone writes the run directory (config, ``history.csv`` with the
  losses averaged over the ranks at logging steps only, samples, atomic
  checkpoints of the *unwrapped* modules, so a run trained on 4 GPUs resumes
  or translates on one CPU), and alone shows a progress bar;
* ``--resume`` makes every rank read the same checkpoint: weights, optimiser
  moments, step and loss history are restored exactly on every rank, and so
  are rank 0's history buffers and random state.  Ranks other than 0 load rank
  0's buffered images too, then reseed their own random streams (patch crops,
  buffer swaps) from ``(seed, rank, step)``.  A resumed multi-process run is a
  valid continuation but, unlike a single-process one, not bit-identical to an
  uninterrupted run;
* after the last step the ranks compare a SHA-256 checksum of all four
  networks' weights (an all-gather); the result is logged and stored in
  ``summary.json`` (``weights_identical_across_ranks``);
* errors: a mistake every rank makes (bad option, refused resume, non-finite
  loss) is printed once, by rank 0; when a single rank fails, it posts its
  one-line reason to the launcher's key-value store and leaves the process
  group, and rank 0 prints ``rank R failed: ...``.  ``WORLD_SIZE`` without the
  rest of the launcher's environment is a one-line error.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import CheckpointError
from .config import ConfigError, TrainConfig
from .data import DataError, EpochPlan
from .trainer import Trainer, TrainingError, resolve_device

__all__ = ["DistEnv", "launcher_env", "DistributedTrainer", "weights_checksum", "rank_seed",
           "main_train"]

_ERROR_KEY = "cyclegan_lib/error"
_ACK_KEY = "cyclegan_lib/error_reported"
_KNOWN = (ConfigError, DataError, CheckpointError, TrainingError, FileNotFoundError)


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
    """The launcher's environment, ``None`` outside ``torchrun``.

    ``WORLD_SIZE`` set without ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` (a stray export, not a launcher) is a :class:`ConfigError`.
    """
    env = os.environ if environ is None else environ
    if not env.get("WORLD_SIZE"):
        return None
    values = {}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = env.get(name)
        if text is None or text == "":
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r} is not an integer (set by torchrun)") from None
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
    """A :class:`Trainer` for one rank of an initialised process group.

    The training maths are :meth:`Trainer.train_step`'s; this class only wraps
    the networks in DDP, gives each rank its own random streams and averages
    the logged losses.  The history buffers stay per rank.
    """

    def __init__(self, cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True, **kwargs) -> None:
        if not dist.is_initialized():
            raise ConfigError("DistributedTrainer needs an initialised process group (torchrun)")
        self.weight_check: dict | None = None
        super().__init__(cfg, data_dir, run_dir, resume=resume, progress=progress,
                         rank=dist.get_rank(), world_size=dist.get_world_size(), **kwargs)

    def _wrap(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        # The networks were built from the same seed on every rank (DDP also
        # broadcasts rank 0's weights here); from now on the random streams
        # (patch crops) differ per rank, as do the buffers' (seeded by rank).
        if self.rank:
            torch.manual_seed(rank_seed(self.cfg.seed, self.rank))
        ids = [self.device.index] if self.device.type == "cuda" else None
        nets = [DistributedDataParallel(n, device_ids=ids)  # no buffers: InstanceNorm only
                for n in (self.nets.G_AB, self.nets.G_BA, self.nets.D_A, self.nets.D_B)]
        if self.cfg.compile:
            nets = [torch.compile(n) for n in nets]
        return tuple(nets)  # type: ignore[return-value]

    def _reduce_losses(self, rows: torch.Tensor) -> torch.Tensor:
        """Average the losses of the pending steps over the ranks (one all-reduce per flush)."""
        t = rows.to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / self.world_size).cpu()

    def _epoch_plan(self, epoch: int) -> EpochPlan:
        """This rank's shard; rank 0 logs how many A images more than one rank received."""
        plan = super()._epoch_plan(epoch)
        mine = plan.index_a.to(self.device)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        if self.is_main:
            seen: dict[int, set[int]] = {}
            for r, part in enumerate(parts):
                for i in part.tolist():
                    seen.setdefault(i, set()).add(r)
            shared = sum(1 for ranks in seen.values() if len(ranks) > 1)
            self.log(f"epoch {epoch} data: {self.world_size} ranks x {len(mine)} samples, "
                     f"{len(seen)} distinct A images, {shared} on more than one rank")
        return plan

    def _load(self, path: Path) -> None:
        super()._load(path)
        if self.rank:
            torch.manual_seed(rank_seed(self.cfg.seed, self.rank, self.step))
            self.pool_A.rng.seed(rank_seed(self.cfg.seed * 2 + 1, self.rank, self.step))
            self.pool_B.rng.seed(rank_seed(self.cfg.seed * 2 + 2, self.rank, self.step))

    def _after_loop(self) -> None:
        """Compare the weights of all ranks (an all-gather of a checksum)."""
        mine = torch.tensor([weights_checksum([self.nets.G_AB, self.nets.G_BA, self.nets.D_A,
                                               self.nets.D_B])], dtype=torch.int64,
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
        if self.weight_check is not None:
            out.update(self.weight_check)
        return out


# -- the command-line path -------------------------------------------------------------

class _Terminated(Exception):
    """SIGTERM from the launcher (another rank failed or the job was stopped)."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise _Terminated("stopped by the launcher (SIGTERM)")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (resume with --resume)"
    if isinstance(exc, _KNOWN + (_Terminated,)):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _is_secondary(exc: BaseException) -> bool:
    """A failure caused by another rank's death (broken collective, SIGTERM), not its own."""
    if isinstance(exc, _Terminated):
        return True
    dist_error = getattr(dist, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("connection closed", "connection reset", "gloo", "nccl",
                            "broken pipe", "socket", "timed out"))


def _device_for(cfg: TrainConfig, env: DistEnv) -> TrainConfig:
    device = resolve_device(cfg.device)
    if device.type != "cuda":
        return cfg
    if cfg.device.startswith("cuda:"):
        raise ConfigError(f"invalid option device={cfg.device!r}: under torchrun each rank uses "
                          f"cuda:LOCAL_RANK; pass --device cuda (or auto)")
    if env.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} "
                          f"CUDA device(s) are visible")
    torch.cuda.set_device(env.local_rank)
    return dataclasses.replace(cfg, device=f"cuda:{env.local_rank}")


def _print_error(message: str) -> None:
    print(f"cyclegan-anime train: error: {message}", file=sys.stderr, flush=True)


def _write_traceback(run_dir: Path, rank: int, exc: BaseException) -> Path | None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / f"failure_rank{rank}.txt"
        path.write_text("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


class _Reporter:
    """Makes exactly one process print the job's one-line error.

    A rank other than 0 that fails on its own posts ``rank R failed: ...`` to
    the launcher's key-value store and waits (up to 10 s) for rank 0 to
    acknowledge it.  Rank 0 watches the store from a thread, because its main
    thread may be blocked in a collective that waits for the failed rank: the
    watcher prints the line, acknowledges it and ends rank 0 with status 2.
    A mistake every rank makes is printed by rank 0 from its own exception.
    """

    def __init__(self, env: DistEnv, store) -> None:
        self.env, self.store = env, store
        self.lock = threading.Lock()
        self.done = False
        self.stop = threading.Event()
        self.thread = None
        if env.is_main and store is not None:
            self.thread = threading.Thread(target=self._watch, name="cyclegan-error-watch",
                                           daemon=True)
            self.thread.start()

    def _claim(self) -> bool:
        with self.lock:
            first, self.done = not self.done, True
            return first

    def _ack(self) -> None:
        try:
            self.store.set(_ACK_KEY, "1")
        except Exception:  # noqa: BLE001
            pass

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            try:
                if not self.store.check([_ERROR_KEY]):
                    continue
                message = self.store.get(_ERROR_KEY).decode()
            except Exception:  # noqa: BLE001 - the store is gone: the job is over
                return
            if self._claim():
                _print_error(message)
                self._ack()
                os._exit(2)
            return

    def close(self) -> None:
        self.stop.set()

    def report(self, exc: BaseException, run_dir: Path) -> None:
        env, store = self.env, self.store
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish reporting, then exit
        secondary = _is_secondary(exc)
        line = _one_line(exc)
        if not secondary and not isinstance(exc, _KNOWN + (KeyboardInterrupt,)):
            where = _write_traceback(run_dir, env.rank, exc)
            if where is not None:
                line += f" (traceback in {where})"
        if env.rank != 0:
            if store is not None:
                try:
                    if not secondary:
                        store.set(_ERROR_KEY, f"rank {env.rank} failed: {line}")
                    store.wait([_ACK_KEY], timedelta(seconds=10))
                    return  # rank 0 reported it
                except Exception:  # noqa: BLE001 - no word from rank 0
                    pass
            if not secondary:
                _print_error(f"rank {env.rank} failed: {line}")
            elif env.rank == 1:  # rank 0 is gone without a word: one line from the next rank
                _print_error(f"rank 0 stopped without a report; rank 1: {line}")
            return
        message = line
        if secondary and store is not None:
            try:
                store.wait([_ERROR_KEY], timedelta(seconds=5))
                message = store.get(_ERROR_KEY).decode()
            except Exception:  # noqa: BLE001 - no rank said why
                message = f"another rank stopped ({line})"
        if self._claim():
            _print_error(message)
            if store is not None:
                self._ack()


def _leave() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001
            pass


def _default_store():
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - a private helper; without it every rank reports alone
        return None


def main_train(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool,
               progress: bool, env: DistEnv) -> int:
    """``cyclegan-anime train`` on one rank of a ``torchrun`` job; returns the exit status."""
    run_dir = Path(run_dir)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    reporter = _Reporter(env, None)
    try:
        cfg = _device_for(cfg, env)
        backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, rank=env.rank, world_size=env.world_size)
        reporter = _Reporter(env, _default_store())
        summary = DistributedTrainer(cfg, data_dir, run_dir, resume=resume,
                                     progress=progress).fit()
        dist.barrier()
        if env.is_main:
            print(f"run directory: {run_dir} (step {summary['step']}/{summary['total_steps']}, "
                  f"{summary['train_seconds']:.0f} s, {env.world_size} processes)")
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure ends in one line
        reporter.report(exc, run_dir)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2
    finally:
        reporter.close()
        _leave()
        signal.signal(signal.SIGTERM, previous)
