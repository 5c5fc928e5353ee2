"""Matplotlib figures for trials and the final model (no MLflow calls: tracking logs them).

Figures are built on ``matplotlib.figure.Figure`` directly, not pyplot, so that a background
thread can render trial plots while the search goes on: pyplot's global state is not
thread-safe, a Figure of one's own is.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

__all__ = [
    "confusion_figure",
    "curves_figure",
    "importance_figure",
    "regression_figure",
]


def confusion_figure(
    y_true: Sequence,
    y_pred: Sequence,
    classes: Sequence,
    *,
    normalize: bool = False,
    title: str = "",
) -> Figure:
    """A labelled confusion matrix, counts or row-normalized."""
    cm = confusion_matrix(y_true, y_pred, labels=list(classes)).astype(float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(classes) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            f"{v:.2f}" if normalize else f"{int(v)}",
            ha="center",
            va="center",
            color="white" if v > cm.max() / 2 else "black",
            fontsize=8,
        )
    ax.set_title(title or ("confusion matrix (normalized)" if normalize else "confusion matrix"))
    fig.tight_layout()
    return fig


def importance_figure(
    importance: pd.Series, by_group: pd.Series | None = None, *, top: int = 20
) -> Figure:
    """Top individual features and, beside them, the sum per feature family."""
    panels = 2 if by_group is not None and len(by_group) else 1
    fig = Figure(figsize=(6 * panels, 0.25 * min(top, len(importance)) + 2))
    axes = fig.subplots(1, panels)
    axes = np.atleast_1d(axes)
    head = importance.head(top)[::-1]
    axes[0].barh(head.index.astype(str), head.to_numpy())
    axes[0].set_title(f"top {len(head)} features")
    if panels == 2:
        groups = by_group.sort_values()
        axes[1].barh(groups.index.astype(str), groups.to_numpy(), color="tab:orange")
        axes[1].set_title("importance per feature family")
    fig.tight_layout()
    return fig


def curves_figure(y_true: Sequence, proba: np.ndarray, classes: Sequence) -> Figure:
    """One-vs-rest ROC and precision-recall curves per class."""
    fig = Figure(figsize=(11, 4.5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    truth = np.asarray(y_true)
    for j, c in enumerate(classes):
        positive = truth == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, j])
        prec, rec, _ = precision_recall_curve(positive, proba[:, j])
        roc_ax.plot(fpr, tpr, label=str(c))
        pr_ax.plot(rec, prec, label=str(c))
    roc_ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    roc_ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title="ROC (one vs rest)"
    )
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    roc_ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def regression_figure(y_true: Sequence, y_pred: Sequence) -> Figure:
    """Predicted vs true and residuals."""
    truth, pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig = Figure(figsize=(11, 4.5))
    a, b = fig.subplots(1, 2)
    a.scatter(truth, pred, s=12)
    lo, hi = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    a.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    a.set(xlabel="true", ylabel="predicted", title="predicted vs true")
    b.scatter(pred, truth - pred, s=12)
    b.axhline(0, color="k", linewidth=0.8)
    b.set(xlabel="predicted", ylabel="residual (true - predicted)", title="residuals")
    fig.tight_layout()
    return fig
