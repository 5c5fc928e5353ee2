"""Every MLproject entry point through the real `mlflow run . --env-manager local`.

The project URI is the checkout; the tracking store is a SQLite file in tmp_path (handed down
in MLFLOW_TRACKING_URI, as a user's shell would), and everything is asserted through
MlflowClient. The spec points at a freshly synthesized demo corpus and at a feature cache
shared by the module, so only the first launch extracts features.

The `mlflow run` lines of the README and docs/ name `--experiment-name`, an entry point and
parameters the MLproject declares; a study resumed in another experiment is reported.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from runner.data.demo_data import synthesize_corpus
from runner.session.session import experiment_mismatch
from runner.tracking.tracker import Tracker

REPO = Path(__file__).resolve().parents[2]
MODEL = "mlproject-demo"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """experiments/demo.yaml pointed at a tiny corpus, with a test's budget."""
    base = tmp_path_factory.mktemp("mlproject")
    corpus = synthesize_corpus(base / "corpus", clips_per_class=8, duration_s=2.0)
    raw = yaml.safe_load((REPO / "experiments" / "demo.yaml").read_text(encoding="utf-8"))
    raw["data"]["root"] = str(corpus)
    raw["features"].update(cache_dir=str(base / "cache"), n_jobs=1)
    raw["search"].update(
        models=["logistic"], n_trials=2, timeout_s=300, cv={"folds": 2}, pruner="none"
    )
    raw["register"]["model_name"] = MODEL
    path = base / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _mlflow_run(
    workdir: Path, entry: str, *params: str, background: bool = False, experiment: str = ""
) -> subprocess.CompletedProcess | subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", entry, "--env-manager", "local"]
    cmd += [a for p in params for a in ("-P", p)]
    cmd += ["--experiment-name", experiment] if experiment else []
    if background:
        return subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def _all_runs(client: MlflowClient) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=500)


def _parent_and_children(client: MlflowClient) -> tuple:
    runs = _all_runs(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if "trial_number" in r.data.tags]  # not the ensemble run
    return parents[0], children


@pytest.mark.parametrize(
    ("params", "n_trials", "timeout_s"),
    [
        pytest.param((), 2, 300.0, id="no-overrides"),
        pytest.param(("trials=3",), 3, 300.0, id="trials"),
        pytest.param(("timeout=30",), 2, 30.0, id="timeout"),
        pytest.param(("trials=3", "timeout=40"), 3, 40.0, id="trials-and-timeout"),
    ],
)
def test_main_ends_in_a_registered_model(
    workdir: Path, spec: Path, params: tuple[str, ...], n_trials: int, timeout_s: float
) -> None:
    done = _mlflow_run(workdir, "main", f"spec={spec}", *params)
    assert done.returncode == 0, done.stderr[-3000:]
    client = _client(workdir)
    parent, children = _parent_and_children(client)
    # The run `mlflow run` launched is the parent; the overrides reached the spec.
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.project.entryPoint"] == "main"
    assert parent.data.params["search.n_trials"] == str(n_trials)
    assert float(parent.data.params["search.timeout_s"]) == timeout_s
    assert len(children) == n_trials
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags["run_id"] == parent.info.run_id


