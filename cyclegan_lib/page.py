"""What a chapter page shows besides figures: the library's own code, glued numbers, notes.

:func:`show_source` displays the live source of a library object, highlighted with inline
styles so it looks the same in Jupyter, Colab and the HTML book; :func:`glue` stores a
run-dependent number for the prose (MyST-NB), so sentences stay true at every profile.
"""
from __future__ import annotations

import html
import importlib
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping

from IPython import get_ipython
from IPython.display import display
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

__all__ = ["resolve", "source_of", "grep_source", "source_html", "source_output", "show_source",
           "shown_objects", "glue", "note", "display_html", "missing_metrics_note"]

_PACKAGE_ROOT = Path(__file__).resolve().parent


def resolve(obj: Any) -> Any:
    """The object a dotted name (``"cyclegan_lib.trainer.Trainer.train_step"``) names."""
    if not isinstance(obj, str):
        return obj
    parts = obj.split(".")
    for i in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            target = getattr(target, attr)
        return target
    raise ImportError(f"cannot resolve {obj!r}")


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, property):
        return obj.fget
    return inspect.unwrap(obj) if callable(obj) else obj


def source_of(obj: Any) -> tuple[str, str, int, int]:
    """``(code, file, first_line, last_line)`` of a library object, read from the live module.

    ``file`` is relative to the repository: no machine path appears on a page.
    """
    target = _unwrap(resolve(obj))
    lines, first = inspect.getsourcelines(target)
    path = Path(inspect.getsourcefile(target) or "?").resolve()
    try:
        shown = path.relative_to(_PACKAGE_ROOT.parent).as_posix()
    except ValueError:
        shown = path.name
    return textwrap.dedent("".join(lines)).rstrip() + "\n", shown, first, first + len(lines) - 1


def _shown(obj: Any, grep: str | None) -> tuple[str, str]:
    """The code to show (all of it, or the lines with ``grep``) and its caption."""
    code, file, first, last = source_of(obj)
    target = resolve(obj)
    name = getattr(target, "__qualname__", None) or getattr(getattr(target, "fget", None),
                                                               "__qualname__", str(obj))
    module = getattr(_unwrap(target), "__module__", "")
    caption = f"{module}.{name} ({file}, lines {first}-{last})"
    if grep is None:
        return code, caption
    return grep_source(obj, grep), f"{caption}: the lines that contain {grep}"


def grep_source(obj: Any, text: str) -> str:
    """Only the lines of ``obj``'s source that contain ``text``, each with its line number
    (e.g. every ``random_patches`` call of a long method).
    """
    code, _, first, _ = source_of(obj)
    kept = [(first + i, line) for i, line in enumerate(code.splitlines()) if text in line]
    if not kept:
        raise ValueError(f"{text!r} does not occur in the source of {obj!r}")
    indent = min(len(line) - len(line.lstrip()) for _, line in kept)
    out, previous = [], None
    for number, line in kept:
        if previous is not None and number != previous + 1:
            out.append("...")
        out.append(f"{line[indent:]}  # line {number}")
        previous = number
    return "\n".join(out) + "\n"


def source_html(obj: Any, grep: str | None = None) -> str:
    """The highlighted source of ``obj`` (``grep``: only the lines containing a text) as a
    self-contained HTML block with a caption."""
    code, caption = _shown(obj, grep)
    body = highlight(code, PythonLexer(), HtmlFormatter(noclasses=True, style="friendly",
                                                        nobackground=True))
    caption = html.escape(caption)
    return ('<div class="library-source" style="border-left:3px solid #6a9fb5;'
            'padding:0 0 0 0.6em;margin:0.4em 0;overflow-x:auto;font-size:0.85em">'
            f'<div style="font-family:sans-serif;color:#555;font-size:0.9em">{caption}</div>'
            f'{body}</div>')


def display_html(markup: str, plain: str, markdown: str | None = None) -> None:
    """Display HTML (with its Markdown source, when given) and a plain-text fallback, which is
    printed outside IPython."""
    if get_ipython() is None:
        print(plain)
        return
    display({"text/html": markup, "text/plain": plain,
             **({"text/markdown": markdown} if markdown is not None else {})}, raw=True)


def source_output(*objs: Any, grep: str | None = None) -> tuple[str, str]:
    """What :func:`show_source` displays: the HTML blocks and their plain-text twin."""
    plain = [f"# {caption}\n{code}" for code, caption in (_shown(obj, grep) for obj in objs)]
    return "".join(source_html(obj, grep) for obj in objs), "\n".join(plain)


def show_source(*objs: Any, grep: str | None = None) -> None:
    """Show the live source of library objects, highlighted (``grep``: only matching lines)."""
    display_html(*source_output(*objs, grep=grep))


_CAPTION = re.compile(r"^# (cyclegan_lib\.[\w.]+) \(\S+, lines \d+-\d+\)"
                      r"(?:: the lines that contain (.*))?$", re.M)


def shown_objects(plain: str) -> tuple[list[str], str | None]:
    """The dotted names (and ``grep``) that a :func:`show_source` output was made from, read
    back from its plain text: an executed chapter freezes the source it showed, and
    ``scripts/build_book.py --refresh-sources`` renders it again from the live library."""
    found = _CAPTION.findall(plain)
    if not found or len({g for _, g in found}) != 1:
        raise ValueError(f"not a show_source output: {plain[:80]!r}")
    return [name for name, _ in found], found[0][1] or None


def glue(name: str, value: Any, fmt: str | Callable[[Any], str] | None = None) -> None:
    """Store ``value`` (formatted with ``fmt``; None as "not measured") for ``{glue:text}`name```.

    Uses MyST-NB's ``glue`` when installed (the book build).  Returns nothing, so a cell that
    ends with a glue shows no stray raw number on the page.
    """
    if value is None:
        shown: Any = "not measured"  # e.g. a detector rate without the anime cascade
    elif fmt is None:
        shown = value
    elif callable(fmt):
        shown = fmt(value)
    else:
        shown = format(value, fmt)
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - Colab without the book extras
        return
    try:
        _glue(name, shown, display=False)
    except Exception:  # noqa: BLE001 - outside a kernel glue has nowhere to write
        pass


def note(text: str, kind: str = "note") -> None:
    """A short admonition-like box (HTML in the book, plain text elsewhere)."""
    colours = {"note": "#e7f2fa", "warning": "#fff4e5"}
    markup = (f'<div style="background:{colours.get(kind, "#eee")};padding:0.5em 0.8em;'
              f'border-radius:4px;margin:0.5em 0"><b>{kind.capitalize()}.</b> '
              f"{html.escape(text)}</div>")
    display_html(markup, f"{kind.upper()}: {text}")


def missing_metrics_note(metrics: Mapping[str, Mapping[str, Any]]) -> str | None:
    """One note saying which metrics are missing and why (KID/FID without Inception weights);
    returns its text, or None when nothing is missing.
    """
    reasons = sorted({str(m.get("kid_skipped")) for m in metrics.values() if m.get("kid_skipped")})
    if not reasons:
        return None
    text = ("KID and FID are not in the tables of this book: they need the Inception network's "
            "weights, which were not available when it was executed (" + "; ".join(reasons)
            + "). The detector rates and the cycle and identity errors are computed without them.")
    note(text)
    return text
