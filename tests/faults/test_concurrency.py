"""Two `audioml run` of one spec at once in a fresh folder, and a final step that fails and
is then completed by the next command."""

from __future__ import annotations

import subprocess
import time

import pytest
from _harness import MODEL, Job, assert_nothing_lost

pytestmark = pytest.mark.slow


def test_two_runs_started_together_in_a_fresh_folder(job: Job) -> None:
    procs = [job.start(), job.start()]
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=300))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(None)
    assert codes == [0, 0], job.logs()
    logs = job.logs()
    assert "Traceback" not in logs and "--force" not in logs, logs
    assert "joins it as one more worker" in logs
    assert_nothing_lost(job)
    owners = {t.user_attrs["worker"] for t in job.study().trials}
    assert len(owners) == 2, "both processes ran trials of the one study"
    client = job.client()
    parents = [
        r
        for r in client.search_runs([client.get_experiment_by_name("demo").experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1, "one parent run for the two processes"


def test_failed_finalize_is_resumed_by_the_next_command(job: Job) -> None:
    # The run pauses before the final model is logged; meanwhile a file takes the place of
    # the experiment's model-artifact folder, so logging the model fails for real.
    proc = job.start("finalize")
    deadline = time.monotonic() + 240
    while not job.marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.marker.exists(), job.logs()
    exp = job.client().get_experiment_by_name("demo").experiment_id
    blocker = job.root / "mlruns" / exp / "models"
    assert not blocker.exists()
    blocker.write_text("not a folder")
    job.marker.unlink()  # go on
    assert proc.wait(timeout=240) == 1, job.logs()
    logs = job.logs()
    assert "Traceback" not in logs, logs
    assert "still finalizable" in logs and "audioml finalize" in logs, logs
    study = job.study()
    assert "finalized_run_id" not in study.user_attrs
    parent = job.client().get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FAILED" and "finalize failed" in parent.data.tags["reason"]
    assert "best_trial" not in parent.data.tags

    finalize = Job(job.root, ["finalize", *job.args[1:]])
    assert finalize.run() == 1, "no model, so `audioml finalize` does not exit 0"
    blocker.unlink()  # the cause is fixed
    assert finalize.run() == 0, job.logs()
    assert_nothing_lost(job)
    assert job.client().get_run(parent.info.run_id).info.status == "FINISHED"
    assert job.run() == 0, "a rerun of the finished study has nothing to do"
    assert len(job.client().search_model_versions(f"name='{MODEL}'")) == 1
