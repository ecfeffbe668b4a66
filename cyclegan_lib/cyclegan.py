"""The CycleGAN model object: four networks, two optimisers, two history buffers, one step.

As in the official code's ``optimize_parameters()``, :meth:`CycleGAN.optimize` updates both
generators first (discriminators frozen), then both discriminators on real images and on
fakes drawn through the history buffers, each discriminator loss halved.  Inputs that share
a network go through it in one call (exact: instance norm and the PatchGAN work per sample);
``tests/reference_step.py`` keeps the official one-call-per-image step as the oracle.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .buffer import ImageHistoryBuffer
from .config import TrainConfig
from .errors import ConfigError
from .losses import adversarial_loss, cycle_loss, identity_loss
from .models import NETWORKS, build_network, init_weights, random_patches
from .precision import Precision

__all__ = ["LOSS_NAMES", "CycleGAN", "lr_factor", "resolve_device", "set_requires_grad"]

LOSS_NAMES = ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The official linear rule for 0-based ``epoch``: 1 for ``n_epochs`` epochs, then down
    to ``1 / (n_epochs_decay + 1)`` in the last epoch."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"invalid option device={name!r}: CUDA is not available on this machine")
    return device


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


class CycleGAN(nn.Module):
    """``G_AB`` maps humans (A) to anime (B), ``G_BA`` back; ``D_A`` and ``D_B`` judge each domain.

    The step calls the networks through :attr:`calls`, which a distributed trainer replaces
    by DDP wrappers (:meth:`wrap`); checkpoints hold the plain networks.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device | str = "cpu", rank: int = 0) -> None:
        super().__init__()
        self.cfg, self.device = cfg, torch.device(device)
        self.G_AB, self.G_BA, self.D_A, self.D_B = (build_network(cfg, k) for k in NETWORKS)
        for net in self.networks:
            init_weights(net)
        self.to(self.device)
        self.channels_last = cfg.fast and self.device.type == "cuda"
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        self.amp = Precision(cfg.amp, self.device)  # autocast, and fp16 gradient scalers
        # fused: one Adam kernel over all parameters (CPU and CUDA), the same update rule
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **({"fused": True} if cfg.fast else {}))
        self.opt_G = torch.optim.Adam([p for g in self.generators for p in g.parameters()], **adam)
        self.opt_D = torch.optim.Adam([p for d in self.discriminators for p in d.parameters()],
                                      **adam)
        self.pool_A = ImageHistoryBuffer(cfg.pool_size, seed=cfg.seed * 2 + 1 + 7919 * rank)
        self.pool_B = ImageHistoryBuffer(cfg.pool_size, seed=cfg.seed * 2 + 2 + 7919 * rank)
        # The averaged generators (ema_decay > 0), a steadier model than the last weights.
        self.ema = nn.ModuleDict({k: copy.deepcopy(getattr(self, k)) for k in ("G_AB", "G_BA")}
                                 ).requires_grad_(False) if cfg.ema_decay > 0 else None
        self.calls: tuple[nn.Module, ...] = ()
        self.wrap(lambda net: net)

    @property
    def networks(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        return self.G_AB, self.G_BA, self.D_A, self.D_B

    @property
    def generators(self) -> list[nn.Module]:
        return [self.G_AB, self.G_BA]

    @property
    def discriminators(self) -> list[nn.Module]:
        return [self.D_A, self.D_B]

    def wrap(self, wrapper) -> None:
        """Call the networks through ``wrapper(net)`` (DDP), then ``torch.compile`` if asked."""
        calls = [wrapper(net) for net in self.networks]
        self.calls = tuple(torch.compile(c) for c in calls) if self.cfg.compile else tuple(calls)

    def autocast(self):
        return self.amp.autocast()

    def set_lr(self, epoch: int) -> float:
        cfg = self.cfg
        lr = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    # -- one iteration -------------------------------------------------------------------
    def optimize(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One iteration; returns the eight losses (:data:`LOSS_NAMES`), detached, on the device."""
        fake_a, fake_b, g_terms = self.update_generators(real_a, real_b)
        d_terms = self.update_discriminators(real_a, real_b, fake_a, fake_b)
        return torch.stack([*g_terms, *d_terms]).detach().float()

    def update_generators(self, real_a: torch.Tensor, real_b: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Fool the frozen discriminators, close both cycles, keep identities; one Adam step.

        ``G_AB`` translates ``real_a`` and maps ``real_b`` to itself (identity) in one call;
        ``G_BA`` likewise.  Returns the fakes and the six loss terms.
        """
        cfg, (g_ab, g_ba, d_a, d_b) = self.cfg, self.calls
        lam_idt = cfg.lambda_identity * cfg.lambda_cycle
        n = real_a.shape[0]
        with self.autocast():
            if lam_idt > 0:
                fake_b, idt_b = g_ab(torch.cat([real_a, real_b])).split(n)
                fake_a, idt_a = g_ba(torch.cat([real_b, real_a])).split(n)
            else:
                fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        set_requires_grad(self.discriminators, False)
        with self.autocast():
            if lam_idt > 0:
                loss_idt_a = identity_loss(idt_a, real_a, lam_idt)
                loss_idt_b = identity_loss(idt_b, real_b, lam_idt)
            else:
                loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
            # random discriminator patches: B's first, as the official code
            loss_g_ab = adversarial_loss(d_b(random_patches(fake_b, cfg.d_patch)), True, cfg.gan_loss)
            loss_g_ba = adversarial_loss(d_a(random_patches(fake_a, cfg.d_patch)), True, cfg.gan_loss)
            terms = [loss_g_ab, loss_g_ba, cycle_loss(rec_a, real_a, cfg.lambda_cycle),
                     cycle_loss(rec_b, real_b, cfg.lambda_cycle), loss_idt_a, loss_idt_b]
        self.opt_G.zero_grad(set_to_none=True)
        self.amp.backward_step(sum(terms[1:], terms[0]), self.opt_G, "G")
        set_requires_grad(self.discriminators, True)
        self.update_ema()
        return fake_a, fake_b, terms

    def update_discriminators(self, real_a: torch.Tensor, real_b: torch.Tensor,
                              fake_a: torch.Tensor, fake_b: torch.Tensor) -> list[torch.Tensor]:
        """Real images against fakes from the history buffers; each loss halved; one Adam step.

        Each discriminator scores ``[real; fake]`` in one call.  Returns ``[loss_D_A, loss_D_B]``.
        """
        cfg, (_, _, d_a, d_b) = self.cfg, self.calls
        patch, n = cfg.d_patch, real_a.shape[0]
        fake_b_old = self.pool_B.query(fake_b.detach())
        fake_a_old = self.pool_A.query(fake_a.detach())
        with self.autocast():
            score_b = d_b(torch.cat([random_patches(real_b, patch), random_patches(fake_b_old, patch)]))
            score_a = d_a(torch.cat([random_patches(real_a, patch), random_patches(fake_a_old, patch)]))
            loss_d_b = 0.5 * (adversarial_loss(score_b[:n], True, cfg.gan_loss)
                              + adversarial_loss(score_b[n:], False, cfg.gan_loss))
            loss_d_a = 0.5 * (adversarial_loss(score_a[:n], True, cfg.gan_loss)
                              + adversarial_loss(score_a[n:], False, cfg.gan_loss))
        self.opt_D.zero_grad(set_to_none=True)
        self.amp.backward_step(loss_d_a + loss_d_b, self.opt_D, "D")
        return [loss_d_a, loss_d_b]

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema <- decay * ema + (1 - decay) * weights`` for both generators."""
        if self.ema is not None:
            ema = [p for k in ("G_AB", "G_BA") for p in self.ema[k].parameters()]
            live = [p for g in self.generators for p in g.parameters()]
            torch._foreach_lerp_(ema, live, 1.0 - self.cfg.ema_decay)

    # -- state (the checkpoint's "models", "optimizers", "buffers" and "ema" entries) -------
    def training_state(self) -> dict:
        return {"models": {k: getattr(self, k).state_dict() for k in NETWORKS},
                "optimizers": {"G": self.opt_G.state_dict(), "D": self.opt_D.state_dict()},
                "buffers": {"A": self.pool_A.state_dict(), "B": self.pool_B.state_dict()},
                **({"ema": {k: m.state_dict() for k, m in self.ema.items()}}
                   if self.ema is not None else {}),
                **({"scalers": self.amp.state_dict()} if self.amp.scalers else {})}

    def load_training_state(self, state: dict) -> None:
        for key in NETWORKS:
            getattr(self, key).load_state_dict(state["models"][key])
        self.opt_G.load_state_dict(state["optimizers"]["G"])
        self.opt_D.load_state_dict(state["optimizers"]["D"])
        self.pool_A.load_state_dict(state["buffers"]["A"], self.device)
        self.pool_B.load_state_dict(state["buffers"]["B"], self.device)
        if self.ema is not None:
            for key, module in self.ema.items():
                module.load_state_dict(state["ema"][key])
        self.amp.load_state_dict(state.get("scalers"))
