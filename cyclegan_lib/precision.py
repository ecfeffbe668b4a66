"""Mixed precision: which number format training computes in, per device.

``amp="auto"`` means bf16 autocast where the hardware computes bf16 natively, fp16 autocast
with gradient scaling on CUDA GPUs without bf16 (T4, V100), fp32 elsewhere; ``bf16``,
``fp16`` and ``off`` force one.  Losses stay fp32; the scalers' state is checkpointed, so a
resumed fp16 run continues bit-exactly.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import torch

from .config import AMP_MODES, ConfigError

__all__ = ["AMP_MODES", "INIT_SCALE", "Precision", "cpu_has_native_bf16", "resolve_amp"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
# The scalers' starting factor: torch's default, 2**16, overflows in this model's backward
# pass and skips early steps; the scaler still grows it when gradients allow.
INIT_SCALE = 2.0 ** 10


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo;
    without them bf16 is emulated and ``amp="auto"`` stays in fp32.
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


class Precision:
    """Autocast and gradient scaling for one training run.

    ``prec.backward_step(loss, opt, "G")`` replaces ``loss.backward(); opt.step()``; each optimiser
    has its own scaler, so a step skipped for one does not touch the other.
    """
    def __init__(self, amp: str, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.label = resolve_amp(amp, self.device)
        self.dtype = _DTYPES[self.label]
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if self.label == "fp16":
            self.scalers = {n: torch.amp.GradScaler(self.device.type, init_scale=INIT_SCALE)
                            for n in ("G", "D")}

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
        """Restore the scalers (a checkpoint without scaler state leaves them as they are)."""
        for name, scaler in self.scalers.items():
            if state and state.get(name):
                scaler.load_state_dict(state[name])
