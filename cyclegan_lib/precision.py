"""Mixed precision: which number format training computes in, per device.

The ``amp`` option of :class:`~cyclegan_lib.config.TrainConfig`:

* ``auto`` (default): bf16 autocast where the hardware computes bf16 natively (CUDA GPUs
  with bf16: Ampere and newer; CPUs with AVX512-BF16 or AMX), fp16 autocast with gradient
  scaling on CUDA GPUs without bf16 (Colab's free T4, V100: their tensor cores compute
  fp16), fp32 elsewhere (a CPU that would only emulate bf16).
* ``bf16``: bf16 autocast (an error on a GPU without bf16).
* ``fp16``: fp16 autocast with one :class:`torch.amp.GradScaler` per optimiser (also runs on
  CPU, where it is slow but lets the path be tested).
* ``off``: exact fp32.

Losses are computed in fp32 in every mode (:mod:`cyclegan_lib.losses`).  fp16 has 5
exponent bits, so small gradients underflow to zero; the scaler multiplies each loss by a
large factor before ``backward()``, divides the gradients by it before the optimiser step,
skips a step whose gradients overflowed and lowers the factor then (Micikevicius et al.,
2018).  Its state (the factor and its growth counter) is part of a checkpoint, so a resumed
fp16 run continues bit-exactly.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import torch

from .config import AMP_MODES, ConfigError

__all__ = ["AMP_MODES", "INIT_SCALE", "Precision", "cpu_has_native_bf16", "resolve_amp", "use_bf16"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
# The scalers' starting factor.  torch's default, 2**16, overflows in this model's backward
# pass: on the smoke profile the scale settled at 2**11-2**12 after 4-5 of the first 20 steps
# were skipped, which moved the 20-step loss means by up to 24% from fp32.  Starting at 2**10
# skips none there; the scaler still doubles it after every 2,000 steps without overflow and
# halves it on one, so a model whose gradients allow more finds its level either way.
INIT_SCALE = 2.0 ** 10


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo.

    Without them bf16 is emulated and buys nothing, so ``amp="auto"`` stays in fp32.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def _cuda_bf16(device: torch.device) -> bool:
    return bool(torch.cuda.is_bf16_supported())


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """The precision ``amp`` means on ``device``: ``"bf16"``, ``"fp16"`` or ``"fp32"``."""
    device = torch.device(device)
    if amp not in AMP_MODES:
        raise ConfigError(f"invalid option amp={amp!r}: choose from {', '.join(AMP_MODES)}")
    if amp == "off":
        return "fp32"
    if amp == "fp16":
        return "fp16"
    cuda = device.type == "cuda"
    native = _cuda_bf16(device) if cuda else cpu_has_native_bf16()
    if amp == "bf16":
        if cuda and not native:
            raise ConfigError("invalid option amp='bf16': this GPU has no bf16 support "
                              "(use amp=fp16 or amp=auto)")
        return "bf16"
    # auto
    if native:
        return "bf16"
    return "fp16" if cuda else "fp32"


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether ``amp`` on ``device`` means bf16 autocast (the inference benchmark's rule)."""
    return resolve_amp(amp, device) == "bf16"


class Precision:
    """Autocast and gradient scaling for one training run.

    ``with prec.autocast(): ...`` runs the networks; ``prec.backward_step(loss, opt, "G")``
    replaces ``loss.backward(); opt.step()`` (scaled in fp16, plain otherwise).  Each
    optimiser has its own scaler: the generators' and the discriminators' losses differ in
    size, and a step skipped for one must not touch the other.
    """

    def __init__(self, amp: str, device: torch.device | str, names: tuple[str, ...] = ("G", "D"),
                 init_scale: float = INIT_SCALE) -> None:
        self.device = torch.device(device)
        self.label = resolve_amp(amp, self.device)
        self.dtype = _DTYPES[self.label]
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if self.label == "fp16":
            self.scalers = {n: torch.amp.GradScaler(self.device.type, init_scale=init_scale)
                            for n in names}

    @property
    def enabled(self) -> bool:
        """Whether the networks run under autocast (bf16 or fp16)."""
        return self.dtype is not None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, name: str
                      ) -> None:
        """``loss.backward()`` and ``optimizer.step()``, through the scaler ``name`` in fp16."""
        scaler = self.scalers.get(name)
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # unscales; skips the step if a gradient is inf/nan
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scalers' state (empty unless fp16): goes into checkpoints."""
        return {n: s.state_dict() for n, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the scalers; a checkpoint without scaler state (older code, or a run
        that trained in another precision) leaves them at their initial state."""
        for name, scaler in self.scalers.items():
            if state and state.get(name):
                scaler.load_state_dict(state[name])
