"""Crash safety, round two: a final step that waits for the retry of a trial killed meanwhile,
a killed run its supervisor has not reaped yet (a zombie), a trial killed three times on the
same parameters, and a kill right after the parent run is created (see docs/RELIABILITY.md).

Each test kills real `audioml run` processes with SIGKILL at pause points, then checks the
stores, and that a second rerun has nothing to do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from _harness import REPO, Job, assert_lineage, assert_nothing_lost, assert_nothing_to_do
from optuna.trial import TrialState

from runner.search.liveness import _ps_state, is_alive, is_stopped
from runner.search.trials import OWNER_ATTR, reap_dead
from runner.stores.lock import StudyLock

pytestmark = pytest.mark.slow


def _kill(proc: subprocess.Popen, *, reap: bool = True) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    if reap:
        proc.wait(timeout=30)


def _settled(job: Job, n_trials: int) -> None:
    """Nothing lost; ``n_trials`` trials complete or pruned, every failed one uncounted (its
    process died); one parent run with its lineage; a second rerun has nothing to do."""
    assert_nothing_lost(job, n_trials=n_trials)
    trials = job.study().trials
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(ended) == n_trials
    assert all(t.user_attrs.get("uncounted") for t in trials if t.state == TrialState.FAIL)
    assert_lineage(job)
    assert_nothing_to_do(job)


def _running(job: Job) -> optuna.trial.FrozenTrial:
    (running,) = job.study().get_trials(states=(TrialState.RUNNING,))
    return running


def test_finalize_runs_the_retry_of_a_trial_killed_while_it_waits(
    warm_job: Callable[[int], Job],
) -> None:
    """Run A holds trial 0 (paused); run B runs trial 1, claims the final step and dies
    waiting for trial 0; run C takes B's dead claim over and waits; A is killed: C runs the
    retry of trial 0 itself before it finalizes, with the whole budget."""
    job = warm_job(2)
    a, b, c = job, Job(job.root, job.args, "paused-b"), Job(job.root, job.args, "paused-c")
    run_a = a.start("fold")
    a.wait_paused(run_a)
    run_b = b.start("waiting")
    b.wait_paused(run_b)
    claim = job.study().user_attrs["finalizing"]
    assert claim["pid"] == run_b.pid
    _kill(run_b)
    run_c = c.start("waiting")
    c.wait_paused(run_c)
    assert job.study().user_attrs["finalizing"]["pid"] == run_c.pid, "the dead claim is taken"
    _kill(run_a)
    c.marker.unlink()  # C goes on
    assert run_c.wait(timeout=240) == 0, job.logs()
    out = c.last_output()
    assert "queued again" in out and "running them here before finalizing" in out, out
    assert "finalizing with" not in out, out
    _settled(job, 2)
    study = job.study()
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["owner"]["pid"] == run_c.pid


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_rerun_after_a_kill_its_supervisor_has_not_reaped(warm_job: Callable[[int], Job]) -> None:
    """The killed run stays a zombie (this test is its parent and does not wait for it), as
    under a supervisor that reaps its children one by one: the rerun sees it dead."""
    job = warm_job(1)
    proc = job.start("fold")
    try:
        job.wait_paused(proc)
        _kill(proc, reap=False)
        deadline = time.monotonic() + 10
        while not _zombie(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _zombie(proc.pid)
        assert job.run(timeout_s=120) == 0, job.logs()
        assert _zombie(proc.pid), "still unreaped during the rerun"
    finally:
        proc.wait(timeout=30)
    out = job.last_output()
    assert "resuming study" in out and "queued again" in out, out
    assert "waiting for" not in out and "joins it" not in out, out
    _settled(job, 1)


def test_a_trial_killed_three_times_is_lost_and_replaced(warm_job: Callable[[int], Job]) -> None:
    """Killed as its child run opens, three times on the same parameters: the third death
    loses the trial, which does not count, and a fresh trial completes the budget."""
    job = warm_job(1)
    job.kill_at("opened")
    first = _running(job)
    for _ in range(2):
        job.kill_at("opened")
        again = _running(job)
        assert again.system_attrs["failed_trial"] == first.number
        assert again.params == first.params
    assert job.run() == 0, job.logs()
    out = job.last_output()
    lost_line = (
        f"trial {again.number}: its process is gone; failed (worker died) and lost (3 deaths"
    )
    assert lost_line in out, out
    assert "queued again" not in out, out
    _settled(job, 1)
    study = job.study()
    lost = study.trials[again.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["uncounted"]
    assert "3 times on these parameters" in lost.user_attrs["fail_reason"]
    (fresh,) = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert "failed_trial" not in fresh.system_attrs and fresh.number > again.number


def test_kill_right_after_the_parent_run_is_created(warm_job: Callable[[int], Job]) -> None:
    """The parent run exists without its lineage: the rerun adopts it and logs it."""
    job = warm_job(1)
    job.kill_at("parent")
    client = job.client()
    (parent,) = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert "audioml.lineage" not in parent.data.tags and not parent.inputs.dataset_inputs
    assert job.run() == 0, job.logs()
    assert f"resuming study {job.study().study_name} under run" in job.last_output()
    _settled(job, 1)


_CHILD = (
    "import json, time; from runner.search.liveness import me; "
    "print(json.dumps(me()), flush=True); time.sleep(120)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.filterwarnings("ignore:Argument ``heartbeat_interval``")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_liveness_of_a_stopped_and_of_an_unreaped_process(tmp_path: Path) -> None:
    """A real child process, stopped, continued and killed: stopped is alive but counts as
    dead once its trial's heartbeat is stale; killed and not yet reaped is dead."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, env=env)
    try:
        owner = json.loads(proc.stdout.readline())
        url = f"sqlite:///{tmp_path / 'optuna.db'}"
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=1)
        study = optuna.create_study(storage=storage, study_name="s")
        trial = study.ask()
        trial.set_user_attr(OWNER_ATTR, owner)
        storage.record_heartbeat(trial._trial_id)
        time.sleep(2.2)  # the heartbeat is stale now
        lock = StudyLock(url, "s")
        assert is_alive(owner) and not is_stopped(owner)
        assert reap_dead(study, lock) == [], "alive and running: a stale beat is ignored"
        os.kill(proc.pid, signal.SIGSTOP)
        proc_state = Path(f"/proc/{proc.pid}/stat")
        while proc_state.read_text().rsplit(")", 1)[1].split()[0] != "T":
            time.sleep(0.01)
        assert is_alive(owner) and is_stopped(owner)
        (dead,) = reap_dead(study, lock)
        assert dead.number == trial.number and dead.state == TrialState.FAIL
        os.kill(proc.pid, signal.SIGCONT)
        os.kill(proc.pid, signal.SIGKILL)
        while not _zombie(proc.pid):
            time.sleep(0.01)
        assert is_alive(owner) is False and not is_stopped(owner)
        if shutil.which("ps"):  # the fallback of systems without /proc tells a zombie too
            assert _ps_state(proc.pid) == "Z"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert is_alive(owner) is False
    if shutil.which("ps"):
        assert _ps_state(proc.pid) is None and _ps_state(os.getpid()) in ("R", "S")
