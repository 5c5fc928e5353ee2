"""The estimator of a selected ensemble: table members, each on its own columns, averaged
with weights (probabilities for classification, predictions for regression).

It reads one table, the union of its members' columns (a float array, or a DataFrame when
metadata columns are in), and hands each member the part it was trained on, in the form it
was trained on. Imported when the final model is built and when a logged model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

__all__ = ["EnsembleMember", "WeightedEnsemble"]

#: The fewest rows per thread worth a thread of their own in ``predict``.
CHUNK_ROWS = 1_000


class EnsembleMember:
    """One member: its estimator, its columns, and whether it reads a DataFrame."""

    def __init__(self, estimator: Any, columns: Sequence[str], frame: bool, label: str) -> None:
        self.estimator = estimator
        self.columns = list(columns)
        self.frame = frame
        self.label = label  # e.g. "trial-7-lightgbm", the child run of its trial


class WeightedEnsemble(BaseEstimator):
    """Weighted average of fitted-together members.

    Args:
        members: the members, unfitted.
        weights: one per member, summing to 1.
        columns: the union of the members' columns, in the order of the input table.
        task: ``"classification"`` or ``"regression"``.
        n_jobs: members fitted side by side, and large inputs predicted in as many row
            chunks at once (threads; the members must be thread-safe).
        threads: the native thread pools (OpenMP, BLAS) of each member's fit when side by
            side, so that ``n_jobs`` x ``threads`` fits the machine.
    """

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        weights: Sequence[float],
        columns: Sequence[str],
        task: str,
        n_jobs: int = 1,
        threads: int = 1,
    ) -> None:
        self.members = list(members)
        self.weights = list(weights)
        self.columns = list(columns)
        self.task = task
        self.n_jobs = n_jobs
        self.threads = threads

    def _part(self, X: Any, member: EnsembleMember) -> Any:
        if isinstance(X, pd.DataFrame):
            part = X[member.columns]
            return part.reset_index(drop=True) if member.frame else part.to_numpy(np.float64)
        position = {c: i for i, c in enumerate(self.columns)}
        return np.asarray(X)[:, [position[c] for c in member.columns]]

    def fit(self, X: Any, y: Any) -> WeightedEnsemble:
        y = np.asarray(y)
        jobs = min(getattr(self, "n_jobs", 1), len(self.members))
        if jobs <= 1:
            for member in self.members:
                member.estimator.fit(self._part(X, member), y)
        else:

            def fit(member: EnsembleMember) -> None:
                member.estimator.fit(self._part(X, member), y)

            self._side_by_side(fit, self.members, jobs)
        if self.task == "classification":
            self.classes_ = np.unique(y)
        self.n_features_in_ = len(self.columns)
        return self

    def _side_by_side(self, work: Any, items: Sequence[Any], jobs: int) -> list[Any]:
        """``work`` on each item in ``jobs`` threads, each under the per-fit thread limit."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        def run(item: Any) -> Any:
            # OpenMP's thread count is per thread: the limit goes where the work runs.
            with threadpool_limits(limits=self.threads):
                return work(item)

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="audioml-member") as pool:
            return list(pool.map(run, items))  # re-raises a member's error

    def _chunked(self, predict: Any, X: Any) -> np.ndarray:
        """``predict(X)``, its rows split between ``n_jobs`` threads when there are enough.

        Rows, not members: one slow member (libsvm's SVC predicts in one thread; so did the
        SVR, 13 s of a final permutation importance's 19 s on the age task, before it
        predicted through BLAS) would hold the others up.
        """
        jobs = min(getattr(self, "n_jobs", 1), len(X) // CHUNK_ROWS)
        if jobs <= 1:
            return predict(X)
        bounds = np.linspace(0, len(X), jobs + 1).astype(int)
        take = X.iloc if isinstance(X, pd.DataFrame) else X
        chunks = [take[a:b] for a, b in pairwise(bounds)]
        return np.concatenate(self._side_by_side(predict, chunks, jobs))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._chunked(self._predict_proba, X)

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._chunked(self._predict, X)

    def _predict_proba(self, X: Any) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(X), len(self.classes_)))
        for member, weight in zip(self.members, self.weights, strict=True):
            proba = np.asarray(member.estimator.predict_proba(self._part(X, member)), dtype=float)
            for j, c in enumerate(member.estimator.classes_):
                out[:, index[c]] += weight * proba[:, j]
        return out

    def _predict(self, X: Any) -> np.ndarray:
        parts = [
            weight * np.asarray(m.estimator.predict(self._part(X, m)), dtype=float)
            for m, weight in zip(self.members, self.weights, strict=True)
        ]
        return np.sum(parts, axis=0)
