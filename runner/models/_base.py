"""Helpers shared by the family modules: parameter checks, scaling, inner splits, weighting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution

from runner.errors import format_error
from runner.models._lazy import lazy_exports

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# scikit-learn is imported inside the helpers that build or fit, so that the family modules
# (read by the registry and by `audioml validate`) load without it.

__all__ = [
    "BOTH",
    "CLASSIFICATION",
    "KERAS_REQUIREMENTS",
    "REGRESSION",
    "check_params",
    "class_weight",
    "inner_split",
    "require_target",
    "scaled",
]

CLASSIFICATION = frozenset({"classification"})
REGRESSION = frozenset({"regression"})
BOTH = frozenset({"classification", "regression"})
#: What a logged keras model needs beyond the base packages (the JAX backend).
KERAS_REQUIREMENTS = ("keras", "jax", "jaxlib")

# Defined with the estimators; read here by models logged before it moved.
__getattr__ = lazy_exports(__name__, {"BalancedClassifier": "runner.models._balanced"})


def check_params(
    family: str,
    params: Mapping[str, Any],
    space: Callable[[str], dict[str, BaseDistribution]],
    *,
    tasks: Iterable[str] = BOTH,
    extra: Iterable[str] = (),
) -> dict[str, Any]:
    """Return ``params`` as a dict, refusing names that no space of the family declares.

    Missing names are allowed: the estimator's defaults apply (a voting member or a fixed
    configuration may name only some parameters).

    Raises:
        ValueError: ``params`` holds an unknown name.
    """
    known = set(extra).union(*(space(task) for task in tasks))
    unknown = sorted(set(params) - known)
    if unknown:
        given = unknown[0] if len(unknown) == 1 else unknown
        what = f"parameters of model family '{family}'"
        raise ValueError(format_error(f"{family} params", given, one_of=sorted(known), what=what))
    return dict(params)


def require_target(estimator: Any, y: Any) -> None:
    """Refuse ``fit(X, None)`` in the words scikit-learn's estimator checks expect."""
    if y is None:
        name = type(estimator).__name__
        raise ValueError(f"{name} requires y to be passed, but the target y is None")


def class_weight(balanced: bool, task: str) -> str | None:
    """The ``class_weight`` argument: ``"balanced"`` when asked for and the task has classes."""
    return "balanced" if balanced and task == "classification" else None


def scaled(estimator: Any) -> Pipeline:
    """Put a StandardScaler before ``estimator`` so scaling is fitted on training folds only."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", estimator)])


def inner_split(
    y: np.ndarray, *, fraction: float, seed: int, classification: bool, min_rows: int = 10
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split row indices into (train, validation) for early stopping inside ``fit``.

    Returns ``None`` when the data are too small for a useful validation set, or (for
    classification) when a stratified split is impossible; the caller then trains on all rows.
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_val = round(n * fraction)
    if n_val < min_rows or n - n_val < min_rows:
        return None
    index = np.arange(n)
    stratify = None
    if classification:
        _, counts = np.unique(y, return_counts=True)
        # Every class must appear on both sides or the validation loss is meaningless.
        if counts.min() < 2 or n_val < len(counts):
            return None
        stratify = y
    train, val = train_test_split(index, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)
