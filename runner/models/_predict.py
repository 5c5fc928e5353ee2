"""Row predictions of a fitted estimator and their aggregation from windows to clips: the
code path CV, the final test score, the stacked model and the served model share, so their
predictions cannot differ."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["aggregate_clips", "predict_rows"]


def predict_rows(
    estimator: object, X: np.ndarray, *, task: str, classes: Sequence | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Row predictions and (classification) probabilities aligned with ``classes``."""
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=float), None
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    # A fold may miss a class: put each column under its class, zeros elsewhere.
    full = np.zeros((len(proba), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(estimator.classes_):
        full[:, index[c]] = proba[:, j]
    return np.asarray(classes)[full.argmax(axis=1)], full


def aggregate_clips(
    clip_ids: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    *,
    how: str = "mean_proba",
    classes: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Combine window predictions into one per clip (order of first appearance)."""
    codes, uniques = pd.factorize(pd.Series(clip_ids))
    if len(uniques) == len(clip_ids):
        return np.asarray(uniques), pred, proba
    if proba is None:  # regression: mean of the window predictions
        sums = np.bincount(codes, weights=pred.astype(float))
        return np.asarray(uniques), sums / np.bincount(codes), None
    counts = np.bincount(codes)[:, None]
    if how == "majority":
        onehot = np.zeros_like(proba)
        onehot[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
        agg = np.zeros((len(uniques), proba.shape[1]))
        np.add.at(agg, codes, onehot)
        agg /= counts
    else:
        agg = np.zeros((len(uniques), proba.shape[1]))
        np.add.at(agg, codes, proba)
        agg /= counts
    return np.asarray(uniques), np.asarray(classes)[agg.argmax(axis=1)], agg
