"""Top-level pytest setup for the notebook tests (nbval).

``pytest`` (see ``[tool.pytest.ini_options]`` in pyproject.toml) runs every source
chapter ``notebooks/NN_*.md`` top to bottom with ``--nbval-lax``.  The chapters are
MyST Markdown notebooks (jupytext); nbval collects only ``.ipynb`` files, so
:func:`pytest_collect_file` below hands nbval each chapter read through jupytext
(:class:`MystNotebook`): the cells nbval runs are exactly the cells of the source.  The kernels
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

try:  # the notebook tests need nbval and jupytext (test extras); unit tests do not
    from nbval.plugin import IPyNbFile
except ImportError:  # pragma: no cover
    IPyNbFile = None

REPO = Path(__file__).resolve().parent

# Only the sources are run as notebooks; the published chapters and build outputs never.
collect_ignore_glob = ["book/*", "_build/*", "runs/*", ".venv/*"]

_TMP: dict[str, Path] = {}


if IPyNbFile is not None:
    class MystNotebook(IPyNbFile):
        """nbval's notebook collector for a MyST Markdown chapter, read with jupytext."""

        def collect(self):
            from unittest import mock

            import jupytext
            import nbval.plugin

            source = self.path

            def read(*_args, **_kwargs):
                return jupytext.read(source)

            with mock.patch.object(nbval.plugin.nbformat, "read", read):
                yield from super().collect()


def _is_chapter_source(file_path: Path) -> bool:
    return (file_path.suffix == ".md" and file_path.parent.name == "notebooks"
            and file_path.name[:2].isdigit())


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect ``notebooks/NN_*.md`` as notebooks when nbval is on (``--nbval-lax``)."""
    opt = parent.config.option
    if (IPyNbFile is not None and (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False))
            and _is_chapter_source(Path(file_path))):
        return MystNotebook.from_parent(parent, path=Path(file_path))
    return None


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
