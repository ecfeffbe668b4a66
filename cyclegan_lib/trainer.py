"""The CycleGAN training loop, for CPU and CUDA, with exact resume.

One iteration follows the official code: both generators are updated first
(adversarial + cycle + identity losses, discriminators frozen), then both
discriminators (on real images and on fakes drawn through the history
buffer), each loss halved as in the official ``backward_D_basic``.  The
learning rate is constant for ``n_epochs`` and decays linearly over
``n_epochs_decay``, set at every epoch boundary exactly like the official
``LambdaLR`` rule.

Speed without changing the maths (``fast``): the data come from the in-memory
uint8 tensors of :mod:`cyclegan_lib.data`, inputs that share a network go
through it in one call, Adam is the fused kernel, and on CUDA the tensors are
channels_last with cudnn autotuning; losses stay on the device and are fetched
every ``log_every`` steps, so the loop never waits for the GPU.  Speed with
fewer bits (``amp``, see :mod:`cyclegan_lib.precision`): bf16 autocast, losses in
fp32, on by default wherever the hardware computes bf16 natively (CUDA GPUs with
bf16, CPUs with AVX512-BF16 or AMX), where it is the largest single gain (see
``benchmarks/``); fp16 autocast with gradient scaling on CUDA GPUs without bf16.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .buffer import ImageHistoryBuffer
from .checkpoint import (CheckpointError, atomic_save, capture_rng, checkpoint_name,
                         latest_checkpoint, list_checkpoints, prune_checkpoints, restore_rng,
                         safe_load)
from .config import ConfigError, TrainConfig
from .data import EpochPlan, UnpairedData, load_domain, load_unpaired, make_batch
from .losses import adversarial_loss, cycle_loss, identity_loss
from .models import PatchDiscriminator, ResnetGenerator, count_parameters, init_weights, random_patches
from .precision import Precision, cpu_has_native_bf16, use_bf16  # noqa: F401  (re-exported)
from .pretrained import weight_files as pretrained_files
from .pretrained import is_pretrained, load_network
from .pretrained import read_config as read_pretrained_config

__all__ = [
    "LOSS_NAMES", "CycleGAN", "Trainer", "TrainingError", "lr_factor", "resolve_device",
    "train", "ensure_run", "load_checkpoint_config", "load_generator", "run_is_complete",
    "read_history",
]

LOSS_NAMES = ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
CHECKPOINT_FORMAT = "cyclegan_lib/1"
# Presets with identical settings share one run directory (trained once).
RUN_ALIASES = {"blocks9": "stabilized"}


class TrainingError(RuntimeError):
    """Training stopped (non-finite loss, refused resume...): one-line message."""


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The official linear rule, for 0-based ``epoch``: 1 for ``n_epochs`` epochs, then down.

    ``1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)``: the last epoch
    runs at ``1 / (n_epochs_decay + 1)`` of the base rate, and the rate after it
    would be 0.
    """
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"invalid option device={name!r}: CUDA is not available on this machine")
    return device


