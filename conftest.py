"""Top-level pytest setup for the notebook tests (nbval).

``pytest`` (see ``[tool.pytest.ini_options]`` in pyproject.toml) runs every source
chapter ``notebooks/NN_*.ipynb`` top to bottom with ``--nbval-lax``.  The kernels
must run the chapters at the ``smoke`` profile and train into a temporary
folder, never into ``runs/``: this file sets, for the notebook kernels only,

* ``CYCLEGAN_PROFILE=smoke`` (the chapters' ``chapter_setup`` lets it override the
  ``profile`` parameter),
* ``CYCLEGAN_RUNS`` = a temporary folder shared by the session's notebooks (a
  model trained by one chapter is reused by the next) and removed at the end,
* ``CYCLEGAN_CACHE`` = a temporary decode cache, so tests write nothing in ``~``.

The variables are put in ``os.environ`` only while an nbval item is set up (that
is when nbval starts the notebook's kernel, which copies the environment), so
unit tests in the same session see the environment unchanged.

The published chapters in ``book/chapters`` are executed outputs, not sources:
they are never collected here (``tests/test_book.py`` checks them instead).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent

# Only the sources are run as notebooks; the published chapters and build outputs never.
collect_ignore_glob = ["book/*", "_build/*", "runs/*", ".venv/*"]

_TMP: dict[str, Path] = {}


def _notebook_env() -> dict[str, str]:
    if "root" not in _TMP:
        _TMP["root"] = Path(tempfile.mkdtemp(prefix="cyclegan-nbval-"))
    root = _TMP["root"]
    return {
        "CYCLEGAN_PROFILE": "smoke",
        "CYCLEGAN_RUNS": str(root / "runs"),
        "CYCLEGAN_CACHE": str(root / "cache"),
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Start nbval kernels with the notebook environment, and only them."""
    if type(item).__name__ != "IPyNbCell":
        yield
        return
    saved = {key: os.environ.get(key) for key in _notebook_env()}
    os.environ.update(_notebook_env())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_report_header(config: pytest.Config) -> str | None:
    opt = config.option
    if getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False):
        return ("notebooks: nbval at CYCLEGAN_PROFILE=smoke, "
                "CYCLEGAN_RUNS in a temporary folder (removed at the end)")
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    root = _TMP.pop("root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
