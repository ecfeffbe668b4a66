"""Every ``CYCLEGAN_*`` environment variable and every default path, in one place.

A function argument always wins over the environment, which wins over the default.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

__all__ = ["env_path", "find_repo_root", "data_dir", "runs_dir", "faces_dir", "anime_cascade",
           "anime_cascade_candidates", "inception_weights_setting", "cache_dir", "forced_profile",
           "data_url", "set_default"]


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def find_repo_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``_toc.yml``, else cwd."""
    here = Path(start or Path.cwd()).resolve()
    return next((f for f in (here, *here.parents) if (f / "_toc.yml").is_file()), here)


def data_dir(given: str | Path | None = None, search: bool = False) -> Path:
    """``given``, else ``$CYCLEGAN_DATA``; with ``search``, also ``<repo>/../shared/data/selfie2anime``
    and Colab's ``/content/selfie2anime``.  No answer is a :class:`DataError`."""
    found = Path(given) if given else env_path("CYCLEGAN_DATA")
    if found is None and search:
        shared = find_repo_root().parent / "shared" / "data" / "selfie2anime"
        found = next((c for c in (shared, Path("/content/selfie2anime")) if c.is_dir()), None)
    if found is None:
        raise DataError("no data folder given: pass --data DIR or set CYCLEGAN_DATA "
                        "(e.g. ../shared/data/selfie2anime)")
    return found


def runs_dir(given: str | Path | None = None) -> Path:
    """``given``, else ``$CYCLEGAN_RUNS``, else ``<repo>/runs``."""
    return Path(given) if given else env_path("CYCLEGAN_RUNS") or find_repo_root() / "runs"


def faces_dir(data: Path) -> Path:
    """``$CYCLEGAN_FACES``, else ``faces/`` next to the data folder."""
    return env_path("CYCLEGAN_FACES") or data.parent / "faces"


def anime_cascade_candidates() -> list[Path]:
    """Where the anime-face cascade is looked for when nothing names it."""
    return [find_repo_root().parent / "shared" / "models" / "lbpcascade_animeface.xml",
            Path.home() / ".cache" / "cyclegan_lib" / "lbpcascade_animeface.xml"]


def anime_cascade(given: str | Path | None = None, search: bool = False) -> Path:
    """The anime-face cascade: ``given``, ``$CYCLEGAN_ANIME_CASCADE`` or (``search``) a known
    place; ``FileNotFoundError`` naming the setting otherwise."""
    found = Path(given) if given else env_path("CYCLEGAN_ANIME_CASCADE")
    if found is None and search:
        found = next((c for c in anime_cascade_candidates() if c.is_file()), None)
    if found is None:
        raise FileNotFoundError("anime-face cascade not configured: set CYCLEGAN_ANIME_CASCADE to "
                                "lbpcascade_animeface.xml (e.g. ../shared/models/) or pass its path")
    if not found.is_file():
        raise FileNotFoundError(f"anime-face cascade not found: {found}")
    return found


def inception_weights_setting(given: str | Path | None = None) -> str:
    """``given`` or ``$CYCLEGAN_INCEPTION_WEIGHTS``: a path, ``off``, or "" (look in the cache)."""
    return str(given) if given else os.environ.get("CYCLEGAN_INCEPTION_WEIGHTS", "")


def cache_dir() -> Path | None:
    """The decode cache: ``$CYCLEGAN_CACHE`` or ``~/.cache/cyclegan_lib``; ``off`` disables it."""
    value = os.environ.get("CYCLEGAN_CACHE")
    if value == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "cyclegan_lib"


def forced_profile() -> str | None:
    """``$CYCLEGAN_PROFILE``: a profile forced on every chapter (CI sets ``smoke``)."""
    return os.environ.get("CYCLEGAN_PROFILE") or None


def data_url() -> str | None:
    """``$CYCLEGAN_DATA_URL``: an archive of selfie2anime for :func:`~.book.colab_setup`."""
    return os.environ.get("CYCLEGAN_DATA_URL") or None


def set_default(name: str, value: str | Path) -> None:
    """Export a path found at set-up (Colab) for the rest of the session, unless set."""
    os.environ.setdefault(name, str(value))


def export(name: str, value: str | Path) -> None:
    """Export a setting chosen at set-up (Colab) for the rest of the session, replacing it."""
    os.environ[name] = str(value)
