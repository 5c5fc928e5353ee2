"""Shared fixtures: a seeded RNG and an isolated working directory with its own stores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: mlflow.db, optuna.db and the feature cache land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def temporary_family():
    """Register model families for one test (``register(name, build, **fields)``); removed
    after it."""
    from optuna.distributions import IntDistribution

    from runner.models import MODELS, ModelFamily, register_family

    added: list[str] = []

    def register(name: str, build, tasks: tuple[str, ...] = ("classification",), **fields):
        family = ModelFamily(
            name=name, tasks=frozenset(tasks), build=build,
            space=lambda task: {"x": IntDistribution(1, 3)}, **fields,
        )  # fmt: skip
        added.append(name)
        return register_family(family)

    yield register
    for name in added:
        MODELS.pop(name, None)
