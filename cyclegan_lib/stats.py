"""Statistics for the book's comparisons: bootstrap intervals and the rule that calls a
difference only when its interval excludes zero."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "resample_ci", "pairs_mean", "paired_difference",
           "unpaired_difference", "verdict", "format_effect", "format_interval"]


def _quantiles(boots: Sequence[float]) -> tuple[float, float]:
    lo, hi = np.nanquantile(np.asarray(boots, dtype=float), [0.025, 0.975])
    return float(lo), float(hi)


def bootstrap_ci(values: Any, statistic: Callable[..., float] | None = None, n: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)``: a statistic and its 95% percentile bootstrap interval.

    ``values`` is one array of per-image numbers, or a tuple of arrays of equal
    length (paired: the same images, resampled together) passed to
    ``statistic(*arrays)``.  The default statistic is the mean (of the first array).
    """
    arrays = [np.asarray(v, dtype=float) for v in
              (values if isinstance(values, tuple) else (values,))]
    m = len(arrays[0])
    if m == 0 or any(len(a) != m for a in arrays):
        raise ValueError("bootstrap_ci: empty input or arrays of different lengths")
    stat = statistic or (lambda *a: float(np.mean(a[0])))
    return (float(stat(*arrays)),
            *resample_ci(lambda idx: stat(*(a[idx] for a in arrays)), m, n, seed))


def resample_ci(statistic: Callable[[np.ndarray], float], m: int, n: int = 2000, seed: int = 0
                ) -> tuple[float, float]:
    """95% percentile interval of ``statistic(idx)`` over ``n`` resamplings of ``m`` indices."""
    rng = np.random.default_rng(seed)
    return _quantiles([statistic(rng.integers(0, m, m)) for _ in range(n)])


def pairs_mean(d: np.ndarray, idx: np.ndarray) -> float:
    """Mean of ``d[i, j]`` over pairs of different items of the resample ``idx`` (NaN if none)."""
    sub, other = d[np.ix_(idx, idx)], idx[:, None] != idx[None, :]
    return float(sub[other].mean()) if other.any() else float("nan")


def paired_difference(a: Any, b: Any, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` over the SAME images (e.g. two models' detector hits on one test
    set), with a paired bootstrap interval: images are resampled once for both."""
    return bootstrap_ci((a, b), lambda x, y: float(np.mean(x) - np.mean(y)), n, seed)


def unpaired_difference(a: Any, b: Any, n: int = 2000, seed: int = 0
                        ) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` for two different sets of images (angled vs frontal photos), each
    resampled on its own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        raise ValueError("unpaired_difference: empty input")
    rng = np.random.default_rng(seed)
    boots = [np.mean(a[rng.integers(0, len(a), len(a))])
             - np.mean(b[rng.integers(0, len(b), len(b))]) for _ in range(n)]
    return (float(np.mean(a) - np.mean(b)), *_quantiles(boots))


def verdict(low: float, high: float) -> str:
    """The rule of the book: a difference is called (``higher``, ``lower``) only when its
    interval excludes zero; for a ratio, pass ``log(low), log(high)``."""
    if low is None or high is None or np.isnan(low) or np.isnan(high):
        return "not measured"
    return "higher" if low > 0 else "lower" if high < 0 else "no clear difference"


def format_effect(effect: float | None, low: float | None = None, high: float | None = None,
                  digits: int = 2) -> str:
    """``"+0.12 [0.05, 0.20]"``: an effect and its 95% interval, as the tables show it."""
    if effect is None or (isinstance(effect, float) and np.isnan(effect)):
        return "n/a"
    text = f"{effect:+.{digits}f}"
    if low is not None and high is not None:
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def format_interval(d: Any, digits: int = 2, signed: bool = True, key: str = "effect",
                    call: bool = False) -> str:
    """:func:`format_effect` of a ``{key, "low", "high"}`` dict (a difference, or a ``ratio``);
    ``signed=False`` drops the plus sign of a level, ``call`` appends ``(d["call"])``."""
    text = format_effect(d[key], d["low"], d["high"], digits)
    text = text if signed else text.lstrip("+")
    return f"{text} ({d['call']})" if call else text
