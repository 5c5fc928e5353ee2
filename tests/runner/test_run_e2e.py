"""`audioml run` end to end on a synthetic corpus, against a real SQLite MLflow store and a
real Optuna storage; everything asserted through MlflowClient and the study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.data.demo_data import synthesize_corpus

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"

pytestmark = pytest.mark.slow


def _run(workdir: Path, *extra: str) -> int:
    return main(["run", str(DEMO), "-q", "--set", f"data.root={workdir / 'corpus'}", *extra])


@pytest.fixture
def corpus(workdir: Path) -> Path:
    return synthesize_corpus(workdir / "corpus", clips_per_class=12, duration_s=2.0)


def _runs(client: MlflowClient, name: str):
    exp = client.get_experiment_by_name(name)
    assert exp is not None, f"no experiment {name}"
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "trial_number" in r.data.tags]  # not the ensemble run
    return parents, children


def test_run_logs_parent_children_and_registers(workdir: Path, corpus: Path) -> None:
    code = _run(
        workdir,
        "--set",
        "search.n_trials=6",
        "--set",
        "search.cv.folds=3",
        "--set",
        "search.pruner=none",
        "--set",
        "features.n_jobs=1",
    )
    assert code == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    parents, children = _runs(client, "demo")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    keys = {frozenset(c.data.metrics) for c in children}
    assert len(keys) == 1, "every child run has the same metric keys"
    assert {"cv_f1_macro_mean", "cv_f1_macro_std", "fold_accuracy", "fit_time_s"} <= set(
        next(iter(keys))
    )
    done = [c for c in children if c.data.tags["state"] == "COMPLETE"]
    assert done
    history = client.get_metric_history(done[0].info.run_id, "fold_f1_macro")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert all(c.info.run_name.startswith("trial-") for c in children)
    # parent: tags, params, test metrics, artifacts
    assert parent.data.tags["spec_hash"] and parent.data.tags["data_digest"]
    assert parent.data.params["search.n_trials"] == "6"
    assert 0.0 <= parent.data.metrics["test_f1_macro"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "leaderboard.csv",
        "search_space.json",
        "feature_table_schema.json",
        "spec",
    } <= artifacts
    final = {a.path for a in client.list_artifacts(parent.info.run_id, "final")}
    assert "final/confusion_matrix.png" in final
    child_artifacts = {a.path for a in client.list_artifacts(done[0].info.run_id)}
    assert "confusion_matrix_oof.svg" in child_artifacts
    # registry: a version with alias champion and test/CV tags
    version = client.get_model_version_by_alias("demo-audio-classifier", "champion")
    assert version.tags["run_id"] == parent.info.run_id
    assert float(version.tags["test_f1_macro"]) == pytest.approx(
        parent.data.metrics["test_f1_macro"]
    )
    # the study lives beside the store, with every trial finished
    study_name = parent.data.tags["study_name"]
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{workdir / 'optuna.db'}")
    assert len(study.trials) == 6


def test_rerun_resumes_study_and_alias_gate(workdir: Path, corpus: Path) -> None:
    common = ["--set", "search.cv.folds=3", "--set", "features.n_jobs=1"]
    assert _run(workdir, "--set", "search.n_trials=3", *common) == 0
    assert _run(workdir, "--set", "search.n_trials=5", *common) == 0
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == 1, "same spec and data: the study is resumed, not recreated"
    assert summaries[0].n_trials == 5
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    versions = client.search_model_versions("name='demo-audio-classifier'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("demo-audio-classifier", "champion")
    roles = {v.version: v.tags.get("role") for v in versions}
    assert roles[champion.version] == "champion"
    scores = {v.version: float(v.tags["test_f1_macro"]) for v in versions}
    assert scores[champion.version] == max(scores.values())


def test_missing_data_exits_2_without_creating_a_run(workdir: Path) -> None:
    code = main(["run", str(DEMO), "-q", "--set", f"data.root={workdir / 'absent'}"])
    assert code == 2
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert client.get_experiment_by_name("demo") is None


def test_demo_command_end_to_end(workdir: Path) -> None:
    """`audioml demo` as the README runs it (fewer trials): the store holds one experiment
    with one parent, at least 5 nested children with the same metric keys, and a champion."""
    code = main(["demo", "-q", "--out", str(workdir / "demo-data"), "--set", "search.n_trials=5"])
    assert code == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    parents, children = _runs(client, "demo")
    assert len(parents) == 1 and len(children) >= 5
    assert len({frozenset(c.data.metrics) for c in children}) == 1
    assert client.get_model_version_by_alias("demo-audio-classifier", "champion")


def test_mlflow_run_demo_entry_point(workdir: Path) -> None:
    """`mlflow run . -e demo --env-manager local`: the launched run becomes the parent."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        "demo",
        "--env-manager",
        "local",
        "--experiment-name",
        "demo",
        "-P",
        f"out={workdir / 'demo-data'}",
    ]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    parents, children = _runs(client, "demo")
    assert len(parents) == 1 and len(children) >= 5
    assert parents[0].info.status == "FINISHED"
    assert client.get_model_version_by_alias("demo-audio-classifier", "champion")
