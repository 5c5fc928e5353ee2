"""One source of defaults: the pydantic models. configs/defaults.yaml is their generated view,
and the default column of docs/spec.md's tables must state the same values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from runner.config.defaults import defaults, defaults_yaml
from runner.config.spec import ExperimentSpec

REPO = Path(__file__).resolve().parents[2]
SPEC_DOC = REPO / "docs" / "spec.md"
#: A table row: its key cell and its default cell.
_ROW = re.compile(r"^\| (.+?) \| (.+?) \| ")
_REQUIRED = object()


def test_shipped_defaults_file_is_generated_from_the_models() -> None:
    committed = (REPO / "configs" / "defaults.yaml").read_text(encoding="utf-8")
    assert committed == defaults_yaml(), "run: python -m runner.config.defaults --write"


def test_the_generated_file_holds_exactly_the_models_defaults() -> None:
    data = yaml.safe_load(defaults_yaml())
    assert data == defaults()
    data["name"] = "x"
    data["data"]["root"] = "somewhere"
    stated = ExperimentSpec.model_validate(data)
    bare = ExperimentSpec.model_validate({"name": "x", "data": {"root": "somewhere"}})
    assert stated.model_dump() == bare.model_dump()
    assert data["search"]["drop_dominated"] is None  # null: on when timeout_s is set
    assert data["features"]["max_duration_s"] == 600.0


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to values; an empty mapping (``filters: {}``) is a value, not a section."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def _documented() -> dict[str, str]:
    """docs/spec.md's default cells by dotted key. A table under ``## <section>`` names keys
    inside that section unless the heading is no section (``tracking and register`` writes
    them whole); a row may name several keys, its defaults then separated by commas."""
    rows: dict[str, str] = {}
    section = ""
    for line in SPEC_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        match = _ROW.match(line)
        if match is None or match[1] in ("key", "---"):
            continue
        keys = re.findall(r"`([^`]+)`", match[1])
        cells = [match[2]] if len(keys) == 1 else [f"`{c}`" for c in match[2].split(", ")]
        prefix = f"{section}." if section in defaults() else ""
        rows |= {prefix + key: cell for key, cell in zip(keys, cells, strict=True)}
    return rows


def _stated(cell: str, names: set[str]) -> Any:
    """The value a default cell states: ``required``; ``—`` (none: null); another key's name
    (it falls back to that key: null); a YAML value in backticks; else a list written out."""
    cell = cell.strip()
    if cell == "required":
        return _REQUIRED
    bare = cell[1:-1] if re.fullmatch(r"`[^`]*`", cell) else cell
    if cell.startswith("—") or bare in names:
        return None
    if bare != cell:
        return yaml.safe_load(bare)
    return [item.strip() for item in cell.split(",")]


def test_the_spec_docs_state_the_models_defaults() -> None:
    documented = _documented()
    names = {key.rsplit(".", 1)[-1] for key in documented}
    actual = _flat(defaults())
    wrong = []
    for key, cell in documented.items():
        stated = _stated(cell, names)
        if stated is _REQUIRED:
            if key in actual:
                wrong.append(f"{key}: documented as required, defaults to {actual[key]!r}")
        elif key not in actual or actual[key] != stated:
            wrong.append(f"{key}: documented {cell}, defaults to {actual.get(key, '<none>')!r}")
    assert not wrong, "docs/spec.md disagrees with the models:\n" + "\n".join(wrong)
    missing = sorted(set(actual) - set(documented))
    assert not missing, f"keys without a row in docs/spec.md: {', '.join(missing)}"
