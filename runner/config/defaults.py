"""The spec's defaults, read from the pydantic models: their one source.

``configs/defaults.yaml`` is the shipped, commented view of them, written by this module
(``python -m runner.config.defaults --write``); ``tests/runner/test_defaults.py`` fails when
the committed file differs from the models.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import PydanticUndefined

from runner.config.spec import ExperimentSpec
from runner.resources import shipped

__all__ = ["defaults", "defaults_yaml"]

_HEADER = (
    "# The default of every spec key, generated from the pydantic models (runner/config/spec.py,\n"
    "# features/config.py) by `python -m runner.config.defaults --write`: edit those, not this.\n"
    "# A spec in experiments/ states only what differs.\n"
)


def _section(model: type[BaseModel]) -> dict[str, Any]:
    """Every key of ``model`` that has a default, nested sections as dicts."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out[name] = _section(sub)  # a section: the defaults of its keys (data has no default)
        elif field.default is not PydanticUndefined or field.default_factory is not None:
            out[name] = field.get_default(call_default_factory=True)
    return out


def defaults() -> dict[str, Any]:
    """The spec's defaults as a raw spec mapping (sections of the data model included)."""
    return _section(ExperimentSpec)


def _comments(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for name, field in model.model_fields.items():
        if field.description:
            found[prefix + name] = field.description
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            found |= _comments(sub, f"{prefix}{name}.")
    return found


def defaults_yaml() -> str:
    """``configs/defaults.yaml`` as the models make it: every default, each key's
    description as its comment."""
    notes = _comments(ExperimentSpec)
    lines = [_HEADER.rstrip("\n")]

    def emit(data: dict[str, Any], prefix: str, indent: str) -> None:
        for key, value in data.items():
            note = notes.get(prefix + key)
            if isinstance(value, dict) and value:
                lines.append(f"{indent}{key}:" + (f"  # {note}" if note else ""))
                emit(value, f"{prefix}{key}.", indent + "  ")
                continue
            text = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000)
            text = text.strip().removeprefix("{").removesuffix("}")
            lines.append(f"{indent}{text}" + (f"  # {note}" if note else ""))

    data = defaults()
    for key in data:
        if isinstance(data[key], dict) and data[key]:
            lines.append("")
        emit({key: data[key]}, "", "")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the generated defaults, or with ``--write`` rewrite configs/defaults.yaml."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        shipped("configs", "defaults.yaml").write_text(defaults_yaml(), encoding="utf-8")
    else:
        sys.stdout.write(defaults_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