class CycleGAN(nn.Module):
    """The four networks of one experiment, built from a :class:`TrainConfig`.

    ``G_AB`` maps humans (A) to anime (B), ``G_BA`` back; ``D_A`` judges
    domain-A images and ``D_B`` domain-B images.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        patch = cfg.d_patch if cfg.d_patch is not None else cfg.image_size
        self.G_AB = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks, variant=cfg.generator_variant)
        self.G_BA = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks, variant=cfg.generator_variant)
        self.D_A = PatchDiscriminator(ndf=cfg.ndf, head=cfg.d_head, patch_size=patch)
        self.D_B = PatchDiscriminator(ndf=cfg.ndf, head=cfg.d_head, patch_size=patch)
        for net in (self.G_AB, self.G_BA, self.D_A, self.D_B):
            init_weights(net)

    @property
    def generators(self) -> list[nn.Module]:
        return [self.G_AB, self.G_BA]

    @property
    def discriminators(self) -> list[nn.Module]:
        return [self.D_A, self.D_B]


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


@dataclass
class StepOutput:
    losses: torch.Tensor  # [len(LOSS_NAMES)], on the device, detached


class Trainer:
    """Trains one run directory.  ``Trainer(cfg, data_dir, run_dir).fit()``.

    The run directory receives ``config.json``, ``data_report.txt``,
    ``history.csv`` (one row per iteration), ``samples/step_*.png``,
    ``checkpoints/step_*.pt`` (atomic, the newest ``keep_checkpoints`` kept),
    ``log.txt`` and, when done, ``summary.json``.
    """

    def __init__(self, cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True,
                 data: UnpairedData | None = None, rank: int = 0, world_size: int = 1) -> None:
        cfg.validate()
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        self.progress = progress
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        ckpt_dir = self.run_dir / "checkpoints"
        latest = latest_checkpoint(ckpt_dir)
        self.resume_from = None
        self.damaged: list[str] = []  # unreadable checkpoints passed over on resume (logged)
        if latest is not None:
            if not resume:
                raise TrainingError(f"{self.run_dir} already holds checkpoints: pass --resume to "
                                    f"continue it, or choose another --out")
            latest, saved = self._newest_readable(ckpt_dir)
            # Bookkeeping may change on resume; the experiment and its scale may not.
            mutable = {"max_steps", "device", "log_every", "sample_every", "save_every",
                       "keep_checkpoints", "threads", "compile", "amp"}
            diff = [k for k, v in cfg.to_dict().items() if k not in mutable and saved.get(k) != v]
            if diff:
                raise TrainingError(f"cannot resume {self.run_dir}: settings differ from the "
                                    f"checkpoint ({', '.join(diff)})")
            self.resume_from = latest
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        cuda = self.device.type == "cuda"
        self.amp = Precision(cfg.amp, self.device)  # autocast + fp16 gradient scalers
        self.use_amp = self.amp.enabled
        self.channels_last = cfg.fast and cuda
        # Fast path on any device: one call per network for inputs that share it (exact:
        # instance norm and the PatchGAN work per sample); see _train_step_batched.
        self.batched = cfg.fast
        if cuda:
            torch.backends.cudnn.benchmark = cfg.fast

        torch.manual_seed(cfg.seed)
        self.data = data if data is not None else load_unpaired(
            self.data_dir, "train", cfg.resolved_load_size, min_size=cfg.image_size,
            max_images=cfg.max_images)
        # At least one step per epoch: fewer images than one (global) batch would otherwise
        # make a "complete" run of zero steps.
        self.epoch_size = cfg.epoch_size or max(1, max(len(self.data.a), len(self.data.b)) // (
            cfg.batch_size * world_size))
        self.total_steps = cfg.total_epochs * self.epoch_size
        self.end_step = min(self.total_steps, cfg.max_steps or self.total_steps)

        self.nets = CycleGAN(cfg).to(self.device)
        if self.channels_last:
            self.nets = self.nets.to(memory_format=torch.channels_last)
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        if cfg.fast:  # one fused kernel over all parameters (CPU and CUDA), same update rule
            adam["fused"] = True
        self.opt_G = torch.optim.Adam([p for g in self.nets.generators for p in g.parameters()], **adam)
        self.opt_D = torch.optim.Adam([p for d in self.nets.discriminators for p in d.parameters()],
                                      **adam)
        self.pool_A = ImageHistoryBuffer(cfg.pool_size, seed=cfg.seed * 2 + 1 + 7919 * rank)
        self.pool_B = ImageHistoryBuffer(cfg.pool_size, seed=cfg.seed * 2 + 2 + 7919 * rank)
        self.G_AB, self.G_BA, self.D_A, self.D_B = self._wrap()
        # The averaged generators (cfg.ema_decay > 0): what a finished run ships.
        self.ema = nn.ModuleDict({"G_AB": copy.deepcopy(self.nets.G_AB),
                                  "G_BA": copy.deepcopy(self.nets.G_BA)}).requires_grad_(False) \
            if cfg.ema_decay > 0 else None
        self.step = 0
        self.history = torch.zeros(0, len(LOSS_NAMES))
        self.train_seconds = 0.0
        self.sample_a, self.sample_b = self._fixed_samples()
        if self.resume_from is not None:
            self._load(self.resume_from)

    # -- set-up helpers ----------------------------------------------------------------
    def _newest_readable(self, ckpt_dir: Path) -> tuple[Path, dict]:
        """The newest checkpoint that loads, and its config.

        A damaged newest file (a copy cut short, a sync client's half upload) is moved
        aside to ``*.damaged`` and the one before it is used, so a run is never stuck.
        """
        for _, path in reversed(list_checkpoints(ckpt_dir)):
            try:
                return path, load_checkpoint_config(path)
            except CheckpointError as exc:
                self.damaged.append(f"{path.name} ({exc})")
                if self.is_main:
                    with contextlib.suppress(OSError):
                        path.rename(path.with_name(path.name + ".damaged"))
        raise TrainingError(f"cannot resume {self.run_dir}: no readable checkpoint in {ckpt_dir} "
                            f"({self.damaged[0]})")

    def _wrap(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """The modules the step calls; subclasses (DDP, compile) wrap them here."""
        nets = [self.nets.G_AB, self.nets.G_BA, self.nets.D_A, self.nets.D_B]
        if self.cfg.compile:
            nets = [torch.compile(n) for n in nets]
        return tuple(nets)  # type: ignore[return-value]

    def _fixed_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Four test images per domain (train images if there is no test split) for grids."""
        size = self.cfg.image_size
        out = []
        for dom, train in (("A", self.data.a), ("B", self.data.b)):
            folder = self.data_dir / f"test{dom}"
            try:
                images = load_domain(folder, size, min_size=size, max_images=4).images
            except (ValueError, OSError):
                images = train.images[:4, :, :size, :size]
            out.append(images.float().div(127.5).sub(1.0))
        return out[0], out[1]

    def log(self, message: str) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(message)

    @property
    def precision(self) -> str:
        """What the networks compute in: ``bf16``, ``fp16`` (autocast) or ``fp32``."""
        return self.amp.label

    # -- one iteration -----------------------------------------------------------------
    def _autocast(self):
        return self.amp.autocast()

    def _update_generators(self, real_a, real_b, fake_a, fake_b, rec_a, rec_b, idt_a, idt_b
                           ) -> list[torch.Tensor]:
        """The generators' loss and Adam step (discriminators frozen); returns its six terms.

        Shared by both step bodies; ``idt_*`` is None when the identity loss is off.
        The discriminators' random patches are drawn here, B's first, as the official code.
        """
        cfg = self.cfg
        lam_idt = cfg.lambda_identity * cfg.lambda_cycle
        with self._autocast():
            if idt_a is not None and idt_b is not None:
                loss_idt_a = identity_loss(idt_a, real_a, lam_idt)
                loss_idt_b = identity_loss(idt_b, real_b, lam_idt)
            else:
                loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
            loss_g_ab = adversarial_loss(self.D_B(random_patches(fake_b, cfg.d_patch)), True,
                                         cfg.gan_loss)
            loss_g_ba = adversarial_loss(self.D_A(random_patches(fake_a, cfg.d_patch)), True,
                                         cfg.gan_loss)
            loss_cyc_a = cycle_loss(rec_a, real_a, cfg.lambda_cycle)
            loss_cyc_b = cycle_loss(rec_b, real_b, cfg.lambda_cycle)
            terms = [loss_g_ab, loss_g_ba, loss_cyc_a, loss_cyc_b, loss_idt_a, loss_idt_b]
            loss_g = sum(terms[1:], terms[0])
        self.opt_G.zero_grad(set_to_none=True)
        self.amp.backward_step(loss_g, self.opt_G, "G")
        self._update_ema()
        return terms

    @torch.no_grad()
    def _update_ema(self) -> None:
        """``ema <- decay * ema + (1 - decay) * weights`` for both generators.

        A GAN's generator chases a moving discriminator, so its weights wander from
        step to step; their running average is a steadier model (Yazici et al., 2019).
        """
        if self.ema is None:
            return
        ema = [p for k in ("G_AB", "G_BA") for p in self.ema[k].parameters()]
        live = [p for g in self.nets.generators for p in g.parameters()]
        torch._foreach_lerp_(ema, live, 1.0 - self.cfg.ema_decay)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One official CycleGAN iteration; returns the detached losses (no host sync).

        This body is the reference (one network call per image set, as the official
        code); the fast path (``cfg.fast``) runs the same maths in fewer calls.
        """
        if self.batched:
            return self._train_step_batched(real_a, real_b)
        cfg = self.cfg
        patch = cfg.d_patch
        lam_idt = cfg.lambda_identity * cfg.lambda_cycle
        with self._autocast():
            fake_b = self.G_AB(real_a)
            rec_a = self.G_BA(fake_b)
            fake_a = self.G_BA(real_b)
            rec_b = self.G_AB(fake_a)
        # Generators: fool the (frozen) discriminators, close both cycles, keep identities.
        _set_requires_grad(self.nets.discriminators, False)
        with self._autocast():
            idt_a = self.G_BA(real_a) if lam_idt > 0 else None
            idt_b = self.G_AB(real_b) if lam_idt > 0 else None
        g_terms = self._update_generators(real_a, real_b, fake_a, fake_b, rec_a, rec_b, idt_a, idt_b)
        # Discriminators: real vs. fakes drawn through the history buffers.
        _set_requires_grad(self.nets.discriminators, True)
        fake_b_old = self.pool_B.query(fake_b.detach())
        fake_a_old = self.pool_A.query(fake_a.detach())
        with self._autocast():
            loss_d_b = 0.5 * (
                adversarial_loss(self.D_B(random_patches(real_b, patch)), True, cfg.gan_loss)
                + adversarial_loss(self.D_B(random_patches(fake_b_old, patch)), False, cfg.gan_loss))
            loss_d_a = 0.5 * (
                adversarial_loss(self.D_A(random_patches(real_a, patch)), True, cfg.gan_loss)
                + adversarial_loss(self.D_A(random_patches(fake_a_old, patch)), False, cfg.gan_loss))
        self.opt_D.zero_grad(set_to_none=True)
        self.amp.backward_step(loss_d_a + loss_d_b, self.opt_D, "D")
        return torch.stack([*g_terms, loss_d_a, loss_d_b]).detach().float()

    def _train_step_batched(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """:meth:`train_step` with fewer, larger network calls: the same maths.

        Instance norm and the PatchGAN work per sample, so two inputs of the *same*
        network can share one call: ``G_AB`` sees ``[real_a; real_b]`` (translation
        and identity) and ``G_BA`` ``[real_b; real_a]``; each discriminator scores
        ``[real; fake]`` in one call.  Losses are taken on each half as before, and
        random patches are drawn in the reference order.  Six generator calls
        become four and six discriminator calls four.
        """
        cfg = self.cfg
        patch = cfg.d_patch
        lam_idt = cfg.lambda_identity * cfg.lambda_cycle
        n = real_a.shape[0]
        with self._autocast():
            if lam_idt > 0:
                fake_b, idt_b = self.G_AB(torch.cat([real_a, real_b])).split(n)
                fake_a, idt_a = self.G_BA(torch.cat([real_b, real_a])).split(n)
            else:
                fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)
                idt_a = idt_b = None
            rec_a = self.G_BA(fake_b)
            rec_b = self.G_AB(fake_a)
        _set_requires_grad(self.nets.discriminators, False)
        g_terms = self._update_generators(real_a, real_b, fake_a, fake_b, rec_a, rec_b,
                                          idt_a, idt_b)
        _set_requires_grad(self.nets.discriminators, True)
        fake_b_old = self.pool_B.query(fake_b.detach())
        fake_a_old = self.pool_A.query(fake_a.detach())
        with self._autocast():
            score_b = self.D_B(torch.cat([random_patches(real_b, patch),
                                          random_patches(fake_b_old, patch)]))
            score_a = self.D_A(torch.cat([random_patches(real_a, patch),
                                          random_patches(fake_a_old, patch)]))
            loss_d_b = 0.5 * (adversarial_loss(score_b[:n], True, cfg.gan_loss)
                              + adversarial_loss(score_b[n:], False, cfg.gan_loss))
            loss_d_a = 0.5 * (adversarial_loss(score_a[:n], True, cfg.gan_loss)
                              + adversarial_loss(score_a[n:], False, cfg.gan_loss))
        self.opt_D.zero_grad(set_to_none=True)
        self.amp.backward_step(loss_d_a + loss_d_b, self.opt_D, "D")
        return torch.stack([*g_terms, loss_d_a, loss_d_b]).detach().float()

    # -- the loop ----------------------------------------------------------------------
    def _set_lr(self, epoch: int) -> float:
        lr = self.cfg.lr * lr_factor(epoch, self.cfg.n_epochs, self.cfg.n_epochs_decay)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def _flush(self, pending: list[torch.Tensor]) -> None:
        """Bring pending losses to the host, append them, stop on the first non-finite one."""
        if not pending:
            return
        rows = torch.stack(pending).cpu()
        pending.clear()
        rows = self._reduce_losses(rows)
        bad = ~torch.isfinite(rows)
        if bad.any():
            r, c = (int(i) for i in bad.nonzero()[0])
            step = self.step - len(rows) + r + 1
            kept = latest_checkpoint(self.run_dir / "checkpoints")
            raise TrainingError(f"non-finite loss {LOSS_NAMES[c]}={rows[r, c].item()} at step "
                                f"{step}; stopped, " + (f"the last good checkpoint {kept.name} is kept"
                                                        if kept else "no checkpoint was written yet"))
        self.history = torch.cat([self.history, rows])

    def _reduce_losses(self, rows: torch.Tensor) -> torch.Tensor:
        """Hook for distributed training (average over ranks); identity here."""
        return rows

    def _epoch_plan(self, epoch: int) -> EpochPlan:
        """This rank's share of epoch ``epoch`` (the whole plan when ``world_size`` is 1)."""
        cfg = self.cfg
        return EpochPlan.draw(len(self.data.a), len(self.data.b),
                              self.epoch_size * cfg.batch_size * self.world_size,
                              cfg.resolved_load_size, cfg.image_size, cfg.seed, epoch
                              ).shard(self.rank, self.world_size)

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
        self.log(f"training {cfg.preset}/{cfg.profile} on {self.device} "
                 f"({self.precision}): {self.end_step} steps "
                 f"({self.epoch_size} per epoch), G {count_parameters(self.nets.G_AB):,} params, "
                 f"D {count_parameters(self.nets.D_A):,} params")
        bar = None
        if self.progress and self.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.end_step, initial=self.step, desc=f"{cfg.preset}/{cfg.profile}",
                       unit="it", dynamic_ncols=True)
        pending: list[torch.Tensor] = []
        started = time.perf_counter()
        base_seconds = self.train_seconds
        for net in (*self.nets.generators, *self.nets.discriminators):
            net.train()
        try:
            while self.step < self.end_step:
                epoch = self.step // self.epoch_size
                lr = self._set_lr(epoch)
                plan = self._epoch_plan(epoch)
                for i in range(self.step % self.epoch_size, self.epoch_size):
                    real_a, real_b = make_batch(self.data, plan, i * cfg.batch_size, cfg.batch_size,
                                                cfg.image_size, self.device, self.channels_last)
                    pending.append(self.train_step(real_a, real_b))
                    self.step += 1
                    if bar is not None:
                        bar.update(1)
                    last = self.step == self.end_step
                    if self.step % cfg.log_every == 0 or last or self.step % cfg.save_every == 0:
                        self._flush(pending)
                        if bar is not None:
                            bar.set_postfix({k: f"{v:.3f}" for k, v in
                                             zip(("G_AB", "cyc_A", "D_B"), self.history[-1, [0, 2, 7]]
                                                 .tolist())} | {"lr": f"{lr:.1e}"})
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
            "world_size": self.world_size, "params_G": count_parameters(self.nets.G_AB), "params_D": count_parameters(self.nets.D_A),
            "torch": torch.__version__,
        }

    # -- outputs -----------------------------------------------------------------------
    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """A grid: rows real A, G_AB(A), G_BA(G_AB(A)), real B, G_BA(B), G_AB(G_BA(B))."""
        if not self.is_main:
            return None
        # The averaged generators when the run keeps them: the model a finished run ships.
        g_ab, g_ba = (self.ema["G_AB"], self.ema["G_BA"]) if self.ema is not None else (
            self.nets.G_AB, self.nets.G_BA)
        g_ab.eval(), g_ba.eval()
        a, b = self.sample_a.to(self.device), self.sample_b.to(self.device)
        fake_b = g_ab(a)
        fake_a = g_ba(b)
        rows = [a, fake_b, g_ba(fake_b), b, fake_a, g_ab(fake_a)]
        g_ab.train(), g_ba.train()
        # Imported here: torchvision takes seconds to import and errors should come first.
        from torchvision.utils import make_grid, save_image

        grid = make_grid(torch.cat([r.float().cpu() for r in rows]), nrow=len(a),
                         normalize=True, value_range=(-1, 1), padding=2)
        path = self.run_dir / "samples" / f"step_{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        return path

    def write_history(self) -> Path:
        """history.csv: step, epoch, lr and every loss term, one row per iteration (atomic)."""
        path = self.run_dir / "history.csv"
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", "epoch", "lr", *LOSS_NAMES])
        cfg = self.cfg
        for i, row in enumerate(self.history.tolist()):
            epoch = i // self.epoch_size
            lr = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
            writer.writerow([i + 1, epoch, f"{lr:.6g}", *(f"{v:.6g}" for v in row)])
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
        return path

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "step": self.step,
            "models": {k: getattr(self.nets, k).state_dict() for k in ("G_AB", "G_BA", "D_A", "D_B")},
            "optimizers": {"G": self.opt_G.state_dict(), "D": self.opt_D.state_dict()},
            "buffers": {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()},
            "rng": capture_rng(), "history": self.history.clone(),
            "train_seconds": self.train_seconds,
            **({"scalers": self.amp.state_dict()} if self.amp.scalers else {}),
            **({"ema": {k: m.state_dict() for k, m in self.ema.items()}} if self.ema is not None
               else {}),
        }

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
        for key in ("G_AB", "G_BA", "D_A", "D_B"):
            getattr(self.nets, key).load_state_dict(state["models"][key])
        self.opt_G.load_state_dict(state["optimizers"]["G"])
        self.opt_D.load_state_dict(state["optimizers"]["D"])
        self.pool_A.load_state_dict(state["buffers"]["A"], self.device)
        self.pool_B.load_state_dict(state["buffers"]["B"], self.device)
        if self.ema is not None:
            for key, module in self.ema.items():
                module.load_state_dict(state["ema"][key])
        self.amp.load_state_dict(state.get("scalers"))  # absent in older and non-fp16 runs
        restore_rng(state["rng"])
        self.step = int(state["step"])
        self.history = state["history"]
        self.train_seconds = float(state["train_seconds"])


