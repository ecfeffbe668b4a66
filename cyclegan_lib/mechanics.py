"""The mechanisms the chapters teach, measured by the library and drawn as figures.

Generator gradients per adversarial loss, the PatchGAN's receptive field, a discriminator's
patch scores, the learning-rate schedule, history-buffer ages and checkerboard artefacts.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .buffer import ImageHistoryBuffer
from .cyclegan import lr_factor
from .losses import adversarial_loss
from .models import ResidualBlock, ResnetGenerator, count_parameters
from .runs import load_run_network
from .viz import sample_cells, sample_steps, to_unit

__all__ = [
    "generator_gradients", "plot_generator_gradients", "receptive_field_table",
    "measured_receptive_field", "load_discriminator", "patch_scores", "plot_patch_scores",
    "lr_schedule", "plot_lr_schedule", "buffer_ages", "plot_buffer_ages",
    "checkerboard_strength", "checkerboard_timeline", "plot_checkerboard_timeline",
    "plot_checkerboard",
    "generator_layer_table",
]


# -- 1. the generator's gradient under each loss ------------------------------------------

def generator_gradients(scores: torch.Tensor | Sequence[float] | None = None
                        ) -> dict[str, dict[str, np.ndarray]]:
    """Loss and d loss / d score of the generator's adversarial term at each raw D output.

    Computed through :func:`adversarial_loss` as the trainer does; ``"nll minimax"`` is the
    original ``log(1 - D)``, shown for contrast (the library uses the non-saturating form).
    """
    s = torch.linspace(-6, 6, 241) if scores is None else torch.as_tensor(scores).float()
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in ("nll", "nll minimax", "lsgan"):
        x = s.clone().requires_grad_(True)
        per_sample = []
        for value in x:  # one loss per value, each through the library's function
            v = value.reshape(1)
            if name == "nll minimax":
                per_sample.append(-adversarial_loss(v, False, "nll"))
            else:
                per_sample.append(adversarial_loss(v, True, name))
        loss = torch.stack(per_sample)
        loss.sum().backward()
        out[name] = {"score": s.numpy().copy(), "loss": loss.detach().numpy(),
                     "grad": x.grad.numpy().copy(),
                     "p_real": torch.sigmoid(s).numpy() if name != "lsgan" else s.numpy()}
    return out


def plot_generator_gradients(curves: Mapping[str, Mapping[str, np.ndarray]] | None = None):
    """Two panels: the generator's loss and the size of its gradient vs D's output on a fake."""
    curves = curves or generator_gradients()
    style = {"nll": ("NLL (library: -log sigmoid(s))", "C0", "-"),
             "nll minimax": ("NLL minimax log(1 - sigmoid(s)) (not used)", "C0", ":"),
             "lsgan": ("LSGAN (s - 1)^2", "C1", "-")}
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for name, c in curves.items():
        label, colour, ls = style[name]
        axes[0].plot(c["score"], c["loss"], color=colour, ls=ls, label=label)
        axes[1].plot(c["score"], np.abs(c["grad"]), color=colour, ls=ls, label=label)
    axes[0].set_ylim(-1, 10)
    axes[0].set_ylabel("generator's loss")
    axes[1].set_ylabel("|d loss / d score|")
    for ax in axes:
        ax.set_xlabel("discriminator's raw output s on a fake")
        ax.axvline(0, color="0.8", lw=0.8)
        ax.axvline(1, color="0.8", lw=0.8, ls="--")
    axes[1].set_ylim(0, 8)
    axes[1].legend(fontsize=8, loc="upper left")
    axes[0].set_title("loss")
    axes[1].set_title("gradient: how hard the generator is pushed")
    fig.tight_layout()
    return fig


# -- 1b. where a generator's parameters sit ------------------------------------------------

def generator_layer_table(ngf: int = 64, n_blocks: int = 9) -> list[dict[str, Any]]:
    """Parameters per layer of a :class:`ResnetGenerator`, counted from the model.

    Parameter-free layers are left out; the alike residual blocks are one row with a count.
    """
    net = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    rows: list[dict[str, Any]] = []
    scale = 1.0
    for layer in net.model:
        n = count_parameters(layer)
        if n == 0:
            continue
        if isinstance(layer, ResidualBlock):
            c = layer.conv_block[1].in_channels
            if rows and rows[-1]["layer"].startswith("residual block"):
                rows[-1]["count"] += 1
                rows[-1]["parameters"] += n
                continue
            rows.append({"layer": f"residual block: 2 x conv 3x3, {c}->{c}", "resolution":
                         f"1/{int(1 / scale)}", "count": 1, "per layer": n, "parameters": n})
            continue
        k = layer.kernel_size[0]
        stride = layer.stride[0]
        if isinstance(layer, nn.ConvTranspose2d):
            scale *= stride
            kind = f"transposed conv {k}x{k}, stride {stride}"
        else:
            scale /= stride
            kind = f"conv {k}x{k}" + (f", stride {stride}" if stride > 1 else "")
        res = "1" if scale == 1 else f"1/{int(round(1 / scale))}"
        rows.append({"layer": f"{kind}, {layer.in_channels}->{layer.out_channels}",
                     "resolution": res, "count": 1, "per layer": n, "parameters": n})
    total = sum(r["parameters"] for r in rows)
    for r in rows:
        r["share"] = r["parameters"] / total
    return rows


# -- 2. the PatchGAN's receptive field ------------------------------------------------------

def receptive_field_table(net: nn.Module) -> list[dict[str, Any]]:
    """The receptive field of every convolution of ``net``, layer by layer.

    ``rf += (kernel - 1) * jump`` and ``jump *= stride``; the last row is one score's input patch.
    """
    rows, rf, jump = [], 1, 1
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for i, conv in enumerate(convs, 1):
        k, s = conv.kernel_size[0], conv.stride[0]
        rf += (k - 1) * jump
        jump *= s
        rows.append({"layer": i, "conv": f"{conv.in_channels}->{conv.out_channels}",
                     "kernel": k, "stride": s, "padding": conv.padding[0],
                     "jump (px)": jump, "receptive field (px)": rf})
    return rows


def measured_receptive_field(net: nn.Module, size: int = 160) -> int:
    """The receptive field found with autograd: pixels that move one central score.

    Measured on a copy without normalisation layers (they couple every pixel) and with
    positive weights, so only the convolutions' window counts.
    """
    probe = copy.deepcopy(net).float().eval()
    for name, module in list(probe.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.InstanceNorm2d, nn.BatchNorm2d)):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(p.abs() + 1e-3)
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    out = probe(x)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero()
    return int(touched[:, 0].max() - touched[:, 0].min() + 1)


def load_discriminator(run_dir: str | Path, domain: str = "B", device: str = "cpu") -> nn.Module:
    """The trained discriminator ``D_A`` or ``D_B`` of a run (its newest checkpoint, or a
    published folder that ships discriminators), in eval mode."""
    if domain not in ("A", "B"):
        raise ValueError("domain must be 'A' or 'B'")
    return load_run_network(run_dir, f"D_{domain}", device)


@torch.no_grad()
def patch_scores(discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The discriminator's raw score map ``[n, h, w]``: one score per overlapping patch."""
    device = next(discriminator.parameters()).device
    return discriminator(images.to(device)).float().cpu()[:, 0]


