"""Private attributes of Optuna are read in one adapter module, MLflow is used through its public
API, and the adapter still means what it assumes."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage

from runner.search.optuna_private import contains, frozen, stale_trial_ids, storage_of, trial_id

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"(?<!self)\.(_storage|_trial_id|_study_id|_contains)\b|_get_stale_trial_ids")


def test_no_other_module_reads_optunas_private_attributes() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for package in ("runner", "features")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "optuna_private.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []


def test_storage_keys_and_stale_heartbeats_on_a_real_rdb_storage(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    study.ask()  # trial 0: its key differs from its number in a second study below
    other = optuna.create_study(storage=storage)
    trial = other.ask()
    assert storage_of(other).get_heartbeat_interval() == 1  # Optuna's cache over ours
    assert trial_id(trial) != trial.number
    assert frozen(other, trial).number == trial.number
    storage.record_heartbeat(trial_id(trial))
    assert stale_trial_ids(other) == set()
    time.sleep(2.2)  # past the 1 s grace period
    assert stale_trial_ids(other) == {trial_id(trial)}
    assert stale_trial_ids(optuna.create_study()) == set()  # in memory: no heartbeats


def test_contains_follows_bounds_steps_and_choices() -> None:
    stepped = IntDistribution(1, 10, step=3)  # 1, 4, 7, 10
    assert [v for v in range(12) if contains(stepped, v)] == [1, 4, 7, 10]
    assert contains(FloatDistribution(1e-3, 1.0, log=True), 0.5)
    assert not contains(FloatDistribution(1e-3, 1.0, log=True), 2.0)
    assert contains(CategoricalDistribution(["rbf", "linear"]), "rbf")
    assert not contains(CategoricalDistribution(["rbf", "linear"]), "poly")


def test_no_module_reaches_into_mlflow_internals() -> None:
    """MLflow goes through its public API; the logged model and dataset input helpers in
    runner.tracking.mlflow_models replace a private entity call and a fluent-run workaround."""
    internal = re.compile(r"_to_mlflow_entity|mlflow\.utils\.mlflow_tags|end_run\(status=")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("runner", "features")
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if internal.search(line)
    ]
    assert offenders == []


def test_the_dataset_context_tag_is_mlflows() -> None:
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from runner.tracking.mlflow_models import DATASET_CONTEXT_TAG

    assert DATASET_CONTEXT_TAG == MLFLOW_DATASET_CONTEXT


def _private_imports(source: str) -> list[str]:
    """Imports in ``source`` of a dependency's private module or name (``from sklearn.utils
    import _x``, ``from librosa.core._y import z``); the project's own modules are exempt."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            if module.split(".")[0] in ("runner", "features", "__future__"):
                continue
            if any(part.startswith("_") for part in module.split(".")) or any(
                n.startswith("_") for n in names
            ):
                found.append(f"{module}: {', '.join(names) or module}")
    return found


def test_no_module_imports_a_dependencys_private_names() -> None:
    """Only the Optuna adapter above reaches past a dependency's public API."""
    offenders = [
        f"{path.relative_to(ROOT)}: {hit}"
        for package in ("runner", "features")
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in _private_imports(path.read_text())
    ]
    assert offenders == []


def test_the_private_import_check_can_fail() -> None:
    caught = """
from sklearn.utils import _safe_indexing
from librosa.core.pitch import (
    yin,
    _parabolic_interpolation,
)
from sklearn.utils._param_validation import Interval
import keras._tf_keras
"""
    allowed = """
from __future__ import annotations
from sklearn.utils.validation import check_is_fitted
from runner.models._base import inner_split
from features._registry import register_feature
from ._common import reader
"""
    assert len(_private_imports(caught)) == 4
    assert _private_imports(allowed) == []