# -- convenience functions used by the CLI and the chapters ----------------------------

def _checkpoint_path(run_or_file: str | Path) -> Path:
    """The file that holds a run's weights: its newest checkpoint, or for a published
    folder (``pretrained/<preset>``) its ``G_AB`` safetensors file."""
    path = Path(run_or_file)
    if path.is_dir() and is_pretrained(path):
        return pretrained_files(path, "G_AB")[0]
    if path.is_dir():
        latest = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"no checkpoint in {path} (expected {path}/checkpoints/step_*.pt)")
        return latest
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint_config(run_or_file: str | Path) -> dict:
    """The config dict stored in a checkpoint (or the newest one of a run directory)."""
    path = _checkpoint_path(run_or_file)
    if path.suffix == ".safetensors":
        return read_pretrained_config(path.parent).to_dict()
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{run_or_file}: not a cyclegan_lib checkpoint")
    return state["config"]


def load_generator(run_or_file: str | Path, direction: str = "AtoB",
                   device: str | torch.device = "cpu", ema: bool = True) -> ResnetGenerator:
    """The trained generator of a run (``AtoB``: human to anime), in eval mode.

    Accepts a run directory (its newest checkpoint is used) or a checkpoint
    file; loading never unpickles code (``weights_only=True``).  Where the run
    kept averaged weights (``ema_decay > 0``) those are returned unless ``ema=False``.
    """
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")
    path = _checkpoint_path(run_or_file)
    if path.suffix == ".safetensors":
        return load_network(path.parent, "G_AB" if direction == "AtoB" else "G_BA", device)
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a cyclegan_lib checkpoint")
    cfg = TrainConfig.from_dict(state["config"])
    net = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks, variant=cfg.generator_variant)
    key = "G_AB" if direction == "AtoB" else "G_BA"
    net.load_state_dict(state["ema"][key] if ema and "ema" in state else state["models"][key])
    return net.to(device).eval()


