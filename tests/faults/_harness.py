"""The fault tests' harness: a real `audioml run` subprocess on a tiny synthetic corpus,
SIGKILLed at a chosen point, then the same command again; the stores are checked afterwards.

The moment is chosen by a pause point (``runner.faults``): the process stops there and writes
its pid to a marker file, and the test kills it with a real SIGKILL.

``job`` starts in an empty folder (cold feature cache, no stores). ``warm_job`` starts from a
copy of one folder prepared once per session (the corpus's feature cache built, the MLflow
store created), with the cheapest search that shows a fault: logistic regression only, no
warm-start trials, 2 folds.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import optuna
import pytest
from mlflow.tracking import MlflowClient

from runner.data.demo_data import synthesize_corpus

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
N_TRIALS = 4
MODEL = "demo-audio-classifier"
TERMINAL = {"FINISHED", "KILLED", "FAILED"}


@dataclass
class Job:
    """One folder with its corpus and stores, and the `audioml run` command for it."""

    root: Path
    args: list[str]
    name: str = "paused"  # the marker file's: two processes may pause in one folder at once
    last_log: Path | None = None

    def start(self, pause_at: str | None = None, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("AUDIOML_PAUSE_AT", None)
        if pause_at:
            env["AUDIOML_PAUSE_AT"] = pause_at
            env["AUDIOML_PAUSE_FILE"] = str(self.marker)
        self.marker.unlink(missing_ok=True)
        self.last_log = self.root / f"run-{time.monotonic_ns()}.log"
        log = open(self.last_log, "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "runner", *self.args, *extra]
        # Its own session: the kill takes the feature pool's workers too, like an OOM kill.
        return subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def marker(self) -> Path:
        return self.root / self.name

    def wait_paused(self, proc: subprocess.Popen, timeout_s: float = 240.0) -> None:
        """Wait until ``proc`` stops at its pause point (fail if it exits first)."""
        deadline = time.monotonic() + timeout_s
        while not self.marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"exited with {proc.returncode} before its pause point\n{self.logs()}")
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"pause point not reached in {timeout_s}s\n{self.logs()}")
            time.sleep(0.05)

    def kill_when(self, proc: subprocess.Popen, ready, timeout_s: float = 240.0) -> None:
        """SIGKILL ``proc`` (and its process group) as soon as ``ready()`` is true."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"exited with {proc.returncode} before the kill point\n{self.logs()}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"kill point not reached in {timeout_s}s\n{self.logs()}")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def kill_at(self, point: str) -> None:
        """Start the run paused at ``point`` and SIGKILL it there."""
        proc = self.start(point)
        self.kill_when(proc, self.marker.exists)

    def run(self, *extra: str, timeout_s: float = 300.0) -> int:
        proc = self.start(None, *extra)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the rerun did not finish in {timeout_s}s\n{self.logs()}")

    def last_output(self) -> str:
        """What the latest process started by this job printed."""
        return self.last_log.read_text(errors="replace") if self.last_log else ""

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.root.glob("run-*.log"))
        )

    # -- the stores ----------------------------------------------------------------------
    def study(self) -> optuna.Study:
        url = f"sqlite:///{self.root / 'optuna.db'}"
        (name,) = optuna.get_all_study_names(url)
        return optuna.load_study(study_name=name, storage=url)

    def client(self) -> MlflowClient:
        return MlflowClient(f"sqlite:///{self.root / 'mlflow.db'}")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 one-second clips, two classes: every fault test reads the same files."""
    return synthesize_corpus(tmp_path_factory.mktemp("corpus"), clips_per_class=12, duration_s=1.0)


def _args(sets: dict[str, object]) -> list[str]:
    args = ["run", str(DEMO), "-q"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture
def job(tmp_path: Path, corpus: Path) -> Job:
    sets = {
        "data.root": corpus,
        "search.n_trials": N_TRIALS,
        "search.models": "[logistic,random_forest]",
        "search.cv.folds": 3,
        "search.timeout_s": "null",
        "features.n_jobs": 1,
        "features.cache_dir": tmp_path / "cache",
    }
    return Job(tmp_path, _args(sets))


def _warm_sets(root: Path, corpus: Path, n_trials: int) -> dict[str, object]:
    return {
        "data.root": corpus,
        "search.n_trials": n_trials,
        "search.models": "[logistic]",
        "search.warm_start": "false",
        "search.cv.folds": 2,
        "search.timeout_s": "null",
        "features.n_jobs": 1,
        "features.cache_dir": root / "cache",
    }


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """A folder holding the corpus's feature cache and a created MLflow store, made once."""
    from runner.config.loading import load_spec
    from runner.data.dataset import prepare_dataset
    from runner.tracking.tracker import prepare_store

    root = tmp_path_factory.mktemp("prepared")
    sets = [f"{k}={v}" for k, v in _warm_sets(root, corpus, 1).items()]
    prepare_dataset(load_spec(DEMO, sets), base=root, progress=False)
    with contextlib.chdir(root):  # MLflow's Default experiment keeps its artifacts here
        prepare_store(f"sqlite:///{root / 'mlflow.db'}")
    return root


