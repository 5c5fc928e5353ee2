"""The estimator of a stacked candidate: base members (refit or bagged trials) whose
predictions, optionally beside the audio feature columns, feed a small fitted stacker.

The stacker was fitted on the members' out-of-fold predictions (``runner.final.stacking``); ``fit``
fits the base members only (a bagged member is already fitted). Imported when the final
model is built and when a logged model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from runner.models._weighted_ensemble import EnsembleMember, WeightedEnsemble

__all__ = ["StackedModel", "stack_inputs"]


def stack_inputs(outputs: Sequence[np.ndarray], passthrough: np.ndarray | None) -> np.ndarray:
    """The stacker's input: each member's probabilities (in the class order) or predictions
    side by side, then the passed-through feature columns. Training (on out-of-fold values)
    and prediction build it here, so the two cannot differ."""
    parts = [np.asarray(o, dtype=float).reshape(len(o), -1) for o in outputs]
    if passthrough is not None:
        parts.append(np.asarray(passthrough, dtype=float))
    return np.hstack(parts)


class StackedModel(WeightedEnsemble):
    """Members' predictions -> a fitted stacker.

    Args:
        members: the base members, unfitted (refit form) or bagged (already fitted).
        columns: the union of the members' and the passed-through columns, in table order.
        task: ``"classification"`` or ``"regression"``.
        stacker: the second layer, fitted on the members' out-of-fold predictions.
        passthrough: audio feature columns the stacker also reads (empty: none).
        classes: the training classes, the order of each member's probability columns.
        n_jobs: members fitted side by side; ``threads``: each one's native threads.
    """

    def __init__(
        self,
        members: Sequence[EnsembleMember],
        columns: Sequence[str],
        task: str,
        stacker: Any,
        passthrough: Sequence[str] = (),
        classes: Sequence | None = None,
        n_jobs: int = 1,
        threads: int = 1,
    ) -> None:
        super().__init__(
            members, [1.0 / len(members)] * len(members), columns, task, n_jobs, threads
        )
        self.stacker = stacker
        self.passthrough = list(passthrough)
        self.classes = None if classes is None else list(classes)

    def fit(self, X: Any, y: Any) -> StackedModel:
        super().fit(X, y)
        if self.task == "classification":
            self.classes_ = np.asarray(self.classes)
        return self

    def stack_features(self, X: Any) -> np.ndarray:
        """What the stacker reads for the rows of ``X``."""
        from runner.models._predict import predict_rows

        outputs = []
        for member in self.members:
            pred, proba = predict_rows(
                member.estimator, self._part(X, member), task=self.task, classes=self.classes
            )
            outputs.append(pred if proba is None else proba)
        return stack_inputs(outputs, self._passed(X) if self.passthrough else None)

    def _passed(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            return X[self.passthrough].to_numpy(np.float64)
        position = {c: i for i, c in enumerate(self.columns)}
        return np.asarray(X, dtype=float)[:, [position[c] for c in self.passthrough]]

    def _predict_proba(self, X: Any) -> np.ndarray:
        proba = np.asarray(self.stacker.predict_proba(self.stack_features(X)), dtype=float)
        index = {c: i for i, c in enumerate(self.classes_)}
        out = np.zeros((len(proba), len(self.classes_)))
        for j, c in enumerate(self.stacker.classes_):
            out[:, index[c]] = proba[:, j]
        return out

    def _predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.stacker.predict(self.stack_features(X)), dtype=float)
