"""Warm start: a new study first tries each family's known-good parameter sets.

A short budget would otherwise go to the sampler's random start-up over wide spaces. The
sets (``ModelFamily.warm_start``) are enqueued once per study, in the order of
``search.models``, before any trial is claimed; a value outside the spec's (narrowed) space
is left to the sampler, and a searched feature group is kept.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from runner.models import get_family, resolve_space
from runner.search import SearchData
from runner.spec import ExperimentSpec
from runner.study import StudyLock

__all__ = ["WARM_ATTR", "enqueue_warm_start", "warm_start_params"]

WARM_ATTR = "warm_start_enqueued"


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


def _fits(space: dict, name: str, value: Any) -> bool:
    return name in space and _inside(space[name], value)


def warm_start_params(spec: ExperimentSpec, data: SearchData) -> list[dict[str, Any]]:
    """The flat trial parameters (``model``, ``family.param``, ``features.g``) to try first."""
    out = []
    for name in spec.search.models:
        family = get_family(name, spec.task)
        space = resolve_space(family, spec.task, spec.search.spaces.get(name))
        groups = family.input.selectable_groups(data.groups, data.roles)
        for start in family.warm_start:
            params: dict[str, Any] = {"model": name}
            params |= {f"{name}.{k}": v for k, v in start.items() if _fits(space, k, v)}
            if spec.search.feature_groups:
                params |= {f"features.{g}": True for g in groups}
            out.append(params)
    return out


def enqueue_warm_start(
    study: optuna.Study, spec: ExperimentSpec, data: SearchData, lock: StudyLock
) -> int:
    """Enqueue the warm-start trials of a new study (once, whoever opens it first);
    returns how many were enqueued here."""
    if not spec.search.warm_start:
        return 0
    with lock:
        if study.user_attrs.get(WARM_ATTR) is not None or study.get_trials(deepcopy=False):
            return 0
        params = warm_start_params(spec, data)
        for p in params:
            study.enqueue_trial(p, user_attrs={"warm_start": True})
        study.set_user_attr(WARM_ATTR, len(params))
    return len(params)