def plot_patch_scores(images: Mapping[str, torch.Tensor], discriminator: nn.Module,
                      title: str | None = None):
    """Each image next to its per-patch score map (1: looks real to D, 0: looks fake)."""
    batches = {k: v[:4] for k, v in images.items()}
    maps = {k: patch_scores(discriminator, v) for k, v in batches.items()}
    lo = min(float(m.min()) for m in maps.values())
    hi = max(float(m.max()) for m in maps.values())
    n = max(len(v) for v in batches.values())
    fig, axes = plt.subplots(len(batches), 2 * n, figsize=(2.0 * n * 1.1, 1.25 * len(batches)),
                             squeeze=False)
    for r, (name, batch) in enumerate(batches.items()):
        for j in range(n):
            ax_img, ax_map = axes[r, 2 * j], axes[r, 2 * j + 1]
            for ax in (ax_img, ax_map):
                ax.axis("off")
            if j >= len(batch):
                continue
            ax_img.imshow(to_unit(batch[j]).permute(1, 2, 0).numpy())
            im = ax_map.imshow(maps[name][j].numpy(), cmap="RdYlGn", vmin=lo, vmax=hi)
            ax_map.set_title(f"mean {float(maps[name][j].mean()):.2f}", fontsize=8)
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="D's score per patch")
    if title:
        fig.suptitle(title)
    return fig


# -- 3. the learning-rate schedule ----------------------------------------------------------

