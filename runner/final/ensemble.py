"""Ensemble selection (Caruana et al., 2004) over the complete trials' out-of-fold predictions.

Greedy forward selection with replacement: start empty; each round add the trial whose
predictions, averaged with those already chosen (probabilities for classification, values for
regression), score best; keep the best round. A trial chosen k times weighs k. The score is
the spec's metric per CV fold, averaged over the folds, exactly as a trial's own CV score, so
a one-member ensemble scores what its trial scored and the two are comparable.

The selection loop scores thousands of combinations, so its metrics are computed from
integer-coded labels with numpy (:func:`fast_score`); tests hold them equal to
:func:`runner.metrics.score_all`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from runner.metrics import get_metric, greater_is_better, score_all
from runner.search.evaluation import CvResult

__all__ = ["ROUNDS", "Oof", "Selection", "ensemble_cv", "fast_score", "select_ensemble"]

#: Rounds of greedy selection and the size of the candidate pool (best trials by CV score).
ROUNDS, POOL = 40, 20


@dataclass
class Oof:
    """One trial's clip-level out-of-fold predictions, aligned with the reference clip order.

    ``values`` holds class probabilities (n clips x n classes) or regression predictions.
    """

    number: int
    family: str
    value: float
    values: np.ndarray


@dataclass
class Selection:
    """The chosen trials (number -> times chosen), the ensemble's CV score, every round's."""

    counts: dict[int, int]
    score: float
    history: list[float] = field(default_factory=list)

    @property
    def weights(self) -> dict[int, float]:
        total = sum(self.counts.values())
        return {n: c / total for n, c in self.counts.items()}

    @property
    def size(self) -> int:
        return len(self.counts)


def fast_score(
    task: str,
    metric: str,
    truth: np.ndarray,
    values: np.ndarray,
    n_classes: int = 0,
    classes: Sequence | None = None,
) -> float:
    """``metric`` of one fold: ``truth`` as class indices (or numbers), ``values`` as
    probabilities (or predictions). The metric's fast scorer where it has one, else its
    reference definition (:func:`runner.metrics.score_all`)."""
    fast = get_metric(metric).fast
    if fast is not None:
        return fast(truth, values, n_classes)
    if task == "regression":
        return score_all(task, truth, values)[metric]
    names = np.asarray(classes)
    return score_all(task, names[truth], names[values.argmax(axis=1)], values, list(classes))[
        metric
    ]


def select_ensemble(
    oofs: Sequence[Oof],
    truth: np.ndarray,
    folds: np.ndarray,
    *,
    task: str,
    metric: str,
    classes: Sequence | None = None,
    rounds: int = ROUNDS,
) -> Selection | None:
    """Greedy selection with replacement over ``oofs`` (at most :data:`POOL`, best first).

    ``truth`` and ``folds`` are per clip, in the order of every ``Oof.values``; class truth
    is given as labels and coded here. None when there are no candidates.
    """
    if not oofs:
        return None
    sign = 1.0 if greater_is_better(metric) else -1.0
    pool = sorted(oofs, key=lambda o: -sign * o.value)[:POOL]
    n_classes = len(classes) if classes is not None else 0
    if task == "classification":
        index = {c: i for i, c in enumerate(classes)}
        truth = np.asarray([index[t] for t in truth])
    else:
        truth = np.asarray(truth, dtype=float)
    parts = [np.flatnonzero(folds == k) for k in np.unique(folds)]

    def score(values: np.ndarray) -> float:
        per = [
            fast_score(task, metric, truth[rows], values[rows], n_classes, classes)
            for rows in parts
        ]
        finite = [v for v in per if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    total = np.zeros_like(pool[0].values, dtype=float)
    chosen: list[int] = []
    history: list[float] = []
    best_round, best_score = -1, -np.inf
    for r in range(rounds):
        scores = [score((total + o.values) / (r + 1)) for o in pool]
        signed = np.nan_to_num(sign * np.asarray(scores), nan=-np.inf)
        pick = int(np.argmax(signed))
        total += pool[pick].values
        chosen.append(pick)
        history.append(scores[pick])
        # Strictly better only: ties keep the smaller ensemble.
        if signed[pick] > best_score:
            best_round, best_score = r, float(signed[pick])
    if best_round < 0:
        return None
    counts = Counter(pool[i].number for i in chosen[: best_round + 1])
    return Selection(counts=dict(counts), score=sign * best_score, history=history)


def ensemble_cv(
    oofs: Sequence[Oof],
    selection: Selection,
    truth: np.ndarray,
    folds: np.ndarray,
    ids: np.ndarray,
    *,
    task: str,
    classes: Sequence | None = None,
) -> CvResult:
    """The selected ensemble's out-of-fold predictions scored per fold as a trial's are.

    The weighted average of the members' ``values`` (probabilities or predictions) per clip;
    each fold is scored with :func:`runner.metrics.score_all`, the code a trial's folds go
    through, so its metric keys, means and spreads compare with the trials'.

    Args:
        oofs: the candidates (the selected ones by ``Oof.number``), aligned on ``ids``.
        selection: the chosen trials and their counts.
        truth: per clip, labels (classification) or numbers.
        folds: per clip, its CV fold.
        ids: the clip ids of the rows.
        task: ``classification`` or ``regression``.
        classes: the class order of the probabilities.
    """
    by_number = {o.number: o for o in oofs}
    values = sum(w * by_number[n].values for n, w in selection.weights.items())
    values = np.asarray(values, dtype=float)
    cv = CvResult()
    for k in np.unique(folds):
        rows = np.flatnonzero(folds == k)
        proba = values[rows] if task == "classification" else None
        pred = np.asarray(classes)[proba.argmax(axis=1)] if proba is not None else values[rows]
        cv.folds.append(score_all(task, truth[rows], pred, proba, classes))
        cv.add_oof(int(k), ids[rows], truth[rows], pred, proba)
    return cv
