"""Search-space narrowing: configs/search_spaces/<family>.yaml, then ``search.spaces``.

Both layers may only narrow a family's declared space: a numeric range ``[low, high]`` (or
``{low: .., high: ..}``) inside the current bounds, a subset of categorical choices, or a
single value that fixes the parameter. Anything else is a ``SpecError`` naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.errors import SpecError, format_error
from runner.models._registry import ModelFamily
from runner.resources import shipped

__all__ = ["SEARCH_SPACES_DIR", "narrow_space", "resolve_space"]

SEARCH_SPACES_DIR = shipped("configs", "search_spaces")

Numeric = FloatDistribution | IntDistribution

#: What a refused value may do instead: the hint of every message about a value.
_NARROWING = "only narrowing is allowed"


def resolve_space(
    family: ModelFamily,
    task: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    config_dir: Path | None = None,
) -> dict[str, BaseDistribution]:
    """The family's space for ``task``, narrowed by its YAML file, then by ``overrides``.

    Args:
        family: the model family.
        task: ``"classification"`` or ``"regression"``.
        overrides: the spec's ``search.spaces[<family>]`` mapping, e.g. ``{"C": [0.1, 10]}``.
        config_dir: where ``<family>.yaml`` files live (default: configs/search_spaces).

    Returns:
        Optuna distributions by unprefixed parameter name.

    Raises:
        SpecError: an unknown parameter, or a value that would widen the space.
    """
    space = family.space(task)
    path = (config_dir or SEARCH_SPACES_DIR) / f"{family.name}.yaml"
    shown = str(path) if config_dir else f"configs/search_spaces/{path.name}"
    from_file: dict[str, Any] = {}
    if path.is_file():
        from_file = _load_file(path, shown)
        # A file serves every task of the family: skip names only another task's space has.
        others = set().union(*(family.space(t) for t in family.tasks)) - set(space)
        from_file = {k: v for k, v in from_file.items() if k not in others}
        space = narrow_space(space, from_file, where="", family=family.name, task=task, file=shown)
    if overrides:
        where = f"search.spaces.{family.name}."
        hint = _NARROWING
        if from_file:  # say where the tighter bounds come from, or the message looks wrong
            hint += f", and {shown} narrows {', '.join(from_file)}"
        space = narrow_space(
            space, overrides, where=where, family=family.name, task=task, hint=hint
        )
    return space


def narrow_space(
    space: Mapping[str, BaseDistribution],
    overrides: Mapping[str, Any],
    *,
    where: str,
    family: str = "",
    task: str = "",
    hint: str = _NARROWING,
    file: str | None = None,
) -> dict[str, BaseDistribution]:
    """Return a copy of ``space`` with each parameter in ``overrides`` narrowed.

    Args:
        space: the distributions to narrow.
        overrides: parameter name to range, choices or fixed value.
        where: prefix of the key shown in messages (``"search.spaces.svm."``).
        family: family name shown when a parameter is unknown.
        task: task shown when a parameter is unknown.
        hint: what to do, shown after a refused value (with where tighter bounds come from).
        file: the file ``overrides`` come from, shown before the key (a search-space file).

    Raises:
        SpecError: an unknown parameter or a widening value.
    """
    narrowed = dict(space)
    for name, value in overrides.items():
        if name not in space:
            raise SpecError(
                format_error(
                    f"{where}{name}", name, one_of=sorted(space),
                    what=f"parameters of model family '{family}' for task '{task}'", file=file,
                )
            )  # fmt: skip
        key = f"{where}{name}"
        current = space[name]
        if isinstance(current, CategoricalDistribution):
            narrowed[name] = _narrow_choices(current, value, key, hint, file)
        elif isinstance(current, FloatDistribution | IntDistribution):
            narrowed[name] = _narrow_range(current, value, key, hint, file)
        else:  # a family declared a custom distribution: it cannot be narrowed safely
            problem = "names a parameter that cannot be narrowed"
            raise SpecError(format_error(key, value, problem=problem, file=file))
    return narrowed


def _load_file(path: Path, shown: str) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        must = "a mapping of parameter names to ranges"
        raise SpecError(format_error("", data, must=must, file=shown))
    return data


def _describe(dist: Numeric) -> str:
    kind = "an int" if isinstance(dist, IntDistribution) else "a float"
    scale = ", log scale" if dist.log else ""
    return f"{kind} range [low, high] or a single value within [{dist.low}, {dist.high}]{scale}"


def _narrow_range(dist: Numeric, value: Any, key: str, hint: str, file: str | None) -> Numeric:
    """Narrow a numeric distribution, keeping its log scale and step."""
    bounds = _as_bounds(dist, value)
    is_int = isinstance(dist, IntDistribution)
    valid = bounds is not None and all(
        isinstance(b, int | float)
        and not isinstance(b, bool)
        and math.isfinite(b)
        and (not is_int or float(b).is_integer())
        for b in bounds
    )
    if not valid or not dist.low <= bounds[0] <= bounds[1] <= dist.high:
        raise SpecError(format_error(key, value, must=_describe(dist), hint=hint, file=file))
    if is_int:
        return IntDistribution(int(bounds[0]), int(bounds[1]), log=dist.log, step=dist.step)
    return FloatDistribution(float(bounds[0]), float(bounds[1]), log=dist.log, step=dist.step)


def _as_bounds(dist: Numeric, value: Any) -> tuple[Any, Any] | None:
    """``[low, high]``, ``{low:, high:}`` or a scalar as a (low, high) pair; None if neither."""
    if isinstance(value, list | tuple):
        return (value[0], value[1]) if len(value) == 2 else None
    if isinstance(value, Mapping):
        if not set(value) <= {"low", "high"}:
            return None
        return value.get("low", dist.low), value.get("high", dist.high)
    return value, value


def _narrow_choices(
    dist: CategoricalDistribution, value: Any, key: str, hint: str, file: str | None
) -> BaseDistribution:
    """Keep a non-empty subset of the choices, in the order given."""
    wanted = list(value) if isinstance(value, list | tuple) else [value]
    unique = list(dict.fromkeys(wanted))
    if not unique or any(choice not in dist.choices for choice in unique):
        choices = ", ".join(map(str, dist.choices))
        raise SpecError(
            format_error(
                key, value, must=f"one of {choices}, or a list of them", hint=hint, file=file,
            )
        )  # fmt: skip
    return CategoricalDistribution(unique)
