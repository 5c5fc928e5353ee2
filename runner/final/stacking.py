"""A stacking layer over the best trials' out-of-fold predictions.

The stacker is small and regularised: a logistic regression (classification) or a ridge
(regression) on standardised inputs, and with ``final.stack_boosted`` also a shallow
histogram gradient boosting, the better of the two by the nested CV kept. Its inputs are the
members' clip-level out-of-fold probabilities (or predictions), and with
``final.stack_features`` the clips' audio feature columns (a clip's windows averaged).

Its CV score is honest at the second level: for each CV fold, a stacker fitted on the other
folds' out-of-fold rows predicts that fold's rows, scored exactly as a trial's fold is
(:func:`runner.metrics.score_all`), so its ``cv_*`` keys compare with the trials' and the
ensemble's. The served stacker is then fitted on every out-of-fold row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from runner.final.ensemble import Oof
from runner.metrics import greater_is_better, score_all
from runner.models import predict_rows, stack_inputs
from runner.search.evaluation import CvResult

__all__ = [
    "STACK_SIZE",
    "Stack",
    "clip_features",
    "fit_stack",
    "make_stacker",
    "passthrough_columns",
    "stack_oofs",
]

#: The best trials (by CV, ensemble-able families) whose predictions the stacker reads.
STACK_SIZE = 5
LINEAR, BOOSTED = "linear", "boosted"


@dataclass
class Stack:
    """The fitted stacker, its kind, its nested CV and the members it reads (best first)."""

    stacker: Any
    kind: str
    cv: CvResult
    members: list[Oof]
    value: float


def make_stacker(kind: str, task: str, seed: int) -> Any:
    """An unfitted stacker: ``linear`` (logistic / ridge) or ``boosted``."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == BOOSTED:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if task == "classification" else (
            HistGradientBoostingRegressor
        )  # fmt: skip
        return cls(max_iter=100, learning_rate=0.05, max_leaf_nodes=8, random_state=seed)
    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    from sklearn.linear_model import Ridge

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


def clip_features(
    frame: pd.DataFrame, clip_ids: np.ndarray, columns: Sequence[str], ids: np.ndarray
) -> np.ndarray:
    """The ``columns`` of each clip in ``ids`` (its windows' mean), in that order."""
    table = frame[list(columns)].astype(float).reset_index(drop=True)
    means = table.groupby(pd.Series(clip_ids).astype(str).to_numpy(), sort=False).mean()
    return means.loc[[str(i) for i in ids]].to_numpy(dtype=float)


def _nested_cv(
    kind: str, X: np.ndarray, truth: np.ndarray, folds: np.ndarray, ids: np.ndarray, *,
    task: str, classes: Sequence | None, seed: int,
) -> CvResult:  # fmt: skip
    """Per CV fold: a stacker fitted on the other folds' rows predicts this fold's rows."""
    cv = CvResult()
    for k in np.unique(folds):
        test, train = folds == k, folds != k
        stacker = make_stacker(kind, task, seed).fit(X[train], truth[train])
        pred, proba = predict_rows(stacker, X[test], task=task, classes=classes)
        cv.folds.append(score_all(task, truth[test], pred, proba, classes))
        cv.add_oof(int(k), ids[test], truth[test], pred, proba)
    return cv


def fit_stack(
    oofs: Sequence[Oof],
    truth: np.ndarray,
    folds: np.ndarray,
    ids: np.ndarray,
    *,
    task: str,
    metric: str,
    classes: Sequence | None,
    seed: int,
    boosted: bool = False,
    passthrough: np.ndarray | None = None,
) -> Stack | None:
    """Cross-validate the stacker(s) on the members' out-of-fold predictions and fit the
    better one on all of them; None with fewer than two members.

    Args:
        oofs: the candidates, best first; the first :data:`STACK_SIZE` are the members.
        truth, folds, ids: per clip, in the order of every ``Oof.values``.
        task, metric, classes: the spec's; ``metric`` picks between stacker kinds.
        seed: the boosted stacker's seed.
        boosted: also cross-validate a boosted stacker.
        passthrough: per clip, feature columns the stacker also reads.
    """
    members = list(oofs[:STACK_SIZE])
    if len(members) < 2:
        return None
    X = stack_inputs([o.values for o in members], passthrough)
    truth = np.asarray(truth) if task == "classification" else np.asarray(truth, dtype=float)
    sign = 1.0 if greater_is_better(metric) else -1.0
    best: tuple[float, str, CvResult] | None = None
    for kind in (LINEAR, BOOSTED) if boosted else (LINEAR,):
        cv = _nested_cv(kind, X, truth, folds, ids, task=task, classes=classes, seed=seed)
        value = cv.mean()[metric]
        if np.isfinite(value) and (best is None or sign * value > sign * best[0]):
            best = (value, kind, cv)
    if best is None:
        return None
    value, kind, cv = best
    stacker = make_stacker(kind, task, seed).fit(X, truth)
    return Stack(stacker=stacker, kind=kind, cv=cv, members=members, value=float(value))


def passthrough_columns(p: Any) -> list[str]:
    """The audio feature columns a stacker may read (metadata stays with the members)."""
    return [c for c in p.dataset.feature_columns if c not in p.dataset.roles.columns]


def stack_oofs(p: Any, oof: tuple) -> Stack | None:
    """:func:`fit_stack` on the prepared run ``p``'s out-of-fold predictions ``oof``
    (candidates, truth, folds and ids, as runner.final.candidates reads them), by its spec."""
    spec, (oofs, truth, folds, ids) = p.spec, oof
    passthrough = None
    if spec.final.stack_features:
        frame, clip_ids = p.data.rows.frame, p.data.clip_ids
        passthrough = clip_features(frame, clip_ids, passthrough_columns(p), ids)
    return fit_stack(
        oofs, truth, folds, ids, task=spec.task, metric=spec.search.metric,
        classes=p.data.classes, seed=spec.seed, boosted=spec.final.stack_boosted,
        passthrough=passthrough,
    )  # fmt: skip
