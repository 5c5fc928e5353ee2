"""Metrics of both tasks: one :class:`Metric` record each, registered by name.

A metric is its task, its direction, whether it reads probabilities, and its scorer; an
optional fast scorer on class indices serves ensemble selection, which scores thousands of
blends. A new metric is one :func:`register_metric` call (tests/runner/test_extension_points.py
registers one from a test file and runs a study on it); no other module tests a metric's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from runner.errors import RegistryError
from runner.registry import Registry

__all__ = [
    "METRICS",
    "Metric",
    "get_metric",
    "greater_is_better",
    "metric_names",
    "register_metric",
    "score_all",
]

#: (y_true, y_pred, proba or None, classes or None) -> score.
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray | None, list | None], float]
#: (truth as class indices or numbers, probabilities or predictions, n_classes) -> score.
FastScorer = Callable[[np.ndarray, np.ndarray, int], float]


@dataclass(frozen=True)
class Metric:
    """One metric: ``task`` is ``classification`` or ``regression``; a metric that
    ``needs_proba`` is NaN where a model gives no probabilities."""

    name: str
    task: str
    greater_is_better: bool
    score: Scorer
    needs_proba: bool = False
    fast: FastScorer | None = None


METRICS: Registry[Metric] = Registry("metric", "search.metric")
get_metric = METRICS.get_record


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the registry; returns it. A name is registered once."""
    if metric.task not in ("classification", "regression"):
        raise RegistryError(f"metric '{metric.name}': task must be classification or regression")
    return METRICS.register(metric)


def metric_names(task: str) -> list[str]:
    """Every metric of ``task`` (primary and secondary), in registration order."""
    return [m.name for m in METRICS.values() if m.task == task]


def greater_is_better(metric: str) -> bool:
    return get_metric(metric).greater_is_better


def score_all(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence | None = None,
) -> dict[str, float]:
    """All metrics of ``task``; probability metrics are NaN when no probabilities exist."""
    if task == "regression":
        y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    labels = list(classes) if classes is not None else None
    out = {}
    for metric in METRICS.values():
        if metric.task != task:
            continue
        if metric.needs_proba and (proba is None or labels is None):
            out[metric.name] = float("nan")
        else:
            out[metric.name] = float(metric.score(y_true, y_pred, proba, labels))
    return out


from runner.metrics import builtin  # noqa: E402, F401  (the built-in metrics register themselves)
