"""Adversarial, cycle-consistency and identity losses.

LSGAN (Mao et al.) is a squared error against 1 (real) and 0 (fake), which still gives
gradients far from the decision boundary; NLL is the original GAN loss, on logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["adversarial_loss", "cycle_loss", "identity_loss"]


def adversarial_loss(prediction: torch.Tensor, target_is_real: bool, mode: str = "lsgan"
                     ) -> torch.Tensor:
    """Loss of discriminator output ``prediction`` against an all-real or all-fake target.

    Computed in float32 even under autocast: the squared error of bf16 scores
    loses the small differences that GAN training runs on.
    """
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "nll":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown GAN loss {mode!r} (choose 'lsgan' or 'nll')")


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor, weight: float = 10.0
               ) -> torch.Tensor:
    """L1 between an image and its round trip A->B->A, times lambda (10 in the paper)."""
    return F.l1_loss(reconstructed.float(), original.float()) * weight


def identity_loss(mapped: torch.Tensor, original: torch.Tensor, weight: float = 5.0
                  ) -> torch.Tensor:
    """L1 between G_AB(b) and b: a generator fed its target domain should leave it alone.

    The weight is ``lambda_identity * lambda_cycle`` (0.5 x 10 = 5 by default).
    """
    return F.l1_loss(mapped.float(), original.float()) * weight