def run_is_complete(run_dir: str | Path) -> bool:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return False
    return bool(json.loads(path.read_text()).get("complete"))


def read_history(run_dir: str | Path) -> dict[str, list[float]]:
    """history.csv as columns of floats."""
    with open(Path(run_dir) / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}


def train(cfg: TrainConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False,
          progress: bool = True) -> dict:
    """Train (or resume) one run; returns its summary."""
    return Trainer(cfg, data_dir, run_dir, resume=resume, progress=progress).fit()


def ensure_run(preset: str, profile: str, data_dir: str | Path, runs_dir: str | Path,
               seed: int = 0, device: str = "auto", progress: bool = True,
               pretrained_dir: str | Path | None = None) -> Path:
    """The run of ``preset`` at ``profile``: a published folder, or one trained if needed.

    ``pretrained_dir/preset`` is used when it holds this preset trained at this
    profile (the repository ships the book's models there, so the book builds
    without training).  Otherwise the run lives in ``runs_dir/profile/preset``:
    reused when complete, resumed when half-finished, trained when missing, so
    each chapter also runs alone.  At the ``book`` profile the naive model stays
    at ``cpu`` length (:data:`~cyclegan_lib.config.SHORT_RUNS`).
    """
    from .config import SHORT_RUNS, make_config, resolve_profile

    profile = resolve_profile(profile)
    preset = RUN_ALIASES.get(preset, preset)
    profile = SHORT_RUNS.get(profile, {}).get(preset, profile)
    if pretrained_dir is not None:
        folder = Path(pretrained_dir) / preset
        if is_pretrained(folder) and read_pretrained_config(folder).profile == profile:
            return folder
    run_dir = Path(runs_dir) / profile / preset
    if not run_is_complete(run_dir):
        cfg = make_config(preset, profile, seed=seed, device=device)
        train(cfg, data_dir, run_dir, resume=True, progress=progress)
    return run_dir
