"""The networks: the official CycleGAN ResNet generator and 70x70 PatchGAN discriminator.

Layer for layer as the official ``networks.py`` (parameter counts match, model-zoo
generators load), plus the paper's naive variants of each.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .checkpoint import safe_load
from .config import TrainConfig
from .errors import CheckpointError

__all__ = [
    "ResidualBlock", "ResnetGenerator", "PatchDiscriminator", "NETWORKS", "build_network",
    "init_weights", "count_parameters", "random_patches", "load_official_generator",
    "convert_official_state_dict",
]

#: A CycleGAN's four networks, by the names its checkpoints and published folders use.
NETWORKS = ("G_AB", "G_BA", "D_A", "D_B")


def _norm(channels: int) -> nn.Module:
    # The official default: InstanceNorm2d(affine=False, track_running_stats=False).
    return nn.InstanceNorm2d(channels)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with reflection padding; the input is added back.

    ``naive=True`` is the paper's first version: ``relu(x + F(x))`` as in the
    original ResNet, instead of CycleGAN's plain ``x + F(x)``.  The attribute
    name ``conv_block`` matches the official code so state dicts load unchanged.
    """

    def __init__(self, channels: int, naive: bool = False) -> None:
        super().__init__()
        self.naive = naive
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.conv_block(x)
        return torch.relu(out) if self.naive else out


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d2ngf, d4ngf, ``n_blocks`` x R4ngf, u2ngf, ungf, c7s1-3 (Johnson et al.).

    With ``ngf=64``: 9 blocks have 11,378,179 parameters, 6 blocks 7,837,699 and
    3 blocks 4,297,219 (38% of 9 blocks: the paper's figure).  ``variant="naive"``
    swaps the final tanh for a ReLU and uses the add-before-activation block.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_blocks: int = 9, variant: str = "official") -> None:
        super().__init__()
        if variant not in ("official", "naive"):
            raise ValueError(f"unknown generator variant {variant!r}")
        if n_blocks < 0:
            raise ValueError("n_blocks must be >= 0")
        self.variant = variant
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       _norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResidualBlock(ngf * 4, naive=variant == "naive") for _ in range(n_blocks)]
        for mult in (4, 2):  # two stride-2 upsamplings
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1),
                       _norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7),
                   nn.ReLU(True) if variant == "naive" else nn.Tanh()]
        self.model = nn.Sequential(*layers)  # the official attribute name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: C64-C128-C256-C512 with LeakyReLU(0.2) and instance norm.

    ``head="patchmap"`` (official) returns a map of scores, one per overlapping 70x70 patch;
    ``head="single"`` (the paper's naive head) one score per ``patch_size`` input.  Both return
    logits: the sigmoid is folded into the NLL loss; :meth:`probability` applies it.
    """
    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 head: str = "patchmap", patch_size: int = 70) -> None:
        super().__init__()
        if head not in ("patchmap", "single"):
            raise ValueError(f"unknown discriminator head {head!r}")
        self.head = head
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1),
                       _norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1),
                   _norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        if head == "patchmap":
            layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        else:
            size = patch_size
            for _ in range(n_layers):
                size = (size + 2 - 4) // 2 + 1
            size = size + 2 - 4 + 1
            if size < 1:
                raise ValueError(f"patch_size {patch_size} is too small for {n_layers} layers")
            layers += [nn.Conv2d(ndf * mult, 1, size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """Probability that ``x`` is real (sigmoid of the logits)."""
        return torch.sigmoid(self(x))


def build_network(cfg: TrainConfig, name: str) -> nn.Module:
    """The untrained network ``name`` of :data:`NETWORKS`, shaped as ``cfg`` says."""
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {name!r}")
    if name.startswith("G"):
        return ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks, variant=cfg.generator_variant)
    return PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.d_layers, head=cfg.d_head,
                              patch_size=cfg.d_patch or cfg.image_size)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The official 'normal' init: convs N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def random_patches(x: torch.Tensor, size: int | None, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """One random ``size`` x ``size`` crop per image (the paper's patch experiment).

    ``size=None`` or a size at least the image size returns ``x`` unchanged.
    Offsets come from ``generator`` (or torch's global RNG) on the CPU, so runs
    are reproducible and resumable.
    """
    if size is None or size >= min(x.shape[-2:]):
        return x
    n, _, h, w = x.shape
    ys = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    xs = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    return torch.stack([x[i, :, y:y + size, c:c + size] for i, (y, c) in enumerate(zip(ys, xs))])


_OFFICIAL_DROP = re.compile(r"\.(running_mean|running_var|num_batches_tracked)$")


def convert_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official CycleGAN generator state dict for :class:`ResnetGenerator`: drops the
    ``module.`` prefix and the InstanceNorm running statistics of pre-0.4 PyTorch saves.
    """
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if _OFFICIAL_DROP.search(key):
            continue
        out[key] = value
    return out


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.")


def load_official_generator(path: str | Path, n_blocks: int | None = 9, ngf: int | None = 64
                            ) -> ResnetGenerator:
    """Load a model-zoo ``latest_net_G.pth`` (weights only) as a :class:`ResnetGenerator`.

    ``n_blocks=None`` / ``ngf=None`` read the size from the file; a misfit raises
    :class:`~cyclegan_lib.checkpoint.CheckpointError`.
    """
    state = safe_load(path)
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a generator state dict")
    state = convert_official_state_dict(state)
    if ngf is None:
        first = state.get("model.1.weight")
        if first is None or first.dim() != 4:
            raise CheckpointError(f"{path}: not a ResnetGenerator state dict (no model.1.weight)")
        ngf = int(first.shape[0])
    if n_blocks is None:
        n_blocks = len({m.group(1) for k in state if (m := _BLOCK_KEY.match(k))})
    net = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: does not fit ResnetGenerator(ngf={ngf}, "
                              f"n_blocks={n_blocks}): {detail[1].strip() if len(detail) > 1 else ''}"
                              ) from None
    return net.eval()
