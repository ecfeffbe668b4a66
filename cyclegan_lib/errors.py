"""The user-facing errors: each says in one line what to fix, and the CLI prints it so."""
from __future__ import annotations

__all__ = ["UserError", "ConfigError", "DataError", "CheckpointError", "TrainingError"]


class UserError(Exception):
    """A mistake or a refusal the user can act on; ``cyclegan-anime`` prints it as one line."""


class ConfigError(UserError, ValueError):
    """An invalid option."""


class DataError(UserError, ValueError):
    """A data folder is missing or holds no usable image."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, damaged or not safe to load."""


class TrainingError(UserError, RuntimeError):
    """Training stopped (non-finite loss, refused resume...)."""
