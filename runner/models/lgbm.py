"""The ``lightgbm`` family: LightGBM with early stopping on an inner split of the fold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from runner.models._base import BOTH, check_params, class_weight
from runner.models._lazy import lazy_exports
from runner.models._registry import ModelFamily, register_family

__all__ = ["LIGHTGBM"]

# Reproducible and quiet; one thread unless the resource plan gives more (ModelFamily.make).
_FIXED: dict[str, Any] = {
    "verbosity": -1,
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
    "subsample_freq": 1,
    "importance_type": "gain",
}


# The estimators import scikit-learn: loaded by ``build`` (and by unpickling a logged model).
__getattr__ = lazy_exports(
    __name__,
    {
        "LGBMEarlyStoppingClassifier": "runner.models._lgbm_estimator",
        "LGBMEarlyStoppingRegressor": "runner.models._lgbm_estimator",
    },
)


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
) -> Any:
    """Build the early-stopping LightGBM estimator for ``task``."""
    from runner.models._lgbm_estimator import (
        LGBMEarlyStoppingClassifier,
        LGBMEarlyStoppingRegressor,
    )

    p = check_params("lightgbm", params, lightgbm_space)
    p = {**_FIXED, **p, "class_weight": class_weight(balanced, task)}
    if task == "classification":
        return LGBMEarlyStoppingClassifier(p, random_state=seed, n_jobs=1)
    return LGBMEarlyStoppingRegressor(p, random_state=seed, n_jobs=1)


LIGHTGBM = register_family(
    ModelFamily(
        name="lightgbm",
        tasks=BOTH,
        space=lightgbm_space,
        build=build_lightgbm,
        # LightGBM's own defaults, with shrinkage for early stopping to pick the tree count.
        warm_start=(
            {
                "n_estimators": 1000,
                "learning_rate": 0.05,
                "num_leaves": 31,
                "min_child_samples": 5,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "reg_alpha": 1e-8,
                "reg_lambda": 1e-3,
            },
        ),
    )
)
