"""The ``catboost`` family: CatBoost with native categorical metadata and early stopping.

CatBoost is an optional extra (``pip install "audioml[catboost]"``: a 97 MB wheel, 269 MB
installed, with plotly and graphviz). The family is always registered, so specs that name it
validate everywhere CatBoost is installed and are refused with the install command where
it is not (``ModelFamily.install``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.models._base import BOTH, check_params
from runner.models._lazy import lazy_exports
from runner.models._registry import ModelFamily, register_family

__all__ = ["CATBOOST"]

# The estimators import scikit-learn: loaded by ``build`` (and by unpickling a logged model).
__getattr__ = lazy_exports(
    __name__,
    {
        "CatBoostClassifierES": "runner.models._catboost_estimator",
        "CatBoostRegressorES": "runner.models._catboost_estimator",
    },
)


def catboost_space(task: str) -> dict[str, BaseDistribution]:
    """A small space: ``iterations`` is a cap (early stopping picks the count). The split
    candidates per feature (``border_count``) set a tree's cost: at depth 6, 64 instead of
    CatBoost's 254 made trials 3 to 6 times cheaper on the benchmark corpora with the same
    scores, except a worse MAE on speaker age (benchmarks/RESULTS_portfolio.md), so the
    search chooses."""
    return {
        "iterations": IntDistribution(100, 1000, log=True),
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "depth": IntDistribution(3, 8),
        "l2_leaf_reg": FloatDistribution(0.5, 30.0, log=True),
        "border_count": CategoricalDistribution([32, 64, 128, 254]),
    }


def build_catboost(
    params: Mapping[str, Any],
    *,
    task: str,
    seed: int,
    balanced: bool = False,
    categorical: Sequence[str] = (),
) -> Any:
    """Build the early-stopping CatBoost estimator for ``task``; ``categorical`` names the
    metadata columns CatBoost reads as categories (``ModelFamily.native_categorical``)."""
    from runner.models._catboost_estimator import CatBoostClassifierES, CatBoostRegressorES

    p = check_params("catboost", params, catboost_space)
    if task == "classification":
        return CatBoostClassifierES(
            **p, categorical=tuple(categorical), balanced=balanced, random_state=seed
        )
    return CatBoostRegressorES(**p, categorical=tuple(categorical), random_state=seed)


CATBOOST = register_family(
    ModelFamily(
        name="catboost",
        tasks=BOTH,
        space=catboost_space,
        build=build_catboost,
        requirements=("catboost",),
        install='pip install "audioml[catboost]"',
        native_categorical=True,
        # CatBoost's defaults (depth 6, l2 3, 254 borders) with a learning rate for a 500 cap.
        warm_start=(
            {
                "iterations": 500,
                "learning_rate": 0.08,
                "depth": 6,
                "l2_leaf_reg": 3.0,
                "border_count": 254,
            },
        ),
    )
)