def test_features_builds_the_cache(workdir: Path, spec: Path) -> None:
    done = _mlflow_run(workdir, "features", f"spec={spec}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rows=16" in done.stdout  # 8 whole clips per class
    run = _all_runs(_client(workdir))[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "features"
    assert any((spec.parent / "cache").iterdir())


def test_validate_passes_a_good_spec_and_fails_a_bad_one(workdir: Path, spec: Path) -> None:
    done = _mlflow_run(workdir, "validate", "spec=genre", experiment="genre")  # as the README
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ok {REPO / 'experiments' / 'genre.yaml'}" in done.stdout
    filed = _client(workdir).get_experiment_by_name("genre")
    assert [r.info.status for r in _client(workdir).search_runs([filed.experiment_id])] == [
        "FINISHED"
    ]
    _client(workdir).delete_experiment(filed.experiment_id)  # the statuses below: two runs
    done = _mlflow_run(workdir, "validate", f"spec={spec}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ok {spec}" in done.stdout
    bad = workdir / "bad.yaml"
    bad.write_text(spec.read_text().replace(f"model_name: {MODEL}", "model_name: a/b"))
    done = _mlflow_run(workdir, "validate", f"spec={bad}")
    assert done.returncode != 0
    assert "register.model_name" in done.stdout
    statuses = sorted(r.info.status for r in _all_runs(_client(workdir)))
    assert statuses == ["FAILED", "FINISHED"]


def test_worker_joins_the_study_of_a_run(workdir: Path, spec: Path) -> None:
    """The worker is launched first and waits; then `audioml run` starts the study. Both
    claim trials of one budget, logged under the run's parent, finalized once."""
    slow = workdir / "slow.yaml"
    raw = yaml.safe_load(spec.read_text())
    # Forests take long enough per trial that the worker, polling every second, gets some.
    raw["search"].update(models=["random_forest"], n_trials=8)
    slow.write_text(yaml.safe_dump(raw, sort_keys=False))
    # The storage the run uses by default (beside mlflow.db), named: the parameter is passed.
    storage = f"storage=sqlite:///{workdir / 'optuna.db'}"
    worker = _mlflow_run(workdir, "worker", f"spec={slow}", "wait_s=300", storage, background=True)
    try:
        time.sleep(2)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        run = subprocess.run(
            [sys.executable, "-m", "runner", "run", str(slow), "-q"],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        out, _ = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out[-3000:]
    assert "worker joined study" in out
    client = _client(workdir)
    runs = _all_runs(client)
    launched = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "worker"]
    assert len(launched) == 1 and launched[0].info.status == "FINISHED"
    version = client.get_model_version_by_alias(MODEL, "champion")
    parent = client.get_run(version.tags["run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children = [r for r in children if "trial_number" in r.data.tags]
    assert len(children) == 8
    ran = int(out.split("worker done: ran ")[1].split(" ")[0])
    assert 1 <= ran < 8


# ---- the documented lines, and a study that changes experiment -----------------------------


def _documented_mlflow_runs() -> list[tuple[str, str]]:
    """Every `mlflow run` command of README.md and docs/*.md: (file, command), continuation
    lines joined; both fenced blocks and inline code."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in re.finditer(r"(mlflow run \. [^`\n#]*)", text):
            found.append((path.name, match.group(1).strip()))
    return found


def test_documented_mlflow_run_lines_name_the_experiment() -> None:
    entries = yaml.safe_load((REPO / "MLproject").read_text(encoding="utf-8"))["entry_points"]
    lines = _documented_mlflow_runs()
    assert {name for name, _ in lines} >= {"README.md", "scale-out.md", "experiments.md"}
    for name, line in lines:
        argv = shlex.split(line)
        # Without it MLflow files the run under Default, away from the spec's experiment.
        assert "--experiment-name" in argv, f"{name}: {line}"
        entry = argv[argv.index("-e") + 1] if "-e" in argv else "main"
        params = [argv[i + 1].split("=")[0] for i, a in enumerate(argv) if a == "-P"]
        assert set(params) <= set(entries[entry].get("parameters", {})), f"{name}: {line}"


def test_a_resumed_study_in_another_experiment_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    first = Tracker(uri, "demo", task="classification", metric="f1_macro")
    first.start_parent("demo-search", {})  # `audioml demo`: the spec's experiment
    earlier = first.client.get_run(first.parent_id)
    # `mlflow run` without --experiment-name starts its run under Default and hands it down.
    launched = first.client.create_run("0")
    monkeypatch.setenv("MLFLOW_RUN_ID", launched.info.run_id)
    resumed = Tracker(uri, "demo", task="classification", metric="f1_macro")
    resumed.start_parent("demo-search", {})
    said = experiment_mismatch(earlier, resumed, study="demo-0123")
    assert said is not None
    assert f"continues in experiment 'Default' (run {launched.info.run_id})" in said
    assert f"earlier runs are in experiment 'demo' (run {earlier.info.run_id})" in said
    assert "--experiment-name demo" in said and "demo-0123" in said
    # With --experiment-name demo, the launched run is in the study's experiment: silence.
    launched = first.client.create_run(first.experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", launched.info.run_id)
    same = Tracker(uri, "demo", task="classification", metric="f1_macro")
    same.start_parent("demo-search", {})
    assert same.parent_id == launched.info.run_id
    assert experiment_mismatch(earlier, same, study="demo-0123") is None
