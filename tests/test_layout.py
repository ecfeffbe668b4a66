"""The library's shape (issue 16): small modules, public interfaces, one home per setting."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "cyclegan_lib"
MODULES = sorted(LIB.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_short_and_uses_only_public_names(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= 450
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "cyclegan_lib")):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name} imports {private} from {node.module}"
        if isinstance(node, ast.Attribute) and node.attr.startswith("_get_default"):
            raise AssertionError(f"{path.name} uses torch's private {node.attr}")


def test_environment_is_read_in_paths_only() -> None:
    readers = [p.name for p in MODULES if p.name not in ("paths.py", "distributed.py", "cli.py")
               and re.search(r"os\.environ|getenv", p.read_text())]
    assert readers == []
    mentions = [p.name for p in MODULES if p.name != "paths.py"
                and re.search(r"environ[^\n]*CYCLEGAN_", p.read_text())]
    assert mentions == []


def _colab_only(node: ast.Import | ast.ImportFrom) -> bool:
    """Packages that exist only on Colab, or only when the book is built (myst_nb), are
    imported where they are used."""
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    return all(n.split(".")[0] in ("google", "kagglehub", "myst_nb") for n in names)


def test_imports_sit_at_module_top_outside_the_cli() -> None:
    inside = []
    for path in MODULES:
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                inside += [f"{path.name}:{n.lineno}" for n in ast.walk(node)
                           if isinstance(n, (ast.Import, ast.ImportFrom))
                           and not _colab_only(n)]
    # config.resolve_profile: config stays torch-free so the CLI checks options at once;
    # __init__.__getattr__: the package's lazy names, for the same reason.
    assert [s.split(":")[0] for s in inside] == ["__init__.py", "config.py"], inside
