"""Load a spec file: merge it over the models' defaults, apply overrides, validate.

Errors become :class:`SpecError` messages in the one format of :func:`runner.errors.format_error`:
``experiments/x.yaml: search.sampler: 'tpee' is not one of tpe, random, cmaes, gp``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from runner.config.spec import ExperimentSpec
from runner.errors import SpecError, format_error, in_file
from runner.resources import shipped

__all__ = [
    "CONFIG_DIR",
    "apply_overrides",
    "deep_merge",
    "load_spec",
    "resolve_spec",
    "spec_hash",
]

#: configs/ of the checkout or of the installed package (see runner.resources).
CONFIG_DIR = shipped("configs")


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``over`` (lists and scalars are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str], *, source: str) -> dict:
    """Apply ``KEY=VALUE`` overrides (dotted keys, YAML-typed values) to ``raw``."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(
                format_error("--set", item, must="KEY=VALUE, e.g. search.n_trials=5", file=source)
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            why = getattr(exc, "problem", None) or "unreadable"
            raise SpecError(
                format_error(key, text, must=f"a YAML value ({why})", file=source)
            ) from None
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:  # an absent or null section is created
                node[part] = {}
            if not isinstance(node[part], dict):
                section = ".".join(parts[: i + 1])
                raise SpecError(
                    format_error(
                        section, node[part], must=f"a section of keys to set {key}", file=source
                    )
                )
            node = node[part]
        node[parts[-1]] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(format_error("", problem="spec file not found", file=path)) from None
    except OSError as exc:
        problem = f"cannot read spec file ({exc.strerror})"
        raise SpecError(format_error("", problem=problem, file=path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(format_error("", problem=f"not valid YAML: {exc}", file=path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(
            format_error("", problem=f"is a {kind}; a spec is a YAML mapping", file=path)
        )
    return data


def resolve_spec(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The raw resolved spec: the defaults (:func:`runner.config.defaults.defaults`), then the
    file, then the overrides."""
    from runner.config.defaults import defaults  # the models' defaults, as configs/ shows them

    path = Path(path)
    return apply_overrides(deep_merge(defaults(), _read_yaml(path)), overrides, source=str(path))


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentSpec:
    """Load and validate a spec file; raises :class:`SpecError` naming file and key."""
    from runner.config.checks import check_spec

    raw = resolve_spec(path, overrides)
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(in_file(path, _messages(exc.errors()))) from None
    check_spec(spec, source=path)  # what the schema cannot see: spaces, registry names, ...
    return spec


# Parts of a pydantic error location that name a member of a union, not a key.
_UNION_TAG = re.compile(
    r"^(literal\[.*\]|constrained-\w+|int|float|str|bool|none|function-\w+\[.*\])$"
)


def _messages(errors: list[Any]) -> list[str]:
    """One message per key: the errors of a union's members (``n_jobs``: 'auto' or an int
    >= 1) are one message saying what any member would take."""
    by_key: dict[str, list[Any]] = {}
    for err in errors:
        loc = [str(p) for p in err["loc"] if not isinstance(p, int) and not _UNION_TAG.match(p)]
        by_key.setdefault(".".join(loc), []).append(err)
    return [_message(key, errs) for key, errs in by_key.items()]


def _message(key: str, errs: list[Any]) -> str:
    err = errs[0]
    kind, value = err["type"], err.get("input")
    if len(errs) > 1:
        return format_error(key, value, must=" or ".join(_expected(e) for e in errs))
    if kind == "extra_forbidden":
        parent, name = key.rpartition(".")[::2]
        what = f"keys of {parent}" if parent else "top-level keys"
        return format_error(key, name, one_of=_allowed_keys(parent), what=what)
    if kind == "missing":
        return format_error(key, problem="required key is missing")
    if kind == "literal_error":
        return format_error(key, value, one_of=_literals(err))
    if kind == "value_error":  # a check_* rule: its message is already in the one format
        message = str(err["msg"]).removeprefix("Value error, ")
        return message if ": " in message else format_error(key, value, problem=message)
    return format_error(key, value, must=_expected(err))


def _expected(err: Mapping[str, Any]) -> str:
    """What a pydantic error says the value must be, in the words of the format."""
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}  # fmt: skip
    if kind in bounds:
        limit = next(iter(ctx.values()))
        # The limit's type is the field's (gt=0 of a float field is 0.0); 2 ** 32 stays exact.
        number = "a number" if isinstance(limit, float) else "an int"
        return (
            f"{number} {bounds[kind]} {limit:g}"
            if number == "a number"
            else (f"{number} {bounds[kind]} {limit}")
        )
    if kind == "literal_error":
        return " or ".join(repr(v) for v in _literals(err))
    if kind in ("too_short", "too_long"):
        items = "characters" if isinstance(value, str) else "items"
        least = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        if items == "items":
            return f"a list of {least} {limit} item{'' if limit == 1 else 's'}"
        return f"{least} {limit} {items}"
    if kind == "string_too_long":
        return f"a string of at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"a string matching {ctx.get('pattern')}"
    if kind.startswith("int_") or kind == "int_type":
        return "an int"
    if kind.startswith("bool_"):
        return "true or false"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "a mapping (a YAML section of keys)"
    message = str(err["msg"])
    return (
        message[len("Input should be ") :]
        if message.startswith("Input should be ")
        else (message[:1].lower() + message[1:])
    )


def _literals(err: Mapping[str, Any]) -> list[str]:
    # pydantic gives the choices as "'a', 'b' or 'c'".
    expected = str(err.get("ctx", {}).get("expected", ""))
    return [v.strip().strip("'") for v in expected.replace(" or ", ", ").split(",")]


def _allowed_keys(section: str) -> list[str]:
    """The keys of the spec section ``section`` (dotted; ``""``: the top level)."""
    model: type[BaseModel] = ExperimentSpec
    for part in filter(None, section.split(".")):
        field = model.model_fields.get(part)
        found = _spec_model(getattr(field, "annotation", None))
        if found is None:
            return []
        model = found
    return list(model.model_fields)


def _spec_model(annotation: object) -> type[BaseModel] | None:
    """The spec model an annotation holds: ``X`` or an optional ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in typing.get_args(annotation) if _spec_model(a) is not None]
    return models[0] if len(models) == 1 else None


def spec_hash(spec: ExperimentSpec, *, exclude_budget: bool = True) -> str:
    """A short stable hash of what makes trials comparable (budget and tracking excluded)."""
    data = spec.model_dump(mode="json")
    if exclude_budget:
        for key in ("n_trials", "timeout_s", "n_jobs", "parallel_trials", "fold_workers",
                    "ensemble", "drop_dominated"):  # fmt: skip
            data["search"].pop(key, None)
        data.pop("tracking", None)
        data.pop("register", None)
        data.pop("final", None)  # what the final step serves; the trials are the same
        for key in ("n_jobs", "cache_dir", "executor", "scheduler"):  # where, not what
            data["features"].pop(key, None)
        # Where the data lives differs per machine; its content is hashed by the data digest.
        data["data"].pop("root", None)
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
