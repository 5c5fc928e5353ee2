"""Fit and score one estimator over CV folds, with window predictions aggregated to clips."""

from __future__ import annotations

import contextlib
import os
import pickle
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from runner.data.splits import Split
from runner.errors import TrialFailed
from runner.metrics import greater_is_better, score_all
from runner.models import Inputs, aggregate_clips, predict_rows
from runner.search.fold_gate import FoldGate, OutOfTime

__all__ = [
    "CvResult",
    "Inputs",
    "StoredModel",
    "cross_validate",
    "metric_scorer",
]


class StoredModel:
    """A fitted fold estimator that a fold worker process wrote to ``path``: loaded only by
    whoever uses it, its file removed once this handle is dropped.

    Sent back whole, each kept estimator (a forest of deep trees, a long boosting run: tens
    of MB) passed through the process pool's one result pipe and was unpickled by its one
    reader thread, holding every other fold's result behind it; on 16 cores that left the
    fold slots waiting about 4 s per fold (``benchmarks/RESULTS_scaling.md``)."""

    def __init__(self, path: str, folder: object = None) -> None:
        self.path = path
        self._folder = folder  # whatever removes the folder once nothing holds it
        weakref.finalize(self, _unlink, path)

    def load(self) -> Any:
        with open(self.path, "rb") as f:
            return pickle.load(f)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def loaded(model: Any) -> Any:
    """``model`` itself, or the estimator a :class:`StoredModel` holds."""
    return model.load() if isinstance(model, StoredModel) else model


@dataclass
class CvResult:
    """Per-fold and summary scores of one parameter set, plus out-of-fold clip predictions."""

    folds: list[dict[str, float]] = field(default_factory=list)
    oof_true: list = field(default_factory=list)
    oof_pred: list = field(default_factory=list)
    fit_s: float = 0.0
    predict_s: float = 0.0
    last_estimator: object | None = None
    last_rows: np.ndarray | None = None
    oof_ids: list = field(default_factory=list)
    oof_fold: list[int] = field(default_factory=list)
    oof_proba: list[np.ndarray] = field(default_factory=list)
    # The fitted fold estimators in fold order, kept only when asked (a bagged final model).
    fold_models: list = field(default_factory=list)
    fold_fit_s: list[float] = field(default_factory=list)

    def estimators(self) -> list:
        """The kept fold estimators, loaded (see :class:`StoredModel`)."""
        return [loaded(m) for m in self.fold_models]

    def last(self) -> Any:
        """The last fold's estimator (it feeds the trial's permutation importance)."""
        return loaded(self.last_estimator)

    def add_oof(
        self, fold: int, ids: np.ndarray, truth: np.ndarray, pred: np.ndarray, proba: Any
    ) -> None:
        """Keep one fold's clip-level out-of-fold predictions (ensemble selection reads them)."""
        self.oof_ids.extend(np.asarray(ids).tolist())
        self.oof_fold.extend([fold] * len(ids))
        self.oof_true.extend(np.asarray(truth).tolist())
        self.oof_pred.extend(np.asarray(pred).tolist())
        if proba is not None:
            self.oof_proba.append(np.asarray(proba, dtype=float))

    def mean(self) -> dict[str, float]:
        """Per metric, the mean over the folds where it is defined (NaN if none)."""
        return self._summary(np.mean)

    def std(self) -> dict[str, float]:
        """Per metric, the population std over the folds where it is defined (NaN if none)."""
        return self._summary(np.std)

    def _summary(self, reduce: Callable[[list[float]], float]) -> dict[str, float]:
        out = {}
        for key in self.folds[0] if self.folds else ():
            finite = [f[key] for f in self.folds if not np.isnan(f[key])]
            out[key] = float(reduce(finite)) if finite else float("nan")
        return out


def metric_scorer(
    task: str, metric: str, classes: Sequence | None
) -> Callable[[object, object, np.ndarray], float]:
    """``score(estimator, X, y)``: ``metric`` on the rows of ``X``, signed so that greater is
    better (permutation importance is the drop of it)."""
    sign = 1.0 if greater_is_better(metric) else -1.0

    def score(estimator: object, X: object, y: np.ndarray) -> float:
        pred, proba = predict_rows(estimator, X, task=task, classes=classes)
        return sign * score_all(task, y, pred, proba, classes)[metric]

    return score


def _fit_fold(
    make: Callable[[], object],
    inputs: Inputs,
    labels: np.ndarray,
    k: int,
    split: Split,
    *,
    task: str,
    classes: Sequence | None,
) -> tuple[object, np.ndarray, np.ndarray | None, float, float]:
    """Fit one fold and predict its held-out rows: (estimator, pred, proba, fit s, predict s)."""
    estimator = make()
    try:
        start = time.perf_counter()
        estimator.fit(inputs.take(split.train), labels[split.train])
        mid = time.perf_counter()
        pred, proba = predict_rows(estimator, inputs.take(split.test), task=task, classes=classes)
    except (ValueError, ArithmeticError, RuntimeError, IndexError, TypeError) as exc:
        raise TrialFailed(f"fold {k}: {type(exc).__name__}: {exc}") from exc
    return estimator, pred, proba, mid - start, time.perf_counter() - mid


