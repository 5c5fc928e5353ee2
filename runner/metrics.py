"""Metrics of both tasks, with their directions, computed from labels and probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from runner.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS

__all__ = ["greater_is_better", "metric_names", "score_all"]


def metric_names(task: str) -> list[str]:
    """Every metric computed for ``task`` (primary and secondary), in a stable order."""
    return list(CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)


def greater_is_better(metric: str) -> bool:
    return {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}[metric]


def score_all(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence | None = None,
) -> dict[str, float]:
    """All metrics of ``task``; probability metrics are NaN when no probabilities exist."""
    if task == "regression":
        y_true = np.asarray(y_true, dtype=float)
        y_pred = np.asarray(y_pred, dtype=float)
        return {
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        }
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_macro": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "roc_auc_ovr": float("nan"),
        "log_loss": float("nan"),
    }
    if proba is not None and classes is not None:
        out["log_loss"] = float(skm.log_loss(y_true, proba, labels=list(classes)))
        out["roc_auc_ovr"] = _roc_auc(y_true, proba, list(classes))
    return out


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: list) -> float:
    # AUC is undefined when a fold holds a single class; NaN says so instead of failing.
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
    if len(present) < len(classes):
        return float("nan")
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
