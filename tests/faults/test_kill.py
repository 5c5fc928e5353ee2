"""SIGKILL a real `audioml run` at each point of its life, rerun the same command, and find the
study finished with nothing lost (see docs/RELIABILITY.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _harness import N_TRIALS, Job, assert_nothing_lost
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


def _pool_running(pid: int) -> bool:
    """The run's feature pool has worker processes: extraction is under way."""
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def test_kill_during_feature_extraction(job: Job) -> None:
    job.args += ["--set", "features.n_jobs=2"]
    proc = job.start()
    job.kill_when(proc, lambda: _pool_running(proc.pid))
    assert not (job.root / "optuna.db").exists(), "killed before the study existed"
    assert job.run() == 0, job.logs()
    assert_nothing_lost(job)


def test_kill_between_opening_a_trials_run_and_noting_it(job: Job) -> None:
    """The child run exists, the trial does not know it yet: the rerun fails that same run
    (no second run for the trial) and retries the trial."""
    job.kill_at("opened")
    (running,) = job.study().get_trials(states=(TrialState.RUNNING,))
    assert "mlflow_run_id" not in running.user_attrs
    assert job.run() == 0, job.logs()
    assert_nothing_lost(job)
    client = job.client()
    (child,) = client.search_runs(
        [client.get_experiment_by_name("demo").experiment_id],
        f"tags.trial_number = '{running.number}'",
    )
    assert child.info.status == "FAILED" and child.data.tags["reason"] == "worker died"


def test_kill_mid_trial_is_found_at_once_and_retried(job: Job) -> None:
    """Killed in a fold: every trial of the window then running (two on this machine's
    auto plan) is found dead at once by the rerun, failed and retried once, same params.
    The trial in its fold has its child run open; the next one may have been claimed but not
    yet drawn, so not yet given a run."""
    job.kill_at("fold")
    running = job.study().get_trials(states=(TrialState.RUNNING,))
    assert 1 <= len(running) <= 2
    client = job.client()
    children = {}
    for trial in running:
        found = client.search_runs(
            [client.get_experiment_by_name("demo").experiment_id],
            f"tags.trial_number = '{trial.number}'",
        )
        assert len(found) <= 1
        if found:
            assert found[0].info.status == "RUNNING", "the child run opened as its trial began"
            children[trial.number] = found[0].info.run_id
    assert children, "the trial killed in its fold had opened its child run"
    start = time.monotonic()
    assert job.run() == 0, job.logs()
    took = time.monotonic() - start
    assert "waiting for" not in job.logs()
    assert_nothing_lost(job)
    study = job.study()
    for trial in running:
        dead = study.trials[trial.number]
        assert dead.state == TrialState.FAIL and dead.user_attrs["fail_reason"] == "worker died"
        if dead.params:  # drawn (or being drawn) before the kill: its parameters are retried
            retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
            assert len(retry) == 1, "retried once"
            assert dead.params.items() <= retry[0].params.items(), "same parameters retried"
    for run_id in children.values():
        assert client.get_run(run_id).info.status == "FAILED"
        assert client.get_run(run_id).data.tags["reason"] == "worker died"
    assert len(study.trials) == N_TRIALS + len(running)
    assert took < 120, f"the rerun took {took:.0f}s: it must not wait on the dead trial"


def _completed(job: Job) -> bool:
    if not (job.root / "optuna.db").exists():
        return False
    return bool(job.study().get_trials(states=(TrialState.COMPLETE,)))


def test_kill_while_trial_plots_render(job: Job) -> None:
    # One trial at a time: a trial's run is tagged COMPLETE as its objective ends, and in a
    # window it is told only after the trials before it, so a kill between the two leaves a
    # COMPLETE-tagged run of a trial that is retried (its run then ends FAILED, rightly).
    job.args += ["--set", "search.parallel_trials=1"]
    proc = job.start("plots")
    # Paused on the plot thread, once Optuna has stored its trial as complete.
    job.kill_when(proc, lambda: job.marker.exists() and _completed(job))
    client = job.client()
    exp = client.get_experiment_by_name("demo").experiment_id
    queued = [
        r
        for r in client.search_runs([exp], "attributes.status = 'RUNNING'")
        if r.data.tags.get("state") == "COMPLETE"
    ]
    assert queued, "a completed trial's run waits for its plots"
    assert job.run() == 0, job.logs()
    assert_nothing_lost(job)
    for run in queued:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "FINISHED"
        assert "plots" in after.data.tags["reason"]


def test_kill_during_finalize_twice(job: Job) -> None:
    """Killed before the model is logged, then after it is registered but before the study
    is marked: the third run registers nothing twice."""
    job.kill_at("finalize")
    study = job.study()
    assert "finalized_run_id" not in study.user_attrs
    client = job.client()
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert "best_trial" not in parent.data.tags, "best_trial only after registration"
    job.kill_at("registered")
    assert len(client.search_model_versions("name='demo-audio-classifier'")) == 1
    assert "finalized_run_id" not in job.study().user_attrs
    assert job.run() == 0, job.logs()
    assert_nothing_lost(job)
    assert "resuming study" in job.logs()
