"""The official CycleGAN iteration, one network call per image set: the oracle.

:meth:`cyclegan_lib.cyclegan.CycleGAN.optimize` batches inputs that share a network;
``tests/test_fast_path.py`` checks it against this step, and ``benchmarks/train_step.py``
times this step as the ``reference`` and ``cache`` modes.
"""
from __future__ import annotations

import torch

from cyclegan_lib.cyclegan import CycleGAN, set_requires_grad
from cyclegan_lib.losses import adversarial_loss, cycle_loss, identity_loss
from cyclegan_lib.models import random_patches


def reference_optimize(model: CycleGAN, real_a: torch.Tensor, real_b: torch.Tensor
                       ) -> torch.Tensor:
    """One official iteration on ``model``'s networks, optimisers and buffers."""
    cfg, (g_ab, g_ba, d_a, d_b) = model.cfg, model.calls
    patch, gan = cfg.d_patch, cfg.gan_loss
    lam_idt = cfg.lambda_identity * cfg.lambda_cycle
    with model.autocast():
        fake_b = g_ab(real_a)
        rec_a = g_ba(fake_b)
        fake_a = g_ba(real_b)
        rec_b = g_ab(fake_a)
    # Generators: fool the (frozen) discriminators, close both cycles, keep identities.
    set_requires_grad(model.discriminators, False)
    with model.autocast():
        if lam_idt > 0:
            loss_idt_a = identity_loss(g_ba(real_a), real_a, lam_idt)
            loss_idt_b = identity_loss(g_ab(real_b), real_b, lam_idt)
        else:
            loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
        loss_g_ab = adversarial_loss(d_b(random_patches(fake_b, patch)), True, gan)
        loss_g_ba = adversarial_loss(d_a(random_patches(fake_a, patch)), True, gan)
        g_terms = [loss_g_ab, loss_g_ba, cycle_loss(rec_a, real_a, cfg.lambda_cycle),
                   cycle_loss(rec_b, real_b, cfg.lambda_cycle), loss_idt_a, loss_idt_b]
    model.opt_G.zero_grad(set_to_none=True)
    sum(g_terms[1:], g_terms[0]).backward()
    model.opt_G.step()
    model.update_ema()
    # Discriminators: real vs. fakes drawn through the history buffers.
    set_requires_grad(model.discriminators, True)
    fake_b_old = model.pool_B.query(fake_b.detach())
    fake_a_old = model.pool_A.query(fake_a.detach())
    with model.autocast():
        loss_d_b = 0.5 * (adversarial_loss(d_b(random_patches(real_b, patch)), True, gan)
                          + adversarial_loss(d_b(random_patches(fake_b_old, patch)), False, gan))
        loss_d_a = 0.5 * (adversarial_loss(d_a(random_patches(real_a, patch)), True, gan)
                          + adversarial_loss(d_a(random_patches(fake_a_old, patch)), False, gan))
    model.opt_D.zero_grad(set_to_none=True)
    (loss_d_a + loss_d_b).backward()
    model.opt_D.step()
    return torch.stack([*g_terms, loss_d_a, loss_d_b]).detach().float()
