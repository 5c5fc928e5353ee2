"""The ``lightgbm`` family: LightGBM with early stopping on an inner split of the fold."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from runner.models._base import BOTH, check_params, class_weight, inner_split
from runner.models._registry import ModelFamily, register_family

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["LIGHTGBM", "LGBMEarlyStoppingClassifier", "LGBMEarlyStoppingRegressor"]

# Reproducible and quiet; n_jobs=1 because the search parallelises over trials instead.
_FIXED: dict[str, Any] = {
    "verbosity": -1,
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
    "subsample_freq": 1,
    "importance_type": "gain",
}


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
    ) -> None:
        self.params = params
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _model(self, **override: Any) -> lgb.LGBMModel:
        import lightgbm as lgb

        return getattr(lgb, self._lgbm_class)(
            **{**(self.params or {}), **override}, random_state=self.random_state
        )

    def fit(self, X: Any, y: Any) -> _LGBMEarlyStopping:
        """Fit, choosing the number of trees on an inner validation split when possible."""
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
                    _safe_indexing(X, train),
                    y[train],
                    eval_set=[(_safe_indexing(X, val), y[val])],
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
                )
            self.best_iteration_ = int(probe.best_iteration_ or probe.n_estimators)
        override = {} if self.best_iteration_ is None else {"n_estimators": self.best_iteration_}
        self.model_ = self._model(**override).fit(X, y)
        self.n_features_in_ = self.model_.n_features_in_
        if is_classifier(self):
            self.classes_ = self.model_.classes_
        return self

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


def lightgbm_space(task: str) -> dict[str, BaseDistribution]:
    """``n_estimators`` is a cap: early stopping picks the actual count."""
    return {
        "n_estimators": IntDistribution(50, 2000, log=True),
        "learning_rate": FloatDistribution(0.005, 0.3, log=True),
        "num_leaves": IntDistribution(4, 256, log=True),
        "min_child_samples": IntDistribution(2, 100, log=True),
        "subsample": FloatDistribution(0.5, 1.0),
        "colsample_bytree": FloatDistribution(0.3, 1.0),
        "reg_alpha": FloatDistribution(1e-8, 10.0, log=True),
        "reg_lambda": FloatDistribution(1e-8, 10.0, log=True),
    }


def build_lightgbm(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> _LGBMEarlyStopping:
    """Build the early-stopping LightGBM estimator for ``task``."""
    p = check_params("lightgbm", params, lightgbm_space)
    p = {**_FIXED, **p, "class_weight": class_weight(balanced, task)}
    if task == "classification":
        return LGBMEarlyStoppingClassifier(p, random_state=seed)
    return LGBMEarlyStoppingRegressor(p, random_state=seed)


LIGHTGBM = register_family(
    ModelFamily(name="lightgbm", tasks=BOTH, space=lightgbm_space, build=build_lightgbm)
)
