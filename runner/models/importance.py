"""Feature importance of a fitted estimator, per feature and per feature group."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
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
        values = permuted_columns(estimator, X, y, task=task, seed=seed, n_repeats=n_repeats)
    series = pd.Series(np.clip(values, 0.0, None), index=list(feature_names), name="importance")
    return series.sort_values(ascending=False, kind="stable")


#: Rows per predict call of :func:`permuted_columns` (bounds its memory).
BATCH_ROWS = 200_000


def permuted_columns(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    task: str,
    seed: int,
    n_repeats: int,
    batch_rows: int = BATCH_ROWS,
) -> np.ndarray:
    """scikit-learn's ``permutation_importance`` (accuracy or R^2, the same permutations for
    the same ``seed``), with the permuted copies stacked into few ``predict`` calls.

    One call per permuted copy costs an ensemble of forests about a quarter of a second
    each, mostly per-call overhead: 57 columns x 3 repeats took 44 s; stacked, a few calls.
    """
    metric = accuracy_score if task == "classification" else r2_score
    y = np.asarray(y)
    frame = hasattr(X, "iloc")
    n, width = X.shape
    seed_all = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    baseline = metric(y, estimator.predict(X))

    def copies():
        for col in range(width):
            # As scikit-learn: one RandomState per column from the same seed, and each
            # repeat shuffles the already shuffled column again.
            state, order = np.random.RandomState(seed_all), np.arange(n)
            permuted = X.copy() if frame else np.array(X, copy=True)
            for _ in range(n_repeats):
                state.shuffle(order)
                if frame:
                    values = permuted.iloc[order, col].to_numpy()
                    permuted[permuted.columns[col]] = values
                else:
                    permuted[:, col] = permuted[order, col]
                yield permuted.copy()

    scores: list[float] = []
    batch: list[Any] = []

    def flush() -> None:
        stacked = pd.concat(batch, ignore_index=True) if frame else np.vstack(batch)
        pred = np.asarray(estimator.predict(stacked))
        scores.extend(metric(y, pred[k * n : (k + 1) * n]) for k in range(len(batch)))
        batch.clear()

    for permuted in copies():
        batch.append(permuted)
        if len(batch) * n >= batch_rows:
            flush()
    if batch:
        flush()
    drops = baseline - np.asarray(scores).reshape(width, n_repeats)
    return drops.mean(axis=1)


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
