"""Configuration: one dataclass, the paper's experiments as presets, and profiles that scale them.

Every default number of the project lives here.  A run is described by a
``TrainConfig``; ``make_config(preset, profile)`` builds one from a *preset*
(which experiment of the paper: loss, discriminator head, generator variant,
block count) and a *profile* (how big: image size, widths, steps, device).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError

__all__ = [
    "ConfigError", "TrainConfig", "PRESETS", "PROFILES", "SHORT_RUNS", "ABLATIONS", "PATCH_SHARES",
    "RESUMABLE", "make_config", "config_with", "settings_differ",
    "resolve_profile", "describe_presets", "parse_override", "estimate_t4_minutes",
    "BIG_GPU_GIB",
]


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    # -- experiment (presets) -------------------------------------------------
    preset: str = "stabilized"
    profile: str = "cpu"
    n_blocks: int = 9
    generator_variant: str = "official"   # "official" (tanh, add after block) or "naive"
    d_head: str = "patchmap"             # "patchmap" (official NxN map) or "single" (paper's naive)
    d_patch: int | None = None           # feed D random d_patch x d_patch crops; None = whole image
    d_layers: int = 3                    # D's stride-2 layers: receptive field 70 (3), 34 (2), 16 (1)
    gan_loss: str = "lsgan"              # "lsgan" (MSE) or "nll" (BCE)
    pool_size: int = 50                  # image history buffer; 0 disables it
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5         # identity weight as a fraction of lambda_cycle
    ema_decay: float = 0.0               # exponential moving average of the generators; 0 = off
    # -- scale (profiles) -----------------------------------------------------
    image_size: int = 256                # crop size fed to the networks
    load_size: int | None = None         # resize before cropping; None = image_size * 287/256
    ngf: int = 64
    ndf: int = 64
    n_epochs: int = 100                  # epochs at constant learning rate
    n_epochs_decay: int = 100            # epochs of linear decay to zero
    epoch_size: int | None = None        # iterations per epoch; None = one pass over the larger domain
    max_images: int | None = None        # use only the first N images per domain (smoke runs)
    batch_size: int = 1
    # -- optimisation (official defaults) ------------------------------------
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # -- execution ------------------------------------------------------------
    seed: int = 0
    device: str = "auto"                 # "auto", "cpu", "cuda", "cuda:N"
    fast: bool = True                    # fused Adam (+ channels_last, cudnn autotuning on CUDA): same maths
    amp: str = "auto"                    # "auto" (bf16 where native, fp16 on other GPUs), "bf16", "fp16", "off"
    compile: bool = False                # torch.compile the networks (CUDA; pays off on long runs)
    threads: int | None = None           # torch CPU threads; None = leave torch's default
    # -- bookkeeping ----------------------------------------------------------
    log_every: int = 25                  # fetch losses from the device every N steps
    sample_every: int = 250
    save_every: int = 500
    keep_checkpoints: int = 2
    max_steps: int | None = None         # stop after this many steps (the schedule is unchanged)
    max_minutes: float | None = None     # stop (checkpointed) after this many minutes of this call

    @property
    def resolved_load_size(self) -> int:
        """The resize target: the paper's 286/287 for 256 crops, scaled for other sizes."""
        return self.load_size if self.load_size is not None else round(self.image_size * 287 / 256)

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def validate(self) -> "TrainConfig":
        """Fail fast, with one line naming the option, before any work is done."""
        def bad(name: str, why: str) -> None:
            raise ConfigError(f"invalid option {name}={getattr(self, name)!r}: {why}")

        for f in dataclasses.fields(self):  # types first, so the checks below can compare
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and "None" in kind:
                continue
            base = kind.split("|")[0].strip()
            ok = {"int": isinstance(value, int) and not isinstance(value, bool),
                  "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "str": isinstance(value, str), "bool": isinstance(value, bool)}.get(base, True)
            if not ok:
                bad(f.name, f"expected {kind}")
        if self.preset not in PRESETS:
            bad("preset", f"unknown preset (choose from {', '.join(PRESETS)})")
        if self.profile not in PROFILES and self.profile != "custom":
            bad("profile", f"unknown profile (choose from {', '.join([*PROFILES, 'auto'])})")
        for name in ("n_blocks", "ngf", "ndf", "batch_size", "log_every", "sample_every",
                     "save_every", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                bad(name, "must be a positive integer")
        for name in ("n_epochs", "n_epochs_decay", "pool_size"):
            if int(getattr(self, name)) < 0:
                bad(name, "must not be negative")
        if self.total_epochs < 1:
            bad("n_epochs", "n_epochs + n_epochs_decay must be at least 1")
        for name in ("epoch_size", "max_images", "max_steps", "threads"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                bad(name, "must be a positive integer")
        if self.image_size < 32:
            bad("image_size", "must be at least 32 pixels")
        if self.image_size % 4:
            bad("image_size", "must be a multiple of 4 (two stride-2 downsamplings)")
        if self.resolved_load_size < self.image_size:
            bad("load_size", f"crop size image_size={self.image_size} is larger than load size")
        if not 1 <= self.d_layers <= 3:
            bad("d_layers", "choose 1, 2 or 3 stride-2 layers")
        if self.d_patch is not None and self.d_patch < 4 * 2 ** self.d_layers:
            bad("d_patch", f"patches must be at least {4 * 2 ** self.d_layers} pixels for a "
                           f"{self.d_layers}-layer PatchGAN")
        if self.d_patch is not None and self.d_patch > self.image_size:
            bad("d_patch", f"patches cannot be larger than image_size={self.image_size}")
        if self.generator_variant not in ("official", "naive"):
            bad("generator_variant", "choose 'official' or 'naive'")
        if self.d_head not in ("patchmap", "single"):
            bad("d_head", "choose 'patchmap' or 'single'")
        if self.amp not in AMP_MODES:
            bad("amp", f"choose from {', '.join(AMP_MODES)}")
        if self.gan_loss not in ("lsgan", "nll"):
            bad("gan_loss", "choose 'lsgan' or 'nll'")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes)
                                                 and self.max_minutes > 0):
            bad("max_minutes", "must be a positive number of minutes")
        if not (math.isfinite(self.lr) and self.lr > 0):
            bad("lr", "must be a positive number")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(name, "Adam betas must be in [0, 1)")
        if not 0.0 <= self.ema_decay < 1.0:
            bad("ema_decay", "must be in [0, 1) (0 turns the average off)")
        for name in ("lambda_cycle", "lambda_identity"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                bad(name, "must be a non-negative number")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
                and self.device[5:].isdigit()):
            bad("device", "choose auto, cpu, cuda or cuda:N")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# Settings that may change on resume (bookkeeping); the experiment and its scale may not.
RESUMABLE = {"max_steps", "max_minutes", "device", "log_every", "sample_every", "save_every",
             "keep_checkpoints", "threads", "compile", "amp"}


# The paper's experiments.  Only the fields that differ from TrainConfig's defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Section 4.1: sigmoid single-output discriminator on 70x70 inputs, NLL loss,
    # no history buffer, ReLU output layer and the add-before-activation block.
    "naive": dict(generator_variant="naive", d_head="single", d_patch=70, gan_loss="nll",
                  pool_size=0),
    # Section 4.2: the official CycleGAN recipe: LSGAN, 50-image buffer, 70x70 PatchGAN map.
    "stabilized": dict(),
    # Section 4.3: the discriminator sees random 32x32 patches.
    "patch32": dict(d_patch=32),
    # Section 4.3 at the paper's proportions (64 px): what a discriminator judges is its share
    # of the face.  At 256 px the 70x70 receptive field is 27% of the width and the 32x32
    # patch 12.5%; at 64 px one stride-2 layer gives a 16-px field (25%) and 8-px patches are
    # 12.5%.
    "scaled70": dict(d_layers=1),
    "scaled32": dict(d_layers=1, d_patch=8),
    # Section 4.4: residual-block ablation (blocks9 is the stabilised model).
    "blocks3": dict(n_blocks=3),
    "blocks6": dict(n_blocks=6),
    "blocks9": dict(n_blocks=9),
}

