"""Markdown tables: one formatting rule for every table of the book and the CLI.

Markdown rather than a DataFrame: it renders the same in Jupyter, in the HTML book
and on GitHub.  A value that was not measured is shown as :data:`MISSING`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["MISSING", "lookup", "fmt", "fixed", "markdown_table"]

MISSING = "n/a"


def lookup(data: Any, path: Sequence[str]) -> Any:
    """``data[path[0]][path[1]]...``, or None where a key is missing or None."""
    for key in path:
        if not isinstance(data, Mapping) or data.get(key) is None:
            return None
        data = data[key]
    return data


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)


def fmt(value: Any) -> str:
    """A cell: thousands separators, about three significant decimals, yes/no, ``n/a``."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    return str(value).replace("|", "\\|")


def fixed(value: Any, digits: int = 3, suffix: str = "") -> str:
    """A number with a fixed number of decimals (columns that line up), or ``n/a``."""
    return MISSING if _missing(value) else f"{value:.{digits}f}{suffix}"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   headers: Mapping[str, str] | None = None) -> str:
    """Rows of dicts as a Markdown table (numbers through :func:`fmt`)."""
    if not rows:
        return "*(no rows)*"
    columns = list(columns or rows[0].keys())
    headers = dict(headers or {})
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
