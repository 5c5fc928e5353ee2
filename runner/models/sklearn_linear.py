"""Linear families: ``logistic`` (classification) and ``ridge`` (regression)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, FloatDistribution

from runner.models._base import CLASSIFICATION, REGRESSION, check_params, class_weight, scaled
from runner.models._registry import ModelFamily, register_family

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["LOGISTIC", "RIDGE"]


def logistic_space(task: str) -> dict[str, BaseDistribution]:
    """Inverse L2 strength over seven decades (features are standardised first)."""
    return {"C": FloatDistribution(1e-4, 1e3, log=True)}


def build_logistic(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Pipeline:
    """StandardScaler + multinomial LogisticRegression (lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    p = check_params("logistic", params, logistic_space, tasks=CLASSIFICATION)
    model = LogisticRegression(
        **p, class_weight=class_weight(balanced, task), max_iter=2000, random_state=seed
    )
    return scaled(model)


def ridge_space(task: str) -> dict[str, BaseDistribution]:
    """L2 strength over seven decades."""
    return {"alpha": FloatDistribution(1e-4, 1e3, log=True)}


def build_ridge(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Pipeline:
    """StandardScaler + Ridge; ``balanced`` has no meaning for regression."""
    from sklearn.linear_model import Ridge

    p = check_params("ridge", params, ridge_space, tasks=REGRESSION)
    return scaled(Ridge(**p, random_state=seed))


LOGISTIC = register_family(
    ModelFamily(
        name="logistic",
        tasks=CLASSIFICATION,
        space=logistic_space,
        build=build_logistic,
        warm_start=({"C": 1.0},),
    )
)
RIDGE = register_family(
    ModelFamily(
        name="ridge",
        tasks=REGRESSION,
        space=ridge_space,
        build=build_ridge,
        warm_start=({"alpha": 1.0},),
    )
)
