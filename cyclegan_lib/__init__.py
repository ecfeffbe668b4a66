"""cyclegan_lib: the library behind the book *CycleGAN for human-to-anime faces* (DESIGN.md)."""
from .config import PRESETS, PROFILES, ConfigError, TrainConfig, make_config

_LAZY = {"PatchDiscriminator", "ResnetGenerator", "count_parameters"}


def __getattr__(name: str):
    """The networks load on first use: ``import cyclegan_lib.cli`` stays free of torch."""
    if name in _LAZY:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["PRESETS", "PROFILES", "ConfigError", "TrainConfig", "make_config",
           "PatchDiscriminator", "ResnetGenerator", "count_parameters", "__version__"]
