"""Warm start: a new study first tries a portfolio of configurations that did well.

A short budget would otherwise go to the sampler's random start-up over wide spaces. The
portfolio (``configs/portfolio.yaml``) is an ordered list per task of ``family: params``
entries, measured on the benchmark corpora (benchmarks/bench_portfolio.py): cheap strong
configurations first, so a budget cut after a few trials still ends with a good model.
Entries of families the spec does not search are left out; a searched family the portfolio
does not name (a new family, keras) follows with its own ``ModelFamily.warm_start`` sets,
in the order of ``search.models``. Everything is enqueued once per study, before any trial
is claimed, and Optuna hands waiting trials out oldest first, so the enqueue order is the
trial order (trials asked in batches included). A value outside the spec's (narrowed) space
is left to the sampler, and a searched feature group is kept. ``search.warm_start: false``
switches it all off.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution

from runner import attrs
from runner.config.spec import ExperimentSpec
from runner.errors import SpecError, format_error
from runner.models import MODELS, ModelFamily, ensure_loaded, get_family, resolve_space
from runner.resources import shipped
from runner.search.objective import SearchData
from runner.search.optuna_private import contains
from runner.stores.lock import StudyLock

__all__ = ["WARM_ATTR", "enqueue_warm_start", "portfolio", "trial_params", "warm_start_params"]

WARM_ATTR = attrs.WARM_STARTED


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    return contains(dist, value)


def _fits(space: dict, name: str, value: Any) -> bool:
    return name in space and _inside(space[name], value)


@functools.cache
def portfolio(task: str, path: Path | None = None) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """The portfolio of ``task``: ``(family, params)`` pairs in trial order.

    Args:
        task: ``"classification"`` or ``"regression"``.
        path: the portfolio file; the shipped ``configs/portfolio.yaml`` when None.

    Raises:
        SpecError: an entry names an unknown family, one that does not support ``task``, a
            parameter its space lacks, or a value outside its full space.
    """
    path = path or shipped("configs", "portfolio.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    out = []
    ensure_loaded()
    for i, entry in enumerate((data or {}).get(task, [])):
        key = f"{task}[{i}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            must = "one 'family: {param: value}' per entry"
            raise SpecError(format_error(key, entry, must=must, file=path))
        [(name, params)] = entry.items()
        fitting = sorted(n for n, f in MODELS.items() if f.supports(task))
        if name not in fitting:
            what = f"model families of task '{task}'"
            raise SpecError(format_error(key, name, one_of=fitting, what=what, file=path))
        space = get_family(name, task).space(task)
        bad = [k for k, v in (params or {}).items() if not _fits(space, k, v)]
        if bad:
            where, what = f"{key}.{name}", f"parameters of {name}"
            if bad[0] not in space:
                raise SpecError(
                    format_error(where, bad[0], one_of=sorted(space), what=what, file=path)
                )
            value, must = params[bad[0]], f"in the space of {name}: {space[bad[0]]}"
            raise SpecError(format_error(f"{where}.{bad[0]}", value, must=must, file=path))
        out.append((name, dict(params or {})))
    return tuple(out)


def trial_params(
    spec: ExperimentSpec, data: SearchData, family: ModelFamily, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The flat trial parameters (``model``, ``family.param``, ``features.g``) of one
    configuration: values outside the spec's space are left out (the sampler picks them),
    and every searched feature group is on."""
    space = resolve_space(family, spec.task, spec.search.spaces.get(family.name))
    params: dict[str, Any] = {"model": family.name}
    params |= {f"{family.name}.{k}": v for k, v in config.items() if _fits(space, k, v)}
    if spec.search.feature_groups:
        groups = family.input.selectable_groups(data.groups, data.roles)
        params |= {f"features.{g}": True for g in groups}
    return params


def warm_start_params(spec: ExperimentSpec, data: SearchData) -> list[dict[str, Any]]:
    """The flat trial parameters to try first, in trial order: the portfolio's entries of
    the searched families, then each searched family the portfolio leaves out with its own
    ``warm_start`` sets."""
    searched = spec.search.models
    configs = [(name, params) for name, params in portfolio(spec.task) if name in searched]
    named = {name for name, _ in configs}
    for name in searched:
        if name not in named:
            configs += [(name, dict(start)) for start in get_family(name, spec.task).warm_start]
    out: list[dict[str, Any]] = []
    for name, config in configs:
        params = trial_params(spec, data, get_family(name, spec.task), config)
        if params not in out:  # two entries can meet once a narrowed space drops values
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