#: Fits fold ``k`` of ``inputs`` elsewhere: (estimator or None, pred, proba, fit s, predict s).
FoldFitter = Callable[..., tuple]


def _fold_results(
    fit: Callable[[int, Split], tuple | None],
    folds: list[Split],
    jobs: int,
    pool: ThreadPoolExecutor | None = None,
) -> Iterator[tuple | None]:
    """Each fold's result in fold order; ``jobs`` folds are fitted side by side (threads:
    the fits run in native code that releases the GIL), on ``pool`` when given (the fold
    slots that trials run side by side share). A consumer that stops early (a pruned trial)
    cancels the folds not yet started and waits for the running ones."""
    if jobs <= 1 or len(folds) <= 1:
        for k, split in enumerate(folds):
            yield fit(k, split)
        return
    own = pool is None
    if own:
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="audioml-fold")
    futures = [pool.submit(fit, k, split) for k, split in enumerate(folds)]
    try:
        for future in futures:
            yield future.result()
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            for future in futures:
                future.cancel()
            wait(futures)


def cross_validate(
    make: Callable[[], object],
    inputs: Inputs,
    labels: np.ndarray,
    clip_ids: np.ndarray,
    folds: list[Split],
    *,
    task: str,
    classes: Sequence | None,
    aggregate: str = "mean_proba",
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
    jobs: int = 1,
    threads: int | None = None,
    deadline: float | None = None,
    keep_models: bool = False,
    pool: ThreadPoolExecutor | None = None,
    fitter: FoldFitter | None = None,
) -> CvResult:
    """Fit ``make()`` on each fold's training rows; score on its clips.

    ``jobs`` folds are fitted at once (on ``pool`` when given); ``on_fold`` still sees them
    in fold order, in the calling thread (it may raise to stop, e.g. ``optuna.TrialPruned``).
    ``threads`` caps the native thread pools (OpenMP, BLAS) of each fit in the thread that
    runs it. ``fitter`` (``runner.search.fold_procs.FoldProcesses.fit``) fits the folds of tabular
    inputs elsewhere, e.g. in worker processes. Against ``deadline``
    (``time.monotonic()``), folds start as :class:`runner.search.fold_gate.FoldGate` admits them.
    With ``keep_models`` the fitted fold estimators stay in
    ``CvResult.fold_models`` (the bagged form of the final model averages them).

    Raises:
        TrialFailed: when the estimator cannot fit or predict a fold (e.g. degenerate data).
        OutOfTime: the gate refused a fold.
    """
    result = CvResult()
    clip_labels = pd.Series(labels).groupby(pd.Series(clip_ids), sort=False).first()

    gate = FoldGate(len(folds), jobs, deadline)

    def fit(k: int, split: Split) -> tuple | None:
        # Asked where the fold starts: with folds side by side, a worker that frees up
        # takes the next fold before the caller has seen the last one finish.
        if not gate.admit(k):
            return None
        # OpenMP's thread count is per thread: a limit set by the caller does not reach the
        # fold threads, and two folds of HistGradientBoosting would each start every core.
        # (``limits=None`` changes nothing.)
        if fitter is not None and not inputs.kind.images:
            keep = keep_models or k == len(folds) - 1  # the last fold's feeds importance
            out = fitter(make, inputs, k, split, task=task, classes=classes, threads=threads,
                         keep=keep)  # fmt: skip
        else:
            with threadpool_limits(limits=threads):
                out = _fit_fold(make, inputs, labels, k, split, task=task, classes=classes)
        gate.ended(out[3] + out[4])  # the fold's fit and predict seconds
        return out

    results = _fold_results(fit, folds, jobs, pool)
    try:
        for k, (split, fitted) in enumerate(zip(folds, results, strict=False)):
            if fitted is None:
                raise OutOfTime(k)
            estimator, pred, proba, fit_s, pred_s = fitted
            result.fit_s += fit_s
            result.predict_s += pred_s
            result.fold_fit_s.append(fit_s)
            if keep_models:
                result.fold_models.append(estimator)
            ids, clip_pred, clip_proba = aggregate_clips(
                clip_ids[split.test], pred, proba, how=aggregate, classes=classes
            )
            truth = clip_labels.loc[ids].to_numpy()
            scores = score_all(task, truth, clip_pred, clip_proba, classes)
            result.folds.append(scores)
            result.add_oof(k, ids, truth, clip_pred, clip_proba)
            result.last_estimator, result.last_rows = estimator, split.test
            if on_fold is not None:
                on_fold(k, scores)
    finally:
        results.close()
    return result
