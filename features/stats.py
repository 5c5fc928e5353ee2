"""Summary statistics that turn per-frame features into fixed-length columns.

All statistics are computed per row of a ``(n_rows, n_frames)`` array by numpy. ``skew`` and
``kurtosis`` are the biased moment estimators (``scipy.stats.skew/kurtosis`` defaults,
kurtosis in Fisher's "excess" form); for a constant row both are defined as 0. ``p10`` and
``p90`` are linear-interpolated percentiles, ``median`` is the 50th. ``std`` and ``var`` are
the population (biased) estimators, as numpy's defaults and GTZAN's ``*_var`` columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.config import STATS
from features.errors import format_error

__all__ = ["STATS", "summarise"]

_PERCENTILES = {"p10": 10.0, "median": 50.0, "p90": 90.0}
# Variance below this (relative to the squared mean magnitude) counts as a constant row.
_TINY = 1e-12


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Biased skewness and excess kurtosis per row; 0 for constant rows."""
    dev = x - x.mean(axis=1, keepdims=True)
    m2 = np.mean(dev**2, axis=1)
    flat = m2 <= _TINY * (1.0 + np.mean(x**2, axis=1))
    safe = np.where(flat, 1.0, m2)
    skew = np.mean(dev**3, axis=1) / safe**1.5
    kurt = np.mean(dev**4, axis=1) / safe**2 - 3.0
    return np.where(flat, 0.0, skew), np.where(flat, 0.0, kurt)


def summarise(frames: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """Summarise each row of ``frames`` by ``stats``.

    Args:
        frames: ``(n_rows, n_frames)`` values, ``n_frames >= 1``.
        stats: names from :data:`STATS`, in output order.

    Returns:
        float64 ``(n_rows, len(stats))``.
    """
    x = np.asarray(frames, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    wanted_pct = [s for s in stats if s in _PERCENTILES]
    if wanted_pct:
        values = np.percentile(x, [_PERCENTILES[s] for s in wanted_pct], axis=1)
        out.update(zip(wanted_pct, values, strict=True))
    if "skew" in stats or "kurtosis" in stats:
        out["skew"], out["kurtosis"] = _moments(x)
    simple = {"mean": np.mean, "std": np.std, "var": np.var, "min": np.min, "max": np.max}
    for name in stats:
        if name in simple:
            out[name] = simple[name](x, axis=1)
        elif name not in out:
            raise ValueError(format_error("features.stats", name, one_of=STATS))
    return np.stack([out[name] for name in stats], axis=1)