@pytest.fixture
def warm_job(tmp_path: Path, corpus: Path, prepared: Path) -> Callable[[int], Job]:
    """``warm_job(n_trials)``: a job in a copy of the prepared folder."""

    def make(n_trials: int) -> Job:
        shutil.copytree(prepared, tmp_path, dirs_exist_ok=True)
        return Job(tmp_path, _args(_warm_sets(tmp_path, corpus, n_trials)))

    return make


def assert_nothing_lost(job: Job, *, n_trials: int = N_TRIALS) -> None:
    """The study holds exactly ``n_trials`` trials that ended by themselves, trial numbers are
    unique, every MLflow run is terminal, exactly one version carries the alias, and the
    feature cache loads as valid (a warm build extracts nothing)."""
    from runner.search.study import count_finished

    study = job.study()
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)), "no trial number repeats"
    assert count_finished(study) == n_trials, job.logs()
    assert not [t for t in study.trials if not t.state.is_finished()], "no trial left running"
    died = [t for t in study.trials if t.user_attrs.get("fail_reason") == "worker died"]
    assert all(t.user_attrs.get("uncounted") for t in died)

    client = job.client()
    exp = client.get_experiment_by_name("demo")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    states = Counter(r.info.status for r in runs)
    assert set(states) <= TERMINAL, f"runs not terminal: {states}"
    for run in runs:
        if run.info.status != "FINISHED" and "trial_number" in run.data.tags:
            state = run.data.tags["state"]
            assert run.data.tags.get("reason"), f"trial run {run.info.run_name} ({state}): reason"
    children = Counter(
        int(r.data.tags["trial_number"]) for r in runs if "trial_number" in r.data.tags
    )
    assert children == Counter(numbers), "exactly one child run per Optuna trial"
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 1, ([(v.version, v.run_id) for v in versions], job.logs())
    assert client.get_model_version_by_alias(MODEL, "champion").version == versions[0].version
    assert study.user_attrs["finalized_run_id"] == versions[0].run_id
    _assert_cache_valid(job)


def assert_lineage(job: Job) -> None:
    """One parent run, holding its lineage once: the dataset input, the source counts, and
    the spec, search-space, schema and skipped-clips artifacts."""
    from runner.session.pipeline import LINEAGE_TAG

    client = job.client()
    exp = client.get_experiment_by_name("demo").experiment_id
    runs = client.search_runs([exp], max_results=1000)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags.get(LINEAGE_TAG) == "logged"
    assert len(parent.inputs.dataset_inputs) == 1, parent.inputs.dataset_inputs
    assert parent.data.metrics["rows"] == 23 and parent.data.metrics["clips_skipped"] == 1
    assert any(key.startswith("source_") for key in parent.data.metrics)
    assert parent.data.params["search.models"] == '["logistic"]'
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    files |= {a.path for a in client.list_artifacts(parent.info.run_id, "spec")}
    expected = {"spec/spec.resolved.yaml", "search_space.json", "feature_table_schema.json"}
    assert expected | {"skipped_clips.csv"} <= files, files
    history = client.get_metric_history(parent.info.run_id, "rows")
    assert len(history) == 1, "logged once"


def assert_nothing_to_do(job: Job) -> None:
    """A second rerun of the same command finds the study finalized and does nothing.

    It runs in this process (the same ``audioml`` entry point and working directory): a
    subprocess would spend seconds importing what this one already has."""
    from runner.cli import main

    out = io.StringIO()
    with (
        contextlib.chdir(job.root),
        mock.patch.dict(os.environ),
        contextlib.redirect_stdout(out),
    ):
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        code = main(job.args)
    assert code == 0 and "nothing to do" in out.getvalue(), out.getvalue()
    assert len(job.client().search_model_versions(f"name='{MODEL}'")) == 1


def _assert_cache_valid(job: Job) -> None:
    from runner.config.loading import load_spec
    from runner.data.dataset import prepare_dataset

    sets = [a for a in job.args[3:] if a != "--set"]
    ds = prepare_dataset(load_spec(DEMO, sets), base=job.root, progress=False)
    # Every clip comes from the cache (the corpus's one silent clip is cached as skipped).
    assert ds.stats["cache_misses"] == ds.stats["extracted"] == 0, ds.stats
    assert ds.stats["cache_hits"] == 24, ds.stats
