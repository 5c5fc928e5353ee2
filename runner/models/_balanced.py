"""Balanced sample weights for classifiers that have no ``class_weight``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

from runner.models._base import require_target

if TYPE_CHECKING:
    from sklearn.utils import Tags

__all__ = ["BalancedClassifier"]


class BalancedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Fit ``estimator`` with balanced sample weights (for estimators without class_weight).

    Args:
        estimator: an unfitted classifier whose ``fit`` accepts ``sample_weight``.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> BalancedClassifier:
        """Fit a clone of ``estimator`` with weights inversely proportional to class counts."""
        require_target(self, y)
        y = np.asarray(y)
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
        self.classes_ = self.estimator_.classes_
        inner = getattr(self.estimator_, "n_features_in_", None)
        self.n_features_in_ = inner if inner is not None else np.asarray(X).shape[1]
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator).input_tags
        tags.input_tags.sparse, tags.input_tags.allow_nan = inner.sparse, inner.allow_nan
        return tags

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)
