"""Parallel trials on the default SQLite set-up: an exact budget across threads and processes,
`search.n_jobs=2` end to end, `audioml finalize` after a dead run, and the worker's wait."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.data.demo_data import synthesize_corpus
from runner.search.budget import run_budget
from runner.search.study import make_storage
from runner.session.session import FINALIZING_ATTR, claim_finalization
from runner.stores.lock import StudyLock

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
SMALL = [
    "-q",
    "--set",
    "search.models=[logistic,random_forest]",
    "--set",
    "search.cv.folds=2",
    "--set",
    "features.n_jobs=1",
]


def _claimer(url: str, n_trials: int) -> None:
    study = optuna.load_study(study_name="s", storage=make_storage(url))

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.02)  # long enough for claims of other processes to interleave
        return trial.suggest_float("x", 0.0, 1.0)

    run_budget(
        study,
        objective,
        n_trials=n_trials,
        deadline=time.monotonic() + 60,
        n_jobs=2,
        lock=StudyLock(url, "s"),
    )


def test_budget_is_exact_across_processes_and_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=make_storage(url), study_name="s")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_claimer, args=(url, 17)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert sorted(t.number for t in trials) == list(range(17))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2, "several processes claimed"


def test_finalization_claim_is_taken_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=make_storage(url), study_name="s")
    lock = StudyLock(url, "s")
    busy = {"run": "p", "host": socket.gethostname(), "pid": os.getppid()}
    study.set_user_attr(FINALIZING_ATTR, busy)
    assert claim_finalization(study, lock, "p", force=False) == "busy"
    assert claim_finalization(study, lock, "p", force=True) == "claimed"
    assert claim_finalization(study, lock, "p", force=False) == "claimed", "own claim"
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    study.set_user_attr(FINALIZING_ATTR, {**busy, "pid": dead.pid})
    assert claim_finalization(study, lock, "p", force=False) == "claimed", "dead claimer"
    study.set_user_attr("finalized_run_id", "p")
    assert claim_finalization(study, lock, "p", force=False) == "finalized"


@pytest.fixture
def corpus(workdir: Path) -> Path:
    return synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=2.0)


def _versions(workdir: Path) -> list:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    return client.search_model_versions("name='demo-audio-classifier'")


@pytest.mark.slow
def test_sixteen_cores_run_trials_side_by_side_on_default_sqlite(
    workdir: Path, corpus: Path
) -> None:
    """`--set search.n_jobs=16`: the auto plan keeps 16 fold fits in flight (16 trials of 2
    folds at a time, told in order), logged on the parent run; every trial ends once."""
    args = ["run", str(DEMO), *SMALL, "--set", f"data.root={corpus}"]
    assert main([*args, "--set", "search.n_trials=6", "--set", "search.n_jobs=16"]) == 0
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{workdir / 'optuna.db'}")
    study = optuna.load_study(
        study_name=summary.study_name, storage=make_storage(f"sqlite:///{workdir / 'optuna.db'}")
    )
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state.is_finished() for t in study.trials)
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    numbers = sorted(
        int(r.data.tags["trial_number"]) for r in runs if "trial_number" in r.data.tags
    )
    assert numbers == list(range(6)), "one child run per trial"
    assert len(_versions(workdir)) == 1
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    plan = {k: int(v) for k, v in parent.data.params.items() if k.startswith("plan_")}
    assert plan == {"plan_cores": 16, "plan_trials": 16, "plan_folds": 2, "plan_threads": 1,
                    "plan_slots": 16}  # fmt: skip


@pytest.mark.slow
def test_finalize_command_after_the_run_process_died(workdir: Path, corpus: Path) -> None:
    """Trials ran (here: a worker with the run's budget) but nobody finalized: `audioml
    finalize` does it once; a second call is a no-op."""
    from runner.config.loading import load_spec
    from runner.session.pipeline import RunOptions, open_spec_study, prepare
    from runner.session.session import announce, start_tracking

    overrides = [f"data.root={corpus}", "search.n_trials=3", "search.cv.folds=2"]
    spec = load_spec(DEMO, [*overrides, "search.models=[logistic,random_forest]"])
    opts = RunOptions(progress=False)
    p = prepare(spec, opts)
    study = open_spec_study(p)
    announce(study, 3, p.tracking_uri)
    start_tracking(p, opts, study)  # the run process "dies" after creating its parent run
    worker = ["worker", str(DEMO), *SMALL, "--set", f"data.root={corpus}", "--wait-s", "5"]
    assert main([*worker, "--set", "search.n_trials=3"]) == 0
    assert len(study.trials) == 3 and _versions(workdir) == []
    finalize = ["finalize", str(DEMO), *SMALL, "--set", f"data.root={corpus}"]
    assert main([*finalize, "--set", "search.n_trials=3"]) == 0
    assert len(_versions(workdir)) == 1
    assert main([*finalize, "--set", "search.n_trials=3"]) == 0, "already finalized: no-op"
    assert len(_versions(workdir)) == 1


@pytest.mark.slow
def test_worker_without_a_run_gives_up_with_a_clear_message(
    workdir: Path, corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["worker", str(DEMO), *SMALL, "--set", f"data.root={corpus}", "--wait-s", "1"])
    assert code == 1
    err = capsys.readouterr().err
    expected = "was not started by `audioml run` within 1s; its name hashes the spec"
    assert expected in err.replace("\n", " ")
