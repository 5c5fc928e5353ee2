"""CatBoost estimators of the ``catboost`` family: native categorical metadata, early stopping.

Kept apart from the family module so that the registry (and ``audioml validate``) reads the
family without importing scikit-learn or CatBoost; CatBoost itself is imported on the first
fit (the ``catboost`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils import check_consistent_length
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from runner.models._base import inner_split, require_target
from runner.models._encoding import as_text

__all__ = ["CatBoostClassifierES", "CatBoostRegressorES"]

#: What a missing category becomes: CatBoost refuses NaN in a categorical column.
MISSING = "missing"


class _CatBoost(BaseEstimator):
    """CatBoost whose tree count is chosen by early stopping inside ``fit``.

    ``fit`` holds out ``validation_fraction`` of the rows, grows up to ``iterations`` trees
    until the validation loss stalls for ``early_stopping_rounds``, then refits on all rows
    with the best count (as the ``lightgbm`` family does). The ``categorical`` columns are
    given to CatBoost as categories (its ordered target statistics), as stripped text with
    missing cells as one more category; every other column is read as a float (NaN allowed).

    Args:
        iterations: the most trees.
        learning_rate: shrinkage of each tree.
        depth: depth of the (symmetric) trees.
        l2_leaf_reg: L2 regularisation of the leaf values.
        border_count: split candidates per numeric feature; a tree's cost grows with it.
        categorical: names of the categorical columns of a DataFrame ``X``.
        balanced: weight classes inversely to their frequency (classifier only).
        early_stopping_rounds: patience in trees; ``None`` fits ``iterations`` trees.
        validation_fraction: share of the training rows held out for early stopping.
        random_state: seed of the inner split and of CatBoost.
        n_jobs: CatBoost's threads (the search's resource plan sets it).
    """

    def __init__(
        self,
        iterations: int = 500,
        learning_rate: float = 0.08,
        depth: int = 6,
        l2_leaf_reg: float = 3.0,
        border_count: int = 254,
        *,
        categorical: Sequence[str] = (),
        balanced: bool = False,
        early_stopping_rounds: int | None = 30,
        validation_fraction: float = 0.15,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.border_count = border_count
        self.categorical = categorical
        self.balanced = balanced
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # CatBoost reads NaN as missing
        return tags

    def _model(self, iterations: int) -> Any:
        import catboost

        cls = catboost.CatBoostClassifier if is_classifier(self) else catboost.CatBoostRegressor
        extra = {"auto_class_weights": "Balanced"} if self.balanced and is_classifier(self) else {}
        return cls(
            iterations=iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg,
            random_seed=self.random_state,
            thread_count=max(1, int(self.n_jobs or 1)),
            border_count=self.border_count,
            # Quiet, and no catboost_info/ folder in the working directory of every fit.
            verbose=False,
            allow_writing_files=False,
            **extra,
        )

    def _frame(self, X: Any, y: Any = "no_validation", *, reset: bool) -> tuple[pd.DataFrame, Any]:
        """Floats for every column, text for the categorical ones (and ``y`` checked)."""
        if not self.categorical:
            # A plain table: scikit-learn's checks (width, NaN allowed, inf and sparse refused).
            kw = {"ensure_all_finite": "allow-nan", "dtype": np.float64, "reset": reset}
            if isinstance(y, str) and y == "no_validation":  # scikit-learn's marker: X alone
                return pd.DataFrame(validate_data(self, X, **kw)), None
            X, y = validate_data(self, X, y, y_numeric=not is_classifier(self), **kw)
            return pd.DataFrame(X), y
        if not isinstance(X, pd.DataFrame):
            raise ValueError("categorical columns need a DataFrame input (column names)")
        require_target(self, y)
        if not (isinstance(y, str) and y == "no_validation"):
            check_consistent_length(X, y)
        cats = list(self.categorical)
        out = X.drop(columns=cats).astype(np.float64)
        text = pd.DataFrame(as_text(X[cats]), columns=cats, index=X.index)
        out[cats] = text.fillna(MISSING)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return out[list(X.columns)], y

    def _targets(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def fit(self, X: Any, y: Any) -> _CatBoost:
        """Fit, choosing the number of trees on an inner validation split when possible."""
        data, y = self._frame(X, y, reset=True)
        if len(data) < 2:
            raise ValueError(f"CatBoost needs at least 2 samples; got {len(data)} sample.")
        target = self._targets(y)
        cats = list(self.categorical)
        self.best_iteration_ = None
        split = None
        if self.early_stopping_rounds is not None:
            split = inner_split(
                target,
                fraction=self.validation_fraction,
                seed=self.random_state,
                classification=is_classifier(self),
                min_rows=20,
            )
        if split is not None:
            train, val = split
            probe = self._model(self.iterations).fit(
                data.iloc[train],
                target[train],
                cat_features=cats,
                eval_set=(data.iloc[val], target[val]),
                early_stopping_rounds=self.early_stopping_rounds,
            )
            self.best_iteration_ = int(probe.get_best_iteration()) + 1
        count = self.best_iteration_ or self.iterations
        self.model_ = self._model(count).fit(data, target, cat_features=cats)
        return self

    @property
    def feature_importances_(self) -> np.ndarray:
        """CatBoost's prediction-value change per input column (categorical ones included)."""
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.get_feature_importance(), dtype=float)

    def _raw(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "model_")
        return self._frame(X, reset=False)[0]


class CatBoostClassifierES(ClassifierMixin, _CatBoost):
    """CatBoostClassifier with early stopping inside ``fit`` (see ``_CatBoost``).

    Labels are encoded to 0..k-1 before CatBoost sees them, so ``predict`` returns the
    original labels in ``classes_`` order (CatBoost's own ``predict`` returns a column).
    """

    def _targets(self, y: Any) -> np.ndarray:
        check_classification_targets(y)
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"CatBoost needs at least two classes; got {len(classes)} class.")
        self.classes_ = classes
        return codes.astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict_proba(self._raw(X)), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class CatBoostRegressorES(RegressorMixin, _CatBoost):
    """CatBoostRegressor with early stopping inside ``fit`` (see ``_CatBoost``)."""

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._raw(X)), dtype=np.float64)
