"""The built-in metrics (scikit-learn's definitions), with fast scorers for ensemble selection."""

from __future__ import annotations

import numpy as np

from runner.metrics import Metric, register_metric


def _skm():
    from sklearn import metrics  # imported on first score: the spec check needs none of it

    return metrics


def _mae(t: np.ndarray, p: np.ndarray, *_: object) -> float:
    return float(np.abs(np.asarray(p, float) - np.asarray(t, float)).mean())


def _rmse(t: np.ndarray, p: np.ndarray, *_: object) -> float:
    return float(np.sqrt(((np.asarray(p, float) - np.asarray(t, float)) ** 2).mean()))


def _r2(t: np.ndarray, p: np.ndarray, *_: object) -> float:
    t, p = np.asarray(t, float), np.asarray(p, float)
    total = ((t - t.mean()) ** 2).sum()
    return float(1 - ((p - t) ** 2).sum() / total) if len(t) > 1 and total else float("nan")


def _confusion(truth: np.ndarray, values: np.ndarray, n: int):
    pred = values.argmax(axis=1)
    cm = np.bincount(truth * n + pred, minlength=n**2).reshape(n, n)
    tp, actual, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    return tp, actual, predicted, (actual + predicted) > 0  # sklearn averages labels seen


def _fast_f1(truth: np.ndarray, values: np.ndarray, n: int) -> float:
    tp, actual, predicted, present = _confusion(truth, values, n)
    denom = actual + predicted
    return float(np.divide(2 * tp, denom, out=np.zeros(n), where=denom > 0)[present].mean())


def _fast_recall(truth: np.ndarray, values: np.ndarray, n: int) -> float:
    tp, actual, _, present = _confusion(truth, values, n)
    return float(np.divide(tp, actual, out=np.zeros(n), where=actual > 0)[present].mean())


def _roc_auc(y_true: np.ndarray, _pred: np.ndarray, proba: np.ndarray, classes: list) -> float:
    # AUC is undefined when a fold holds a single class; NaN says so instead of failing.
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(_skm().roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1]))
    if len(present) < len(classes):
        return float("nan")
    return float(_skm().roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))


register_metric(Metric(
    "accuracy", "classification", True,
    lambda t, p, *_: float(_skm().accuracy_score(t, p)),
    fast=lambda truth, values, n: float((values.argmax(axis=1) == truth).mean()),
))  # fmt: skip
register_metric(Metric(
    "f1_macro", "classification", True,
    lambda t, p, *_: float(_skm().f1_score(t, p, average="macro", zero_division=0)),
    fast=_fast_f1,
))  # fmt: skip
register_metric(Metric(
    "recall_macro", "classification", True,
    lambda t, p, *_: float(_skm().recall_score(t, p, average="macro", zero_division=0)),
    fast=_fast_recall,
))  # fmt: skip
register_metric(Metric("roc_auc_ovr", "classification", True, _roc_auc, needs_proba=True))
register_metric(Metric(
    "log_loss", "classification", False,
    lambda t, _p, proba, classes: float(_skm().log_loss(t, proba, labels=classes)),
    needs_proba=True,
))  # fmt: skip
register_metric(Metric(
    "mae", "regression", False, lambda t, p, *_: float(_skm().mean_absolute_error(t, p)),
    fast=lambda t, v, _n: _mae(t, v),
))  # fmt: skip
register_metric(Metric(
    "rmse", "regression", False, lambda t, p, *_: float(np.sqrt(_skm().mean_squared_error(t, p))),
    fast=lambda t, v, _n: _rmse(t, v),
))  # fmt: skip
register_metric(Metric(
    "r2", "regression", True,
    lambda t, p, *_: float(_skm().r2_score(t, p)) if len(t) > 1 else float("nan"),
    fast=lambda t, v, _n: _r2(t, v),
))  # fmt: skip
