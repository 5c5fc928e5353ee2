"""Feature importance of a fitted estimator, per feature and per feature group."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline

if TYPE_CHECKING:
    from runner.models._inputs import InputKind

#: ``score(estimator, X, y)``, greater is better (scikit-learn's scorer convention).
Scorer = Callable[[Any, Any, Any], float]

__all__ = ["feature_importance", "importance_by_group", "unwrap"]


def unwrap(estimator: Any) -> Any:
    """The fitted model inside our wrappers, or ``estimator`` itself.

    Pipelines are unwrapped only when every step before the model keeps the columns
    one-to-one (e.g. a StandardScaler), so that the model's weights still map to features.
    """
    while True:
        if isinstance(estimator, Pipeline) and _keeps_columns(estimator):
            estimator = estimator.steps[-1][1]
        elif isinstance(estimator, TransformedTargetRegressor) and hasattr(
            estimator, "regressor_"
        ):
            estimator = estimator.regressor_
        elif isinstance(estimator, CalibratedClassifierCV) and hasattr(
            estimator, "calibrated_classifiers_"
        ):
            estimator = estimator.calibrated_classifiers_[0].estimator
        elif isinstance(inner := _inner(estimator), BaseEstimator):
            estimator = inner
        else:
            return estimator


def _inner(estimator: Any) -> Any:
    """The fitted model of BalancedClassifier (``estimator_``) or the LightGBM wrapper
    (``model_``); a keras wrapper's ``model_`` is a keras model, not an estimator."""
    # Only our own wrappers: scikit-learn ensembles also have ``estimator_`` (the unfitted
    # template of their members), which must not replace the fitted forest.
    if not type(estimator).__module__.startswith("runner.models."):
        return None
    inner = getattr(estimator, "estimator_", None)
    return inner if inner is not None else getattr(estimator, "model_", None)


def _keeps_columns(pipeline: Pipeline) -> bool:
    width = getattr(pipeline, "n_features_in_", None)
    for _, step in pipeline.steps[:-1]:
        if step in (None, "passthrough"):
            continue
        if getattr(step, "n_features_in_", None) != width or not hasattr(step, "scale_"):
            return False
    return True


def _native(model: Any) -> np.ndarray | None:
    """Impurity/gain importances of trees, or mean |coef| of linear models; None otherwise."""
    try:
        values = getattr(model, "feature_importances_", None)
        if values is None:
            coef = getattr(model, "coef_", None)  # SVC raises AttributeError for rbf kernels
            values = None if coef is None else np.abs(np.atleast_2d(coef)).mean(axis=0)
    except AttributeError:
        return None
    return None if values is None else np.asarray(values, dtype=float).ravel()


def feature_importance(
    estimator: Any,
    X: Any,
    y: Any,
    feature_names: Sequence[str],
    *,
    task: str,
    seed: int,
    n_repeats: int = 5,
    kind: InputKind | None = None,
    score: Scorer | None = None,
) -> pd.Series:
    """Non-negative importance per feature, largest first.

    A 2-D table: native importances (trees, |coef| of linear models) when the fitted model
    has them, otherwise scikit-learn's permutation importance on ``(X, y)`` (mean score drop
    over ``n_repeats`` shuffles), clipped at zero. An input that is not one table (images,
    or images with metadata; ``kind.permutable``): the mean drop of ``score`` when one part's
    rows are shuffled, the image as one part and each metadata column as one.

    Args:
        estimator: a fitted estimator built by a family.
        X: the rows to permute, usually a validation fold.
        y: their targets.
        feature_names: one name per column of a 2-D ``X`` (unused for other inputs, whose
            parts name themselves).
        task: ``"classification"`` (default score: accuracy) or ``"regression"`` (R^2).
        seed: the random state of the permutations.
        n_repeats: permutations per feature.
        kind: the input kind of the estimator's family; None for a table.
        score: the permutation score; accuracy or R^2 when None or undefined on these rows.

    Returns:
        A Series indexed by feature name, named ``"importance"``.

    Raises:
        ValueError: a table ``X`` is not 2-D, or ``feature_names`` does not match its width.
    """
    parts = kind.permutable(X) if kind is not None else None
    if parts is not None:
        values = _permuted_parts(estimator, parts, y, _scorer(task, score, estimator, X, y),
                                 seed=seed, n_repeats=n_repeats)  # fmt: skip
        series = pd.Series(np.clip(values, 0.0, None), index=list(parts), name="importance")
        return series.sort_values(ascending=False, kind="stable")
    width = np.shape(X)
    if len(width) != 2 or width[1] != len(feature_names):
        raise ValueError(
            f"feature_importance needs a 2-D X with one column per feature name; got shape "
            f"{width} for {len(feature_names)} names."
        )
    values = _native(unwrap(estimator))
    if values is None or len(values) != len(feature_names):
        # Accuracy/R^2 rather than log-loss: a small fold may lack a class, log-loss fails.
        scoring = "accuracy" if task == "classification" else "r2"
        result = permutation_importance(
            estimator, X, y, scoring=scoring, n_repeats=n_repeats, random_state=seed, n_jobs=1
        )
        values = result.importances_mean
    series = pd.Series(np.clip(values, 0.0, None), index=list(feature_names), name="importance")
    return series.sort_values(ascending=False, kind="stable")


def _default_score(task: str) -> Scorer:
    metric = accuracy_score if task == "classification" else r2_score
    return lambda estimator, X, y: float(metric(y, estimator.predict(X)))


def _scorer(task: str, score: Scorer | None, estimator: Any, X: Any, y: Any) -> Scorer:
    """``score`` when it is defined on the unpermuted rows, else accuracy or R^2."""
    if score is not None and np.isfinite(score(estimator, X, y)):
        return score
    return _default_score(task)


def _permuted_parts(
    estimator: Any,
    parts: Mapping[str, Callable[[np.ndarray], Any]],
    y: Any,
    score: Scorer,
    *,
    seed: int,
    n_repeats: int,
) -> np.ndarray:
    """Mean score drop per part over ``n_repeats`` row permutations (the same ones for
    every part, so parts are compared on equal draws)."""
    n = len(y)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(n_repeats)]
    identity = np.arange(n)
    first = next(iter(parts.values()))
    base = score(estimator, first(identity), y)
    return np.array(
        [
            np.mean([base - score(estimator, permute(p), y) for p in perms])
            for permute in parts.values()
        ]
    )


def importance_by_group(importance: pd.Series, groups: Mapping[str, Sequence[str]]) -> pd.Series:
    """Sum per-feature importance per group (e.g. per extractor), largest first.

    Features in no group are summed under ``"other"``; names in a group but absent from
    ``importance`` count as zero.

    Args:
        importance: per-feature importance, as from ``feature_importance``.
        groups: group name to its feature names.

    Returns:
        A Series indexed by group name, named ``"importance"``.
    """
    totals = {
        g: float(importance.reindex(list(names)).fillna(0.0).sum()) for g, names in groups.items()
    }
    grouped = {name for names in groups.values() for name in names}
    rest = [name for name in importance.index if name not in grouped]
    if rest:
        totals["other"] = totals.get("other", 0.0) + float(importance[rest].sum())
    series = pd.Series(totals, name="importance", dtype=float)
    return series.sort_values(ascending=False, kind="stable")