# The single-factor stabilisation ablation: {name: (base preset, overrides)}.  "naive+X" adds
# one of the paper's fixes to the naive model, "stabilized-X" takes one away from the official
# recipe; the two baselines come with no change.  d_patch=None means the whole image; a d_patch
# larger than the image is clamped to it (cyclegan_lib.ablation.ablation_config).
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "naive": ("naive", {}),
    "naive+tanh": ("naive", dict(generator_variant="official")),    # tanh output, official block
    "naive+lsgan": ("naive", dict(gan_loss="lsgan")),
    "naive+buffer": ("naive", dict(pool_size=50)),
    "naive+patchmap": ("naive", dict(d_head="patchmap", d_patch=None)),
    "stabilized": ("stabilized", {}),
    "stabilized-tanh": ("stabilized", dict(generator_variant="naive")),  # ReLU output back
    "stabilized-lsgan": ("stabilized", dict(gan_loss="nll")),
    "stabilized-buffer": ("stabilized", dict(pool_size=0)),
    "stabilized-patchmap": ("stabilized", dict(d_head="single", d_patch=70)),
}

# The patch-size experiment of chapter 4, measured like the ablation: the paper's discriminators
# at their pixel sizes (70x70 field, 32x32 patches) and at their shares of a 256-px face.
PATCH_SHARES: dict[str, tuple[str, dict[str, Any]]] = {
    "stabilized": ("stabilized", {}),
    "patch32": ("stabilized", dict(d_patch=32)),
    "scaled70": ("stabilized", dict(d_layers=1)),
    "scaled32": ("scaled70", dict(d_patch=8)),
}

