"""cyclegan_lib: the library behind the book *CycleGAN for human-to-anime faces*.

The flow: ``config`` (preset x profile) -> ``data`` (decoded-once tensors) ->
``trainer`` (run directory with checkpoints and history) -> ``evaluate`` /
``viz`` / ``widgets`` -> chapters.
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
