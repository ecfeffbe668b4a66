"""The fast path computes the reference iteration: same losses, same weights.

``CycleGAN.optimize`` (every run) batches inputs that share a network into one
call, and with ``fast=True`` uses the fused Adam kernel; ``tests/reference_step.py``
is the official one-call-per-image iteration (with for-loop Adam, ``fast=False``).  From the same seed, a few steps of each agree
exactly up to rounding in float64 (losses, weights, history buffers) and closely
in float32 (with ``amp="off"``: bf16 autocast is a separate, tested option), for the stabilized recipe and for the presets whose step differs
(random discriminator patches, NLL loss with a single-output head and no buffer).
"""
from __future__ import annotations

import pytest
import torch
from conftest import twenty_steps

from cyclegan_lib import precision as precision_mod
from cyclegan_lib.config import ConfigError, make_config
from cyclegan_lib.data import DomainImages, EpochPlan, ScanReport, UnpairedData, make_batch
from cyclegan_lib.precision import cpu_has_native_bf16
from cyclegan_lib.trainer import Trainer
from reference_step import reference_optimize

STEPS = 4


def _data(n: int, size: int) -> UnpairedData:
    g = torch.Generator().manual_seed(5)
    images = [torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
              for _ in range(2)]
    return UnpairedData(DomainImages(images[0], ScanReport("A")),
                        DomainImages(images[1], ScanReport("B")))


def _run(tmp_path, preset: str, fast: bool, data: UnpairedData, dtype: torch.dtype,
         **overrides):
    """STEPS iterations from seed 0; networks, optimiser state and batches in ``dtype``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        cfg = make_config(preset, "smoke", fast=fast, amp="off", **overrides)  # the fp32 maths
        trainer = Trainer(cfg, tmp_path / "no-data", tmp_path / f"run-{preset}-{fast}-{dtype}",
                          progress=False, data=data)
        bs = cfg.batch_size
        plan = EpochPlan.draw(len(data.a), len(data.b), STEPS * bs, cfg.resolved_load_size,
                              cfg.image_size, cfg.seed, 0)
        losses = []
        for i in range(STEPS):
            a, b = make_batch(data, plan, i * bs, bs, cfg.image_size, trainer.device,
                              trainer.model.channels_last)
            step = trainer.train_step if fast else lambda x, y: reference_optimize(trainer.model, x, y)
            losses.append(step(a.to(dtype), b.to(dtype)))
    finally:
        torch.set_default_dtype(previous)
    return trainer, torch.stack(losses)


CASES = [
    ("stabilized", {}),
    ("stabilized", {"batch_size": 2, "pool_size": 3}),  # buffer full after 2 steps: swaps happen
    ("patch32", {"image_size": 48}),                    # random D patches smaller than the image
    ("naive", {}),                                      # NLL, single-output D, no buffer
]


def _data_for(overrides: dict) -> UnpairedData:
    return _data(6, 56 if overrides.get("image_size") == 48 else 36)


@pytest.mark.parametrize("preset,overrides", CASES)
def test_fast_path_is_the_reference_maths_in_float64(tmp_path, preset, overrides):
    """In float64 rounding cannot hide a difference: losses, weights and buffers match."""
    data = _data_for(overrides)
    ref, ref_losses = _run(tmp_path, preset, False, data, torch.float64, **overrides)
    fast, fast_losses = _run(tmp_path, preset, True, data, torch.float64, **overrides)
    assert torch.isfinite(ref_losses).all()
    torch.testing.assert_close(fast_losses, ref_losses, rtol=1e-9, atol=1e-12)
    for name in ("G_AB", "G_BA", "D_A", "D_B"):
        for (key, p_ref), p_fast in zip(getattr(ref.model, name).state_dict().items(),
                                        getattr(fast.model, name).state_dict().values()):
            # A bias right before an instance norm has no effect on anything (the norm
            # removes it) and its gradient is pure rounding noise, which Adam scales up
            # to +-lr per step; every other parameter agrees to rounding.
            atol = 1e-8 if key.endswith("bias") else 1e-12
            torch.testing.assert_close(p_fast, p_ref, rtol=1e-9, atol=atol,
                                       msg=lambda m, k=f"{name}.{key}": f"{k}: {m}")
    for pool in ("pool_A", "pool_B"):
        a, b = getattr(ref.model, pool).images, getattr(fast.model, pool).images
        assert len(a) == len(b)
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("preset,overrides", CASES[:2])
def test_fast_and_reference_losses_agree_in_float32(tmp_path, preset, overrides):
    """In float32 (how training runs on CPU) the two agree to rounding at first; GAN
    training then amplifies last-bit differences step by step (Adam turns tiny gradient
    differences into +-lr updates), so later steps agree to about a percent."""
    data = _data_for(overrides)
    _, ref_losses = _run(tmp_path, preset, False, data, torch.float32, **overrides)
    _, fast_losses = _run(tmp_path, preset, True, data, torch.float32, **overrides)
    torch.testing.assert_close(fast_losses[:2], ref_losses[:2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_losses, ref_losses, rtol=5e-2, atol=1e-3)


def test_cpu_profile_uses_the_fast_path(tmp_path):
    cfg = make_config("stabilized", "cpu")
    assert cfg.fast
    trainer = Trainer(cfg, tmp_path / "no-data", tmp_path / "run", progress=False,
                      data=_data(2, cfg.resolved_load_size))
    assert all(g.get("fused") for opt in (trainer.model.opt_G, trainer.model.opt_D) for g in opt.param_groups)
    # bf16 autocast follows the hardware: on where the CPU has bf16 instructions.
    assert cfg.amp == "auto"
    assert trainer.model.amp.enabled == cpu_has_native_bf16()


def test_amp_option(tmp_path, monkeypatch):
    data = _data(2, 36)
    cfg = make_config("stabilized", "smoke", amp="off")
    assert not Trainer(cfg, tmp_path / "x", tmp_path / "off", progress=False, data=data).model.amp.enabled
    cfg = make_config("stabilized", "smoke", amp="bf16")
    assert Trainer(cfg, tmp_path / "x", tmp_path / "bf16", progress=False, data=data).model.amp.enabled
    for native in (True, False):
        monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: native)
        cfg = make_config("stabilized", "smoke", amp="auto")
        trainer = Trainer(cfg, tmp_path / "x", tmp_path / f"auto{native}", progress=False, data=data)
        assert trainer.model.amp.enabled is native
    with pytest.raises(ConfigError, match="amp"):
        make_config("stabilized", "smoke", amp="fp8")


def test_bf16_training_tracks_fp32(tmp_path):
    """bf16 autocast keeps the training signal: the first step's losses agree to rounding and
    the 20-step mean of every loss term stays within 5% of fp32 (GAN losses, instance norm)."""
    data = _data(4, 36)
    runs = {}
    for amp in ("off", "bf16"):
        runs[amp], trainer = twenty_steps(data, amp, tmp_path / amp)
    assert torch.isfinite(runs["bf16"]).all()
    assert not torch.equal(runs["bf16"], runs["off"])  # bf16 really ran
    torch.testing.assert_close(runs["bf16"][0], runs["off"][0], rtol=0.02, atol=0.01)
    torch.testing.assert_close(runs["bf16"].mean(0), runs["off"].mean(0), rtol=0.05, atol=0.01)