def lr_schedule(cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(step, lr)`` for every training step of ``cfg``, from the trainer's :func:`lr_factor`
    (an epoch unset in ``cfg`` is 3,400 steps, one pass over selfie2anime)."""
    per_epoch = cfg.epoch_size or 3400
    epochs = np.arange(cfg.total_epochs)
    lr = np.array([cfg.lr * lr_factor(int(e), cfg.n_epochs, cfg.n_epochs_decay) for e in epochs])
    steps = np.arange(cfg.total_epochs * per_epoch)
    return steps, lr[steps // per_epoch]


def plot_lr_schedule(configs: Mapping[str, Any]):
    """The learning rate over training for several configs, on a fraction-of-training axis."""
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for name, cfg in configs.items():
        steps, lr = lr_schedule(cfg)
        ax.step(steps / len(steps), lr, where="post", label=f"{name}: {len(steps):,} steps")
    ax.set_xlabel("fraction of training")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- 4. what the history buffer returns -----------------------------------------------------

def buffer_ages(size: int = 50, steps: int = 400, batch: int = 1, seed: int = 0) -> np.ndarray:
    """``[steps, batch]`` ages (in steps) of the fakes the buffer hands the discriminator.

    Each fake is a 1x1 image holding its step, sent through :meth:`ImageHistoryBuffer.query`.
    """
    buf = ImageHistoryBuffer(size, seed=seed)
    ages = np.zeros((steps, batch), dtype=np.int64)
    for t in range(steps):
        fakes = torch.full((batch, 1, 1, 1), float(t))
        ages[t] = t - buf.query(fakes)[:, 0, 0, 0].numpy().astype(np.int64)
    return ages


def plot_buffer_ages(ages: np.ndarray | None = None, size: int = 50):
    """Scatter of the ages over training, and their distribution once the buffer is full."""
    ages = buffer_ages(size) if ages is None else ages
    steps = np.repeat(np.arange(len(ages)), ages.shape[1])
    flat = ages.ravel()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.0))
    axes[0].scatter(steps, flat, s=4, alpha=0.6)
    axes[0].axvline(size, color="0.6", ls="--", lw=0.8)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("age of the fake D sees (steps)")
    full = ages[size:].ravel()
    axes[1].hist(full, bins=np.arange(0, full.max() + 10, 5), color="C1")
    axes[1].set_xlabel("age (steps), after the buffer is full")
    axes[1].set_ylabel("count")
    axes[1].set_title(f"{np.mean(full == 0):.0%} are the newest fake", fontsize=9)
    fig.tight_layout()
    return fig


# -- 5. checkerboard artefacts --------------------------------------------------------------

def _power(images: torch.Tensor) -> torch.Tensor:
    """Mean power spectrum of the high-passed grey images (DC in the corner, not shifted)."""
    grey = images.float().mean(1, keepdim=True)
    smooth = F.avg_pool2d(F.pad(grey, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    residual = (grey - smooth)[:, 0]
    return torch.fft.fft2(residual).abs().pow(2).mean(0)


def checkerboard_strength(images: torch.Tensor, period: int = 2) -> float:
    """Spectral power at the upsampling period over the median power: about 1 for natural images.

    Stride-2 transposed convolutions stamp a pattern repeating every ``period`` pixels
    (Odena et al., 2016), a peak at ``size / period`` along each axis and the diagonal.
    """
    power = _power(images)
    n = power.shape[-1]
    k = n // period
    peak = (power[k, 0] + power[0, k] + power[k, k]) / 3
    rest = power.flatten()[1:]
    return float(peak / rest.median().clamp_min(1e-12))


def checkerboard_timeline(run_dir: str | Path) -> list[tuple[int, float]]:
    """``(step, strength)`` of the G_AB(A) row of each saved sample grid of a run."""
    return [(s, checkerboard_strength(sample_cells(run_dir, s)[1])) for s in sample_steps(run_dir)]


def plot_checkerboard_timeline(timeline: Sequence[tuple[int, float]], title: str | None = None):
    """The period-2 strength of :func:`checkerboard_timeline` against the training step."""
    steps, strength = zip(*timeline)
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.plot(steps, strength, marker="o")
    ax.set_xlabel("training step")
    ax.set_ylabel("period-2 strength")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_checkerboard(images: Mapping[str, torch.Tensor], crop: int = 16):
    """For each batch: one image, a zoomed crop of it (nearest neighbour) and its spectrum."""
    fig, axes = plt.subplots(len(images), 3, figsize=(8.0, 2.7 * len(images)), squeeze=False)
    for r, (name, batch) in enumerate(images.items()):
        img = batch[0]
        size = img.shape[-1]
        y0 = x0 = (size - crop) // 2
        zoom = img[:, y0:y0 + crop, x0:x0 + crop]
        axes[r, 0].imshow(to_unit(img).permute(1, 2, 0).numpy())
        axes[r, 0].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), crop, crop, fill=False,
                                           color="yellow", lw=1.2))
        axes[r, 0].set_title(name, fontsize=9)
        axes[r, 1].imshow(to_unit(zoom).permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r, 1].set_title(f"centre {crop}x{crop} px, zoomed", fontsize=9)
        power = torch.fft.fftshift(_power(batch))
        axes[r, 2].imshow(np.log10(power.numpy() + 1e-8), cmap="magma")
        strength = checkerboard_strength(batch)
        axes[r, 2].set_title(f"spectrum; period-2 strength {strength:.1f}", fontsize=9)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    return fig
