"""Load a spec file: merge it over configs/defaults.yaml, apply overrides, validate.

Errors become :class:`SpecError` messages of the form
``experiments/x.yaml: search.metric: 'mae' does not fit task 'classification'; choose ...``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from runner.config.spec import ExperimentSpec
from runner.errors import SpecError
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
        if not sep or not key.strip():
            raise SpecError(
                f"{source}: --set '{item}': expected KEY=VALUE, e.g. search.n_trials=5"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise SpecError(f"{source}: --set {key}: value is not valid YAML ({exc})") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"{source}: --set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping, got {type(data).__name__}")
    return data


def resolve_spec(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The raw resolved spec: defaults, then the file, then the overrides."""
    path = Path(path)
    defaults = _read_yaml(shipped("configs", "defaults.yaml"))
    return apply_overrides(deep_merge(defaults, _read_yaml(path)), overrides, source=str(path))


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentSpec:
    """Load and validate a spec file; raises :class:`SpecError` naming file and key."""
    from runner.config.checks import check_spec

    raw = resolve_spec(path, overrides)
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {_format_error(err)}" for err in exc.errors()]
        raise SpecError("\n".join(lines)) from None
    check_spec(spec, source=path)  # what the schema cannot see: spaces, registry names, ...
    return spec


def _format_error(err: Mapping[str, Any]) -> str:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"{key}: unknown key '{loc[-1]}'; choose one of {', '.join(allowed)}"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind == "literal_error":
        expected = (
            str(err.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        )
        return f"{key}: {err['input']!r} is not allowed; choose one of {expected}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if message.split(":", 1)[0].count(".") and ":" in message:
        return message  # cross-field checks already start with their dotted key
    return f"{key}: {message} (got {err.get('input')!r})" if key else message


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = ExperimentSpec
    for part in loc:
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
