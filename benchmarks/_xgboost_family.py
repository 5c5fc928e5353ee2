"""An ``xgboost`` model family for the benchmarks, registered the way a family module
registers one (one module, one ``register_family`` call), so the portfolio benchmark can
score XGBoost through the runner's own objective: its folds, metric and clip scoring.

XGBoost is in the bench extra (FLAML brings it), not in the runner: whether it earns a place
there is what ``benchmarks/bench_xgboost.py`` measures. Importing this module registers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight

from runner.models import ModelFamily, register_family

__all__ = ["XGBOOST", "XGBLabelled", "xgboost_space"]


def xgboost_space(task: str) -> dict[str, BaseDistribution]:
    return {
        "n_estimators": IntDistribution(50, 2000, log=True),
        "learning_rate": FloatDistribution(0.005, 0.3, log=True),
        "max_depth": IntDistribution(2, 12),
        "min_child_weight": FloatDistribution(0.5, 20.0, log=True),
        "subsample": FloatDistribution(0.5, 1.0),
        "colsample_bytree": FloatDistribution(0.3, 1.0),
        "reg_alpha": FloatDistribution(1e-8, 10.0, log=True),
        "reg_lambda": FloatDistribution(1e-8, 10.0, log=True),
    }


class XGBLabelled(ClassifierMixin, BaseEstimator):
    """XGBClassifier on labels encoded to 0..k-1 (XGBoost takes no other), predicting the
    original labels; ``balanced`` weights rows inversely to their class's frequency."""

    def __init__(self, params: Mapping[str, Any] | None = None, balanced: bool = False,
                 n_jobs: int = 1) -> None:  # fmt: skip
        self.params = params
        self.balanced = balanced
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any) -> XGBLabelled:
        from xgboost import XGBClassifier

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        weight = compute_sample_weight("balanced", codes) if self.balanced else None
        self.model_ = XGBClassifier(**(self.params or {}), n_jobs=self.n_jobs)
        self.model_.fit(X, codes, sample_weight=weight)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def build_xgboost(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Any:
    fixed = {**params, "random_state": seed, "tree_method": "hist", "verbosity": 0}
    if task == "classification":
        return XGBLabelled(fixed, balanced=balanced)
    from xgboost import XGBRegressor

    return XGBRegressor(**fixed, n_jobs=1)


XGBOOST = register_family(ModelFamily(
    name="xgboost", tasks=frozenset({"classification", "regression"}),
    space=xgboost_space, build=build_xgboost, requirements=("xgboost",),
))  # fmt: skip
