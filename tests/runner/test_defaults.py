"""One source of defaults: the pydantic models. configs/defaults.yaml is their generated view."""

from __future__ import annotations

from pathlib import Path

import yaml

from runner.config.defaults import defaults, defaults_yaml
from runner.config.spec import ExperimentSpec

REPO = Path(__file__).resolve().parents[2]


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
