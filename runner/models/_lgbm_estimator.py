"""LightGBM estimators of the ``lightgbm`` family, with early stopping inside ``fit``.

Kept apart from the family module so that the registry (and ``audioml validate``) reads the
family without importing scikit-learn; models logged before the split unpickle through the
re-export in :mod:`runner.models.lgbm`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils.validation import check_is_fitted

from runner.models._base import inner_split, require_target

if TYPE_CHECKING:
    import lightgbm as lgb
    from sklearn.utils import Tags

__all__ = ["LGBMEarlyStoppingClassifier", "LGBMEarlyStoppingRegressor"]


def _rows(X: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of a DataFrame (its columns kept, for LightGBM's names) or an array."""
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


class _LGBMEarlyStopping(BaseEstimator):
    """LightGBM whose tree count is chosen by early stopping inside ``fit``.

    ``fit`` holds out ``validation_fraction`` of the rows, grows up to ``n_estimators`` trees
    until the validation loss stalls for ``early_stopping_rounds``, then refits on all rows
    with the best tree count. Data too small to split are fitted directly.

    Args:
        params: keyword arguments of ``LGBMClassifier``/``LGBMRegressor``.
        early_stopping_rounds: patience in boosting rounds; ``None`` disables early stopping.
        validation_fraction: share of the training rows held out for early stopping.
        random_state: seed of the inner split and of LightGBM.
        n_jobs: LightGBM's threads, over the one in ``params`` (the search's resource plan).
    """

    # A name, not the class: LightGBM is imported on the first fit, so that registering the
    # family (every `audioml validate`) does not load it.
    _lgbm_class: str

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        *,
        early_stopping_rounds: int | None = 30,
        validation_fraction: float = 0.15,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.params = params
        self.n_jobs = n_jobs
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _model(self, **override: Any) -> lgb.LGBMModel:
        import lightgbm as lgb

        threads = getattr(self, "n_jobs", None)  # absent from models pickled before it
        params = {**(self.params or {}), **({"n_jobs": threads} if threads else {})}
        return getattr(lgb, self._lgbm_class)(
            **{**params, **override}, random_state=self.random_state
        )

    def fit(self, X: Any, y: Any) -> _LGBMEarlyStopping:
        """Fit, choosing the number of trees on an inner validation split when possible."""
        require_target(self, y)
        if not (hasattr(X, "iloc") or sparse.issparse(X)):
            X = np.asarray(X)  # a list or other array-like: rows are taken by position below
        y = np.asarray(y)
        split = None
        if self.early_stopping_rounds is not None:
            split = inner_split(
                y,
                fraction=self.validation_fraction,
                seed=self.random_state,
                classification=is_classifier(self),
                min_rows=20,
            )
        self.best_iteration_ = None
        if split is not None:
            train, val = split
            probe = self._model()
            import lightgbm as lgb

            with warnings.catch_warnings():
                # LightGBM 4.7 deprecates eval_set for eval_X/eval_y, but its classifier does
                # not label-encode eval_y yet (string labels fail), so keep eval_set.
                warnings.simplefilter("ignore", lgb.basic.LGBMDeprecationWarning)
                probe.fit(
                    _rows(X, train),
                    y[train],
                    eval_set=[(_rows(X, val), y[val])],
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
                )
            self.best_iteration_ = int(probe.best_iteration_ or probe.n_estimators)
        override = {} if self.best_iteration_ is None else {"n_estimators": self.best_iteration_}
        self.model_ = self._model(**override).fit(X, y)
        self.n_features_in_ = self.model_.n_features_in_
        if is_classifier(self):
            self.classes_ = self.model_.classes_
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # LightGBM takes CSR/CSC matrices
        tags.input_tags.allow_nan = True  # and treats NaN as missing, by design
        return tags

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total split gain per feature of the final model."""
        check_is_fitted(self, "model_")
        return self.model_.feature_importances_

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(X)


class LGBMEarlyStoppingClassifier(ClassifierMixin, _LGBMEarlyStopping):
    """LGBMClassifier with early stopping inside ``fit`` (see ``_LGBMEarlyStopping``)."""

    _lgbm_class = "LGBMClassifier"

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)


class LGBMEarlyStoppingRegressor(RegressorMixin, _LGBMEarlyStopping):
    """LGBMRegressor with early stopping inside ``fit`` (see ``_LGBMEarlyStopping``)."""

    _lgbm_class = "LGBMRegressor"
