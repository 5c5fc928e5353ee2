"""features.stats.summarise against numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from features.config import STATS
from features.stats import summarise


def test_matches_numpy_and_scipy(rng: np.random.Generator) -> None:
    x = rng.gamma(2.0, size=(3, 200))
    out = summarise(x, list(STATS))
    expected = {
        "mean": x.mean(1),
        "std": x.std(1),
        "var": x.var(1),
        "min": x.min(1),
        "max": x.max(1),
        "median": np.median(x, 1),
        "skew": scipy.stats.skew(x, axis=1),
        "kurtosis": scipy.stats.kurtosis(x, axis=1),
        "p10": np.percentile(x, 10, axis=1),
        "p90": np.percentile(x, 90, axis=1),
    }
    for j, name in enumerate(STATS):
        np.testing.assert_allclose(out[:, j], expected[name], rtol=1e-10, err_msg=name)


def test_constant_rows_have_zero_shape_stats() -> None:
    out = summarise(np.full((2, 50), 3.0), ["skew", "kurtosis", "std"])
    assert np.all(out == 0.0)


def test_single_frame_and_order() -> None:
    out = summarise(np.array([[1.0], [2.0]]), ["max", "mean", "p10"])
    np.testing.assert_array_equal(out, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])


def test_unknown_stat() -> None:
    with pytest.raises(ValueError, match=r"features\.stats: 'mode' is not one of mean"):
        summarise(np.ones((1, 3)), ["mode"])
