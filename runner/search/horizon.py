"""A pruner that decides from the trials a window of side-by-side trials cannot change.

With ``w`` trials at a time told in trial-number order (:mod:`runner.search.trials`), trial ``n``
is asked right after trial ``n - w`` is told; the trials between may end at any moment of its
fit. A pruner that read them would decide by timing, so the same seed could prune different
trials. :class:`HorizonPruner` shows the pruner inside it only the trials numbered
``n - w`` or lower, which were told before trial ``n`` began. Uses Optuna's public
``BasePruner`` and ``Study.get_trials``; HyperbandPruner, which opens its own bracket
studies on the storage, is not wrapped (see ``runner.search.objective.make_pruner``).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["HorizonPruner"]


class HorizonPruner(BasePruner):
    """Prune as ``inner`` would, from the trials at least ``window`` numbers earlier."""

    def __init__(self, inner: BasePruner, window: int) -> None:
        self.inner, self.window = inner, window

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_Before(study, trial.number - self.window), trial)  # type: ignore[arg-type]


class _Before:
    """A read-only view of ``study`` holding the trials numbered ``last`` or lower."""

    def __init__(self, study: optuna.Study, last: int) -> None:
        self._study, self._last = study, last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None
    ) -> list[FrozenTrial]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.number <= self._last]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    @property
    def best_trial(self) -> FrozenTrial:
        done = [t for t in self.get_trials(False, (TrialState.COMPLETE,)) if t.value is not None]
        if not done:
            raise ValueError("No trials are completed yet.")  # what Study.best_trial raises
        pick = max if self._study.direction == StudyDirection.MAXIMIZE else min
        return pick(done, key=lambda t: t.value)
