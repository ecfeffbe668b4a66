"""Loss values on inputs whose answers are known by hand."""
from __future__ import annotations

import math

import pytest
import torch

from cyclegan_lib.losses import adversarial_loss, cycle_loss, identity_loss


def test_lsgan_is_squared_error_against_one_and_zero() -> None:
    pred = torch.tensor([[0.0, 1.0], [0.5, 2.0]])
    # real target 1: (1 + 0 + 0.25 + 1) / 4
    assert adversarial_loss(pred, True, "lsgan").item() == pytest.approx(2.25 / 4)
    # fake target 0: (0 + 1 + 0.25 + 4) / 4
    assert adversarial_loss(pred, False, "lsgan").item() == pytest.approx(5.25 / 4)


def test_nll_is_binary_cross_entropy_on_logits() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    sig = torch.sigmoid(logits)
    real = -torch.log(sig).mean().item()
    fake = -torch.log(1 - sig).mean().item()
    assert adversarial_loss(logits, True, "nll").item() == pytest.approx(real, rel=1e-6)
    assert adversarial_loss(logits, False, "nll").item() == pytest.approx(fake, rel=1e-6)
    assert adversarial_loss(torch.zeros(4), True, "nll").item() == pytest.approx(math.log(2))


def test_nll_is_stable_for_confident_logits() -> None:
    value = adversarial_loss(torch.tensor([-200.0]), True, "nll")
    assert torch.isfinite(value) and value.item() == pytest.approx(200.0)


def test_adversarial_loss_is_float32_under_bf16() -> None:
    pred = torch.full((2, 1, 4, 4), 0.75, dtype=torch.bfloat16)
    out = adversarial_loss(pred, True)
    assert out.dtype == torch.float32 and out.item() == pytest.approx(0.0625)


def test_adversarial_loss_unknown_mode() -> None:
    with pytest.raises(ValueError, match="wgan"):
        adversarial_loss(torch.zeros(1), True, "wgan")


def test_cycle_loss_is_weighted_l1() -> None:
    a = torch.zeros(1, 3, 2, 2)
    b = torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = 1.5
    l1 = (0.5 * 11 + 1.5) / 12
    assert cycle_loss(b, a).item() == pytest.approx(10 * l1)  # lambda 10 by default
    assert cycle_loss(b, a, weight=2.0).item() == pytest.approx(2 * l1)


def test_identity_loss_default_is_half_lambda() -> None:
    a = torch.zeros(1, 3, 4, 4)
    b = torch.ones(1, 3, 4, 4) * 0.2
    assert identity_loss(b, a).item() == pytest.approx(0.5 * 10 * 0.2)
    assert identity_loss(a, a).item() == 0.0


def test_cycle_loss_gradient_reaches_the_reconstruction() -> None:
    rec = torch.zeros(1, 3, 2, 2, requires_grad=True)
    cycle_loss(rec, torch.ones(1, 3, 2, 2)).backward()
    assert torch.allclose(rec.grad, torch.full_like(rec, -10 / 12))
