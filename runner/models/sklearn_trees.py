"""Tree families: decision_tree, random_forest, extra_trees, gradient_boosting and
hist_gradient_boosting (both tasks; trees need no scaling)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.models._base import BOTH, check_params, class_weight
from runner.models._registry import ModelFamily, register_family

__all__ = [
    "DECISION_TREE",
    "EXTRA_TREES",
    "GRADIENT_BOOSTING",
    "HIST_GRADIENT_BOOSTING",
    "RANDOM_FOREST",
]

Space = Callable[[str], dict[str, BaseDistribution]]


def _criterion(task: str) -> dict[str, BaseDistribution]:
    """The split criterion to search: classification only. Of the regression criteria,
    friedman_mse is squared_error (scikit-learn 1.9 deprecates the name) and absolute_error
    is orders of magnitude slower on real tables, so regression keeps the default."""
    if task == "classification":
        return {"criterion": CategoricalDistribution(["gini", "entropy"])}
    return {}


def tree_space(task: str) -> dict[str, BaseDistribution]:
    """A single CART tree."""
    return {
        "max_depth": IntDistribution(2, 32, log=True),
        "min_samples_leaf": IntDistribution(1, 50, log=True),
        "max_features": FloatDistribution(0.1, 1.0),
        **_criterion(task),
    }


def forest_space(task: str) -> dict[str, BaseDistribution]:
    """Bagged trees (random forest and extra trees share it)."""
    return {
        "n_estimators": IntDistribution(50, 500, log=True),
        "max_depth": IntDistribution(2, 32, log=True),
        "min_samples_leaf": IntDistribution(1, 20, log=True),
        "max_features": FloatDistribution(0.1, 1.0),
        **_criterion(task),
    }


def boosting_space(task: str) -> dict[str, BaseDistribution]:
    """Classic gradient boosting: shallow trees, shrinkage, row subsampling."""
    return {
        "n_estimators": IntDistribution(50, 500, log=True),
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "max_depth": IntDistribution(2, 8),
        "min_samples_leaf": IntDistribution(1, 50, log=True),
        "subsample": FloatDistribution(0.5, 1.0),
    }


def hist_space(task: str) -> dict[str, BaseDistribution]:
    """Histogram gradient boosting (LightGBM-like, native to scikit-learn)."""
    return {
        "max_iter": IntDistribution(50, 500, log=True),
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "max_leaf_nodes": IntDistribution(8, 128, log=True),
        "min_samples_leaf": IntDistribution(5, 100, log=True),
        "l2_regularization": FloatDistribution(1e-8, 10.0, log=True),
    }


def _estimator_class(dotted: str) -> type:
    """The class ``module.Name``, imported when a model is built (not when it registers)."""
    module, _, cls = dotted.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def _builder(name: str, space: Space, classes: tuple[str, str], **fixed: Any) -> Callable:
    """Make ``build`` for a tree family whose params map one-to-one onto the estimator.

    ``classes`` are dotted paths of the classifier and the regressor: scikit-learn is
    imported by ``build``, so that the registry reads the family without it.
    """

    def build(params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False) -> Any:
        p = check_params(name, params, space)
        classifier, regressor = (_estimator_class(c) for c in classes)
        if task == "regression":
            return regressor(**p, **fixed, random_state=seed)
        if "class_weight" in inspect.signature(classifier).parameters:
            return classifier(
                **p, **fixed, class_weight=class_weight(balanced, task), random_state=seed
            )
        from runner.models._balanced import BalancedClassifier

        model = classifier(**p, **fixed, random_state=seed)
        # GradientBoostingClassifier has no class_weight; weight the samples instead.
        return BalancedClassifier(model) if balanced else model

    build.__name__ = f"build_{name}"
    build.__doc__ = "Build the unfitted {} or {}.".format(*(c.rpartition(".")[2] for c in classes))
    return build


def _register(
    name: str, space: Space, classes: tuple[str, str], start: Mapping[str, Any], **fixed: Any
) -> ModelFamily:
    build = _builder(name, space, classes, **fixed)
    return register_family(
        ModelFamily(name=name, tasks=BOTH, space=space, build=build, warm_start=(start,))
    )


# Warm starts: scikit-learn's defaults where they generalise; bagged trees grow deep and
# look at a share of the columns per split (a criterion of the other task goes to the sampler).
_FOREST_START = {
    "n_estimators": 300, "max_depth": 32, "min_samples_leaf": 1, "max_features": 0.5,
    "criterion": "gini",
}  # fmt: skip


DECISION_TREE = _register(
    "decision_tree",
    tree_space,
    ("sklearn.tree.DecisionTreeClassifier", "sklearn.tree.DecisionTreeRegressor"),
    {"max_depth": 8, "min_samples_leaf": 5, "max_features": 1.0, "criterion": "gini"},
)
# n_jobs=1 unless the search's resource plan gives estimators more threads (ModelFamily.make).
RANDOM_FOREST = _register(
    "random_forest",
    forest_space,
    ("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor"),
    _FOREST_START,
    n_jobs=1,
)
EXTRA_TREES = _register(
    "extra_trees",
    forest_space,
    ("sklearn.ensemble.ExtraTreesClassifier", "sklearn.ensemble.ExtraTreesRegressor"),
    _FOREST_START,
    n_jobs=1,
)
GRADIENT_BOOSTING = _register(
    "gradient_boosting",
    boosting_space,
    ("sklearn.ensemble.GradientBoostingClassifier", "sklearn.ensemble.GradientBoostingRegressor"),
    {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 3, "min_samples_leaf": 1,
     "subsample": 0.8},
)  # fmt: skip
HIST_GRADIENT_BOOSTING = _register(
    "hist_gradient_boosting",
    hist_space,
    (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    ),
    {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
     "l2_regularization": 1e-8},
)  # fmt: skip
