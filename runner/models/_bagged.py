"""The bagged form of a trial: the estimators its CV folds fitted, averaged at prediction.

No refit: each fold model saw the training split less its fold, and the trial's out-of-fold
predictions are exactly theirs, so the trial's CV score is the honest estimate of what is
served. Imported when the final model is built and when a logged model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["BaggedModel"]


class BaggedModel(BaseEstimator):
    """The mean of fitted fold models: class probabilities, or regression predictions.

    Args:
        models: the fitted fold estimators of one trial, in fold order.
        task: ``"classification"`` or ``"regression"``.
        classes: the training classes (classification); a fold that missed a class gives
            it probability 0, as the trial's CV scored that fold.
    """

    def __init__(self, models: Sequence[Any], task: str, classes: Sequence | None = None) -> None:
        self.models = list(models)
        self.task = task
        self.classes = None if classes is None else list(classes)

    def fit(self, X: Any, y: Any = None) -> BaggedModel:
        """Already fitted (on the CV folds): nothing is refit, so the final step's ``fit``
        costs no time; the learned attributes are set from the fold models."""
        if not self.models:
            raise ValueError("BaggedModel needs at least one fitted fold model; got none")
        if self.task == "classification":
            self.classes_ = np.asarray(self.classes)
        self.n_models_ = len(self.models)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(X), len(self.classes_)))
        for model in self.models:
            proba = np.asarray(model.predict_proba(X), dtype=float)
            for j, c in enumerate(model.classes_):
                out[:, index[c]] += proba[:, j]
        return out / len(self.models)

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        parts = [np.asarray(m.predict(X), dtype=float) for m in self.models]
        return np.mean(parts, axis=0)
