"""Distance-based families: ``svm`` and ``knn`` (both tasks, standardised features)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.models._base import BOTH, check_params, class_weight, scaled
from runner.models._registry import ModelFamily, register_family

__all__ = ["KNN", "SVM"]


def svm_space(task: str) -> dict[str, BaseDistribution]:
    """RBF or linear kernel; ``epsilon`` (in standardised target units) for regression."""
    space: dict[str, BaseDistribution] = {
        "C": FloatDistribution(1e-3, 1e3, log=True),
        "gamma": FloatDistribution(1e-4, 1e1, log=True),
        "kernel": CategoricalDistribution(["rbf", "linear"]),
    }
    if task == "regression":
        space["epsilon"] = FloatDistribution(1e-3, 1.0, log=True)
    return space


SVM_MAX_ITER = 200_000


def build_svm(params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False) -> Any:
    """SVC with sigmoid-calibrated probabilities, or SVR (BLAS prediction) on a standardised
    target."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from runner.models._svr_estimator import BlasSVR

    p = check_params("svm", params, svm_space)
    # libsvm has no iteration cap by default: a linear kernel at a large C on overlapping
    # classes ran a single fold for over 12 minutes. Capped, it stops with a
    # ConvergenceWarning and an approximate solution, which CV scores as it is.
    p["max_iter"] = SVM_MAX_ITER
    if task == "classification":
        # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement.
        # cv=3 keeps calibration possible on small folds.
        svc = SVC(**p, class_weight=class_weight(balanced, task), random_state=seed)
        return scaled(CalibratedClassifierCV(svc, ensemble=False, cv=3))
    # epsilon is only comparable across datasets when the target is standardised.
    return TransformedTargetRegressor(regressor=scaled(BlasSVR(**p)), transformer=StandardScaler())


def knn_space(task: str) -> dict[str, BaseDistribution]:
    """Neighbour count (log scale), vote weighting and Minkowski power."""
    return {
        "n_neighbors": IntDistribution(1, 30, log=True),
        "weights": CategoricalDistribution(["uniform", "distance"]),
        "p": CategoricalDistribution([1, 2]),
    }


def build_knn(params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False) -> Any:
    """StandardScaler + k-nearest neighbours; ``balanced`` is ignored (no weights in kNN)."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    p = check_params("knn", params, knn_space)
    cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
    return scaled(cls(**p, n_jobs=1))


# gamma 0.01 is about scikit-learn's "scale" (1 / n_features) on a ~100-column table.
SVM = register_family(
    ModelFamily(
        name="svm",
        tasks=BOTH,
        space=svm_space,
        build=build_svm,
        warm_start=({"C": 10.0, "gamma": 0.01, "kernel": "rbf", "epsilon": 0.1},),
    )
)
KNN = register_family(
    ModelFamily(
        name="knn",
        tasks=BOTH,
        space=knn_space,
        build=build_knn,
        warm_start=({"n_neighbors": 10, "weights": "distance", "p": 2},),
    )
)
