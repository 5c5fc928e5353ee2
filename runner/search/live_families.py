"""A sampler that never draws a dropped model family.

A dropped family (failing, or dominated by cost: ``runner.search.objective.dropped_families``) is
skipped when drawn, and a skipped draw is told FAIL, which TPE leaves out of its model: it
kept drawing a dropped family whose trials had scored well, and on the demo spec at a 30 s
budget half the draws were skips. :class:`LiveFamilies` wraps the spec's sampler: when it
draws a dropped family (``model``), a live family takes its place, chosen by a generator
seeded with the spec's seed and the trial number, and that draw's parameters of the dropped
family are left to be sampled for the live one. Nothing changes while no family is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["FAMILY_PARAM", "LiveFamilies"]

FAMILY_PARAM = "model"


class LiveFamilies(BaseSampler):
    """``inner``, with its draws of a family in ``dropped(study)`` replaced by a live one.

    Args:
        inner: the spec's sampler; every call is delegated to it.
        families: the spec's families, in its order.
        dropped: the families dropped so far (read from the study's told trials).
        seed: the spec's seed.
    """

    def __init__(
        self,
        inner: BaseSampler,
        families: Sequence[str],
        dropped: Callable[[optuna.Study], Collection[str]],
        seed: int,
    ) -> None:
        self.inner, self.families, self.dropped, self.seed = inner, list(families), dropped, seed

    def _live(self, study: optuna.Study, trial: FrozenTrial, family: Any) -> Any:
        """``family``, or a live one in its place when it is dropped (and one is live)."""
        gone = self.dropped(study)
        live = [f for f in self.families if f not in gone]
        if family not in gone or not live:
            return family
        rng = np.random.default_rng([self.seed, trial.number])
        return live[int(rng.integers(len(live)))]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = self.inner.sample_relative(study, trial, search_space)
        drawn = params.get(FAMILY_PARAM)
        if drawn is None:
            return params
        family = self._live(study, trial, drawn)
        if family != drawn:
            params = {k: v for k, v in params.items() if not k.startswith(f"{drawn}.")}
            params[FAMILY_PARAM] = family
        return params

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = self.inner.sample_independent(study, trial, param_name, param_distribution)
        return self._live(study, trial, value) if param_name == FAMILY_PARAM else value

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
