"""The estimator of a selected ensemble: table members, each on its own columns, averaged
with weights (probabilities for classification, predictions for regression).

It reads one table, the union of its members' columns (a float array, or a DataFrame when
metadata columns are in), and hands each member the part it was trained on, in the form it
was trained on. Imported when the final model is built and when a logged model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

__all__ = ["EnsembleMember", "WeightedEnsemble"]


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
        n_jobs: members fitted side by side (threads; the members must be thread-safe).
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
            from concurrent.futures import ThreadPoolExecutor

            from threadpoolctl import threadpool_limits

            def fit(member: EnsembleMember) -> None:
                # OpenMP's thread count is per thread: the limit goes where the fit runs.
                with threadpool_limits(limits=self.threads):
                    member.estimator.fit(self._part(X, member), y)

            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="audioml-member") as pool:
                list(pool.map(fit, self.members))  # re-raises a member's error
        if self.task == "classification":
            self.classes_ = np.unique(y)
        self.n_features_in_ = len(self.columns)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(X), len(self.classes_)))
        for member, weight in zip(self.members, self.weights, strict=True):
            proba = np.asarray(member.estimator.predict_proba(self._part(X, member)), dtype=float)
            for j, c in enumerate(member.estimator.classes_):
                out[:, index[c]] += weight * proba[:, j]
        return out

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        parts = [
            weight * np.asarray(m.estimator.predict(self._part(X, m)), dtype=float)
            for m, weight in zip(self.members, self.weights, strict=True)
        ]
        return np.sum(parts, axis=0)