PRESET_HELP: dict[str, str] = {
    "naive": "paper's first model: NLL, single sigmoid output, no buffer, ReLU output",
    "stabilized": "official CycleGAN: LSGAN + history buffer + 70x70 PatchGAN map",
    "patch32": "stabilized, discriminator on random 32x32 patches",
    "scaled70": "stabilized, 16-px receptive field: the 70x70 field's share of a 256-px face at 64 px",
    "scaled32": "scaled70 on random 8x8 patches: the 32x32 patch's share of a 256-px face at 64 px",
    "blocks3": "stabilized with 3 residual blocks",
    "blocks6": "stabilized with 6 residual blocks",
    "blocks9": "stabilized with 9 residual blocks (same settings as stabilized)",
}

# Precision: "auto" is bf16 autocast where the hardware computes bf16 natively (a CUDA GPU
# with bf16; a CPU with AVX512-BF16 or AMX), fp16 autocast + gradient scaling on CUDA GPUs
# without bf16 (T4, V100), fp32 elsewhere; see cyclegan_lib.precision.
AMP_MODES = ("auto", "bf16", "fp16", "off")

# How big a run is.  "auto" is resolved by resolve_profile().
PROFILES: dict[str, dict[str, Any]] = {
    # Seconds on a laptop CPU: for tests and CI.  Shows nothing but that the code runs.
    "smoke": dict(image_size=32, ngf=8, ndf=8, n_epochs=1, n_epochs_decay=1, epoch_size=4,
                  max_images=12, device="cpu", log_every=2, sample_every=4, save_every=4),
    # Real, visible translation on a laptop CPU: 64 px buys the most iterations for the
    # time, and iterations matter most.
    "cpu": dict(image_size=64, ngf=32, ndf=32, n_epochs=12, n_epochs_decay=12, epoch_size=100,
                device="cpu", log_every=25, sample_every=200, save_every=200),
    # The compared models of pretrained/: 3,000 steps (15 + 15 epochs of 100), checkpoints
    # every 500 steps, and an exponential moving average of the generators' weights (decay
    # 0.999, about the last 1,000 steps) that steadies the published model.
    "book": dict(image_size=64, ngf=32, ndf=32, n_epochs=15, n_epochs_decay=15, epoch_size=100,
                 device="cpu", ema_decay=0.999, log_every=25, sample_every=500,
                 save_every=500, keep_checkpoints=6),
    # The shipped stabilised model: the book profile trained six times as long (90 + 90
    # epochs of 100, 18,000 steps).
    "long": dict(image_size=64, ngf=32, ndf=32, n_epochs=90, n_epochs_decay=90, epoch_size=100,
                 device="cpu", ema_decay=0.999, log_every=25, sample_every=500,
                 save_every=500, keep_checkpoints=6),
    # The single-factor stabilisation ablation (ABLATIONS, scripts/run_ablation.sh): ten short
    # runs at the same budget, 400 steps (2 + 2 epochs of 100), one checkpoint at the end.
    "ablation": dict(image_size=64, ngf=32, ndf=32, n_epochs=2, n_epochs_decay=2, epoch_size=100,
                     device="cpu", log_every=25, sample_every=400, save_every=400,
                     keep_checkpoints=1),
    # The paper's settings: 256 px, ngf=ndf=64, batch 1, 100 + 100 epochs.  A GPU's work.
    # Under torchrun with W processes the effective batch is W x batch_size and an epoch is
    # still one pass over the data (3,400 / W steps per rank), so the 100 + 100 epochs and the
    # lr schedule (counted in epochs) are unchanged; the base lr is kept at 2e-4, not re-tuned.
    "full": dict(image_size=256, ngf=64, ndf=64, n_epochs=100, n_epochs_decay=100,
                 epoch_size=None, device="auto", log_every=100, sample_every=2000,
                 save_every=5000),
    # About an hour per experiment on a free Colab T4 (estimate_t4_minutes): the paper's
    # networks (ngf = ndf = 64) at 128 px, 15 + 15 epochs of 1,000 steps (about 9 passes
    # over the 3,400 images), the generators' EMA as in `book`; a checkpoint every 2,500
    # steps bounds what a Colab disconnect costs once the run lives on Drive.
    "colab": dict(image_size=128, ngf=64, ndf=64, n_epochs=15, n_epochs_decay=15,
                  epoch_size=1000, device="auto", ema_decay=0.999, log_every=100,
                  sample_every=2500, save_every=2500),
}

