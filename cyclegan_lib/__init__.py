"""cyclegan_lib: the library behind the book *CycleGAN for human-to-anime faces*.

The flow: ``config`` (preset x profile) -> ``data`` (decoded-once tensors) ->
``trainer`` (run directory with checkpoints and history) -> ``evaluate`` /
``viz`` / ``widgets`` -> chapters.
"""
from .config import PRESETS, PROFILES, ConfigError, TrainConfig, make_config
from .models import PatchDiscriminator, ResnetGenerator, count_parameters

__version__ = "0.1.0"
__all__ = ["PRESETS", "PROFILES", "ConfigError", "TrainConfig", "make_config",
           "PatchDiscriminator", "ResnetGenerator", "count_parameters", "__version__"]
