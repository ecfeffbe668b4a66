"""cyclegan_lib: the library behind the book *CycleGAN for human-to-anime faces*.

The flow (DESIGN.md): ``config`` -> ``data`` -> ``cyclegan`` (the model and its step),
driven by ``trainer`` into a run directory -> ``runs`` -> ``evaluate`` / ``viz`` /
``widgets`` / ``report`` -> ``book`` and the chapters.
"""
from .config import PRESETS, PROFILES, ConfigError, TrainConfig, make_config

_LAZY = {"PatchDiscriminator", "ResnetGenerator", "count_parameters"}


def __getattr__(name: str):
    """The networks are imported on first use, so ``import cyclegan_lib.cli`` stays free of
    torch and a mistyped command fails at once."""
    if name in _LAZY:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["PRESETS", "PROFILES", "ConfigError", "TrainConfig", "make_config",
           "PatchDiscriminator", "ResnetGenerator", "count_parameters", "__version__"]