# -- the colab profile's time, estimated from FLOPs -------------------------------------------
# GFLOP per iteration at 128 px, ngf = ndf = 64 (benchmarks/train_step.py counts it), an
# assumed effective T4 rate and per-iteration overhead; README, "How the colab profile was
# sized", says why these values.  benchmarks/gpu_check.py measures the real figure.
GFLOP_128PX_NGF64 = 468.8
T4_EFFECTIVE_TFLOPS = 8.0
T4_OVERHEAD_S = 0.030


def estimate_t4_minutes(profile: str, n_blocks: int = 9) -> float:
    """Estimated minutes of one experiment of ``profile`` on a Colab T4 in fp16 (see above).

    Counts a full epoch as 3,400 steps (selfie2anime) where the profile leaves
    ``epoch_size`` unset; the residual blocks are scaled as a share of the 9-block count.
    """
    values = {**dataclasses.asdict(TrainConfig()), **PROFILES[profile]}
    gflop = GFLOP_128PX_NGF64 * (values["image_size"] / 128) ** 2 * (values["ngf"] / 64) ** 2
    # About 60% of a 9-block generator's FLOPs are its residual blocks; the discriminators'
    # share is small.  Generators are ~85% of the iteration.
    gflop *= 1 - 0.85 * 0.6 * (1 - n_blocks / 9)
    steps = (values["n_epochs"] + values["n_epochs_decay"]) * (values["epoch_size"] or 3400)
    seconds = steps * (gflop / (T4_EFFECTIVE_TFLOPS * 1e3) + T4_OVERHEAD_S)
    return seconds / 60

# Presets that a long profile keeps short: {profile: {preset: shorter profile}}.  The naive
# model cannot learn (its ReLU output never reaches the negative half of the image range),
# so training it five times longer only repeats its collapse.
SHORT_RUNS: dict[str, dict[str, str]] = {"book": {"naive": "cpu"}}

PROFILE_HELP: dict[str, str] = {
    "smoke": "32 px, ngf 8, 8 steps on 12 images: seconds, for tests and CI",
    "cpu": "64 px, ngf 32, 2,400 steps: the quick run a reader repeats on a laptop",
    "book": "64 px, ngf 32, 3,000 steps, EMA generators: the compared models of pretrained/",
    "long": "the book profile for 18,000 steps: the shipped stabilised model "
            "(pretrained/stabilized)",
    "ablation": "64 px, ngf 32, 400 steps, one checkpoint: the single-factor stabilisation ablation",
    "full": "paper: 256 px, ngf 64, 200 epochs of 3,400 steps (GPU; a T4 would need about "
            "2 days per experiment)",
    "colab": "128 px, ngf 64, 30,000 steps, EMA generators: about {t4} min per 9-block "
             "experiment on a free Colab T4 in fp16 (estimated from FLOPs, see config.py)",
    "auto": "on CUDA: colab on GPUs under 40 GB, full on bigger ones; else cpu",
}

