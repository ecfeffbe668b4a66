"""The training loop: owns a run directory and drives :class:`~cyclegan_lib.cyclegan.CycleGAN`.

Writes ``config.json``, ``data_report.txt``, ``history.csv``, ``samples/``, atomic
``checkpoints/`` (exact resume), ``log.txt`` and ``summary.json``.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from .checkpoint import (CHECKPOINT_FORMAT, atomic_save, capture_rng, checkpoint_name,
                         latest_checkpoint, list_checkpoints, prune_checkpoints, restore_rng,
                         safe_load)
from .config import TrainConfig, settings_differ
from .cyclegan import LOSS_NAMES, CycleGAN, lr_factor, resolve_device
from .data import EpochPlan, UnpairedData, load_domain, load_unpaired, make_batch, uint8_to_float
from .errors import CheckpointError, TrainingError
from .models import count_parameters
from .runs import SAMPLE_PADDING, find_run, load_checkpoint_config

__all__ = ["Trainer", "TrainingError", "train", "ensure_run"]


def _same_steps_so_far(saved: dict, cfg: TrainConfig, step: int) -> bool:
    """Whether a run saved at ``step`` may go on under ``cfg``'s schedule length: while both
    schedules are still at the constant rate, the steps so far are exactly ``cfg``'s.
    """
    if cfg.epoch_size is None or saved.get("epoch_size") != cfg.epoch_size:
        return False
    return step <= cfg.epoch_size * min(int(saved["n_epochs"]), cfg.n_epochs)


class Trainer:
    """Trains one run directory: ``Trainer(cfg, data_dir, run_dir).fit()``."""

    def __init__(self, cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True,
                 data: UnpairedData | None = None, rank: int = 0, world_size: int = 1) -> None:
        cfg.validate()
        self.cfg, self.run_dir, self.data_dir = cfg, Path(run_dir), Path(data_dir)
        self.progress = progress
        self.rank, self.world_size, self.is_main = rank, world_size, rank == 0
        self.damaged: list[str] = []  # unreadable checkpoints passed over on resume (logged)
        self.resume_from = self._resume_point(resume)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.fast

        torch.manual_seed(cfg.seed)
        self.data = data if data is not None else load_unpaired(
            self.data_dir, "train", cfg.resolved_load_size, min_size=cfg.image_size,
            max_images=cfg.max_images)
        # At least one step per epoch, or a tiny data set would make a "complete" empty run.
        self.epoch_size = cfg.epoch_size or max(1, max(len(self.data.a), len(self.data.b)) // (
            cfg.batch_size * world_size))
        self.total_steps = cfg.total_epochs * self.epoch_size
        self.end_step = min(self.total_steps, cfg.max_steps or self.total_steps)
        self.model = CycleGAN(cfg, self.device, rank)
        self.model.wrap(self._wrap)
        self.step = 0
        self.history = torch.zeros(0, len(LOSS_NAMES))
        self.train_seconds = 0.0
        self.sample_a, self.sample_b = self._fixed_samples()
        if self.resume_from is not None:
            self._load(self.resume_from)

    # -- set-up --------------------------------------------------------------------------
    def _resume_point(self, resume: bool) -> Path | None:
        """The newest readable checkpoint when resuming (damaged ones are moved to ``*.damaged``);
        refuses changed experiment settings.
        """
        folder = self.run_dir / "checkpoints"
        if latest_checkpoint(folder) is None:
            return None
        if not resume:
            raise TrainingError(f"{self.run_dir} already holds checkpoints: pass --resume to "
                                f"continue it, or choose another --out")
        for _, path in reversed(list_checkpoints(folder)):
            try:
                saved = load_checkpoint_config(path)
            except CheckpointError as exc:
                self.damaged.append(f"{path.name} ({exc})")
                if self.is_main:
                    with contextlib.suppress(OSError):
                        path.rename(path.with_name(path.name + ".damaged"))
                continue
            diff = settings_differ(saved, self.cfg)
            if diff and set(diff) <= {"n_epochs", "n_epochs_decay"} and _same_steps_so_far(
                    saved, self.cfg, int(path.name[5:13])):
                diff = []  # a new length, and every step so far is the same under both schedules
            if diff:
                raise TrainingError(f"cannot resume {self.run_dir}: settings differ from the "
                                    f"checkpoint ({', '.join(diff)})")
            return path
        raise TrainingError(f"cannot resume {self.run_dir}: no readable checkpoint in {folder} "
                            f"({self.damaged[0]})")

    def _fixed_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Four test images per domain (train images without a test split), for the grids."""
        size = self.cfg.image_size
        out = []
        for dom, train_images in (("A", self.data.a), ("B", self.data.b)):
            try:
                images = load_domain(self.data_dir / f"test{dom}", size, min_size=size,
                                     max_images=4).images
            except (ValueError, OSError):
                images = train_images.images[:4, :, :size, :size]
            out.append(uint8_to_float(images))
        return out[0], out[1]

    def log(self, message: str) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if self.progress:
            tqdm.write(message)

    @property
    def precision(self) -> str:
        """What the networks compute in: ``bf16`` or ``fp16`` (autocast), or ``fp32``."""
        return self.model.amp.label

    # -- the loop ------------------------------------------------------------------------
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One iteration of the model (the loop's only call into the maths)."""
        return self.model.optimize(real_a, real_b)

    def _flush(self, pending: list[torch.Tensor]) -> None:
        """Bring pending losses to the host, append them, stop on the first non-finite one."""
        if not pending:
            return
        rows = self._reduce_losses(torch.stack(pending).cpu())
        pending.clear()
        bad = ~torch.isfinite(rows)
        if bad.any():
            r, c = (int(i) for i in bad.nonzero()[0])
            kept = latest_checkpoint(self.run_dir / "checkpoints")
            raise TrainingError(
                f"non-finite loss {LOSS_NAMES[c]}={rows[r, c].item()} at step "
                f"{self.step - len(rows) + r + 1}; stopped, " +
                (f"the last good checkpoint {kept.name} is kept" if kept
                 else "no checkpoint was written yet"))
        self.history = torch.cat([self.history, rows])

    def _wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """Hook: how the step calls each network (DDP wraps it here); as it is."""
        return net

    def _reduce_losses(self, rows: torch.Tensor) -> torch.Tensor:
        """Hook for distributed training (average over ranks); identity here."""
        return rows

    def _draw_epoch(self, epoch: int) -> EpochPlan:
        """Every rank's samples of epoch ``epoch``, drawn from the seed alone."""
        cfg = self.cfg
        return EpochPlan.draw(len(self.data.a), len(self.data.b),
                              self.epoch_size * cfg.batch_size * self.world_size,
                              cfg.resolved_load_size, cfg.image_size, cfg.seed, epoch)

    def _epoch_plan(self, epoch: int) -> EpochPlan:
        """This rank's share of epoch ``epoch`` (the whole plan when ``world_size`` is 1)."""
        return self._draw_epoch(epoch).shard(self.rank, self.world_size)

    def _after_loop(self) -> None:
        """Hook run on every rank after the last step, before the summary (DDP checks)."""

    def fit(self) -> dict:
        """Train until ``end_step``; returns the summary (also written to summary.json)."""
        cfg = self.cfg
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(cfg.to_json())
            (self.run_dir / "data_report.txt").write_text(self.data.report_text())
        for rep in (self.data.a.report, self.data.b.report):
            self.log(rep.summary())
            for name, why in rep.skipped:
                self.log(f"  skipped {name}: {why}")
        for note in self.damaged:
            self.log(f"skipped damaged checkpoint {note}")
        if self.resume_from is not None:
            self.log(f"resuming from {self.resume_from.name} at step {self.step}")
        self.log(f"training {cfg.preset}/{cfg.profile} on {self.device} ({self.precision}): "
                 f"{self.end_step} steps ({self.epoch_size} per epoch), G "
                 f"{count_parameters(self.model.G_AB):,} params, D "
                 f"{count_parameters(self.model.D_A):,} params")
        bar = tqdm(total=self.end_step, initial=self.step, desc=f"{cfg.preset}/{cfg.profile}",
                   unit="it", dynamic_ncols=True) if self.progress and self.is_main else None
        pending: list[torch.Tensor] = []
        started, base_seconds = time.perf_counter(), self.train_seconds
        # A wall-clock budget (a Colab session, a lent GPU): stop with a checkpoint, resume later.
        deadline = started + 60 * cfg.max_minutes if cfg.max_minutes else float("inf")
        last = False
        self.model.train()
        try:
            while not last and self.step < self.end_step:
                epoch = self.step // self.epoch_size
                lr = self.model.set_lr(epoch)
                plan = self._epoch_plan(epoch)
                for i in range(self.step % self.epoch_size, self.epoch_size):
                    real_a, real_b = make_batch(self.data, plan, i * cfg.batch_size,
                                                cfg.batch_size, cfg.image_size, self.device,
                                                self.model.channels_last)
                    pending.append(self.train_step(real_a, real_b))
                    self.step += 1
                    if bar is not None:
                        bar.update(1)
                    last = self.step == self.end_step or time.perf_counter() >= deadline
                    if self.step % cfg.log_every == 0 or last or self.step % cfg.save_every == 0:
                        self._flush(pending)
                        if bar is not None:
                            g, cyc, d = self.history[-1, [0, 2, 7]].tolist()
                            bar.set_postfix({"G_AB": f"{g:.3f}", "cyc_A": f"{cyc:.3f}",
                                             "D_B": f"{d:.3f}", "lr": f"{lr:.1e}"})
                    if self.step % cfg.sample_every == 0 or last:
                        self.save_samples()
                    if self.step % cfg.save_every == 0 or last:
                        self.train_seconds = base_seconds + time.perf_counter() - started
                        self.save_checkpoint()
                    if last:
                        break
        except TrainingError as exc:
            self.log(f"stopped: {exc}")  # the reason stays in the run directory too
            raise
        finally:
            if bar is not None:
                bar.close()
        self.train_seconds = base_seconds + time.perf_counter() - started
        if self.step < self.end_step:
            self.log(f"stopped after max_minutes={cfg.max_minutes} at step {self.step}; "
                     f"--resume continues exactly")
        self._after_loop()
        summary = self.summary()
        if self.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            self.log(f"done: step {self.step}/{self.total_steps} in {self.train_seconds:.0f} s")
        return summary

    def summary(self) -> dict:
        return {
            "preset": self.cfg.preset, "profile": self.cfg.profile, "step": self.step,
            "total_steps": self.total_steps, "complete": self.step >= self.total_steps,
            "train_seconds": round(self.train_seconds, 2),
            "seconds_per_step": round(self.train_seconds / max(1, self.step), 4),
            "device": str(self.device), "precision": self.precision,
            "world_size": self.world_size, "params_G": count_parameters(self.model.G_AB),
            "params_D": count_parameters(self.model.D_A), "torch": torch.__version__,
        }

    # -- outputs -------------------------------------------------------------------------
    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """A grid: rows A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B)).

        Drawn with the averaged generators when the run keeps them (the model it ships).
        """
        if not self.is_main:
            return None
        ema = self.model.ema
        g_ab, g_ba = (ema["G_AB"], ema["G_BA"]) if ema is not None else self.model.generators
        g_ab.eval(), g_ba.eval()
        a, b = self.sample_a.to(self.device), self.sample_b.to(self.device)
        fake_b, fake_a = g_ab(a), g_ba(b)
        rows = [a, fake_b, g_ba(fake_b), b, fake_a, g_ab(fake_a)]
        g_ab.train(), g_ba.train()
        grid = make_grid(torch.cat([r.float().cpu() for r in rows]), nrow=len(a),
                         normalize=True, value_range=(-1, 1), padding=SAMPLE_PADDING)
        path = self.run_dir / "samples" / f"step_{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        return path

    def write_history(self) -> Path:
        """history.csv: step, epoch, lr and every loss term, one row per iteration (atomic)."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", "epoch", "lr", *LOSS_NAMES])
        cfg = self.cfg
        for i, row in enumerate(self.history.tolist()):
            epoch = i // self.epoch_size
            lr = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
            writer.writerow([i + 1, epoch, f"{lr:.6g}", *(f"{v:.6g}" for v in row)])
        path = self.run_dir / "history.csv"
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
        return path

    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "step": self.step,
                **self.model.training_state(), "rng": capture_rng(),
                "history": self.history.clone(), "train_seconds": self.train_seconds}

    def save_checkpoint(self) -> Path | None:
        """Atomically write ``checkpoints/step_N.pt`` and the CSV; keep the newest K."""
        if not self.is_main:
            return None
        folder = self.run_dir / "checkpoints"
        path = atomic_save(self.state_dict(), folder / checkpoint_name(self.step))
        self.write_history()
        prune_checkpoints(folder, self.cfg.keep_checkpoints)
        return path

    def _load(self, path: Path) -> None:
        state = safe_load(path)
        self.model.load_training_state(state)
        restore_rng(state["rng"])
        self.step = int(state["step"])
        self.history = state["history"]
        self.train_seconds = float(state["train_seconds"])


def train(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False,
          progress: bool = True) -> dict:
    """Train (or resume) one run; returns its summary."""
    return Trainer(cfg, data_dir, run_dir, resume=resume, progress=progress).fit()


def ensure_run(preset: str, profile: str, data_dir: str | Path, runs_dir: str | Path,
               seed: int = 0, device: str = "auto", progress: bool = True,
               pretrained_dir: str | Path | None = None) -> Path:
    """The run of ``preset`` at ``profile`` (:func:`~cyclegan_lib.runs.find_run`): a published
    folder or a complete run as it is, otherwise trained or resumed here."""
    folder, cfg = find_run(preset, profile, runs_dir, pretrained_dir)
    if cfg is not None:
        train(dataclasses.replace(cfg, seed=seed, device=device).validate(), data_dir, folder,
              resume=True, progress=progress)
    return folder