# "auto" picks `full` only on GPUs with at least this much memory (A100 40 GB and up).
BIG_GPU_GIB = 39.0


def resolve_profile(profile: str) -> str:
    """Map ``auto`` to a profile for this machine: ``cpu`` without CUDA; on CUDA ``colab`` (about
    an hour per experiment on a T4) on GPUs under :data:`BIG_GPU_GIB` of memory, ``full`` (the
    paper, days) on bigger ones.  Ask for ``full`` by name to train the paper's runs anywhere."""
    if profile == "auto":
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        gib = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
        return "full" if gib >= BIG_GPU_GIB else "colab"
    return profile


def settings_differ(saved: Mapping[str, Any], cfg: TrainConfig,
                    ignore: frozenset[str] = frozenset()) -> list[str]:
    """The experiment settings where a saved config differs from ``cfg`` (bookkeeping in
    :data:`RESUMABLE` and ``ignore`` aside; an option the saved config predates counts as its
    default)."""
    defaults = TrainConfig().to_dict()
    return [k for k, v in cfg.to_dict().items()
            if k not in RESUMABLE | ignore and saved.get(k, defaults[k]) != v]


def config_with(preset: str, profile: str, overrides: Mapping[str, Any]) -> TrainConfig:
    """:func:`make_config` where a ``None`` override clears the field (``--set KEY=none``)."""
    cfg = make_config(preset, profile, **{k: v for k, v in overrides.items() if v is not None})
    cleared = {k: None for k, v in overrides.items() if v is None}
    return dataclasses.replace(cfg, **cleared).validate() if cleared else cfg


def make_config(preset: str = "stabilized", profile: str = "cpu", **overrides: Any) -> TrainConfig:
    """Build and validate the config for ``preset`` at ``profile``, then apply overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    profile = resolve_profile(profile)
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r} (choose from {', '.join([*PROFILES, 'auto'])})")
    values: dict[str, Any] = dict(preset=preset, profile=profile)
    values.update(PROFILES[profile])
    values.update(PRESETS[preset])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown option {key!r}")
        if value is not None:
            values[key] = value
    # Patch sizes are in pixels, as in the paper; a preset's patch never exceeds the image.
    # Clamped after the overrides, so e.g. naive at image_size=128 keeps its 70 px patches.
    if values.get("d_patch") is not None and overrides.get("d_patch") is None \
            and isinstance(values["d_patch"], int) and isinstance(values["image_size"], int):
        values["d_patch"] = min(values["d_patch"], values["image_size"])
    return TrainConfig(**values).validate()


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (the CLI's ``--set``) as a field name and a value of the field's type."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip().replace("-", "_"), raw.strip()
    kinds = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    if not sep or not key:
        raise ConfigError(f"invalid --set {text!r}: expected KEY=VALUE")
    if key in ("preset", "profile"):
        raise ConfigError(f"invalid --set {text!r}: use --{key}")
    if key not in kinds:
        raise ConfigError(f"invalid --set {text!r}: unknown option {key!r}")
    kind = kinds[key]
    if raw.lower() == "none" and "None" in kind:
        return key, None
    base = kind.split("|")[0].strip()
    try:
        if base == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return key, raw.lower() in ("true", "1", "yes")
        if base == "int":
            return key, int(raw)
        if base == "float":
            return key, float(raw)
    except ValueError:
        raise ConfigError(f"invalid --set {text!r}: {key} expects {kind}") from None
    return key, raw


def describe_presets() -> str:
    """A human-readable table of presets and profiles (the ``presets`` command)."""
    lines = ["Presets (which experiment):"]
    for name, values in PRESETS.items():
        settings = ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        lines.append(f"  {name:<11} {PRESET_HELP[name]}\n  {'':<11} [{settings}]")
    lines.append("Profiles (how big):")
    for name, values in PROFILES.items():
        settings = ", ".join(f"{k}={v}" for k, v in values.items())
        text = PROFILE_HELP[name].format(t4=round(estimate_t4_minutes(name)))
        lines.append(f"  {name:<11} {text}\n  {'':<11} [{settings}]")
    lines.append(f"  {'auto':<11} {PROFILE_HELP['auto']}")
    return "\n".join(lines)
