"""Any Exception of a family fails only that trial (type, message, traceback on its child run);
a family failing 5 trials in a row is dropped; the budget counts trials that ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sklearn.linear_model import LogisticRegression
from test_search import _spec, _table

from runner.config.spec import FinalSpec
from runner.search.objective import resource_plan
from runner.session.pipeline import RunOptions
from runner.session.session import run_experiment


class EngineError(Exception):
    """Stands for a library's own plain Exception (LightGBMError is one)."""


class _Raising(LogisticRegression):
    def fit(self, X: np.ndarray, y: np.ndarray) -> _Raising:
        raise EngineError("the engine refused these rows")


class _Buggy(LogisticRegression):
    def fit(self, X: np.ndarray, y: np.ndarray) -> _Buggy:
        return len(None)  # a TypeError, as a bug in a family would raise


@pytest.fixture
def families(temporary_family) -> None:
    temporary_family("raising_for_test", lambda params, **kw: _Raising())
    temporary_family("buggy_for_test", lambda params, **kw: _Buggy())


@pytest.mark.slow
def test_family_errors_fail_trials_and_repeat_offenders_are_dropped(
    workdir: Path, families, capsys: pytest.CaptureFixture
) -> None:
    _table(workdir / "table.csv")
    models = ["raising_for_test", "buggy_for_test", "logistic"]
    spec = _spec(workdir, models=models, n_trials=20, sampler="random")
    # The best trial, not a stack of logistic trials: the family that works is what is served.
    spec = spec.model_copy(update={"final": FinalSpec(candidate="trial")})
    summary = run_experiment(spec, RunOptions(progress=False))
    assert summary["best_model"] == "logistic"
    study = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{workdir / 'optuna.db'}"
    )
    ran = [t for t in study.trials if not t.user_attrs.get("uncounted")]
    assert len(ran) == 20, "skipped draws of dropped families do not use the budget"
    for family in ("raising_for_test", "buggy_for_test"):
        mine = [t for t in ran if t.params["model"] == family]
        # A failure is known when the trial is told: trials side by side already drawn by
        # then still run, at most one window (resource_plan(spec).trials) less one.
        window = resource_plan(spec).trials
        assert 5 <= len(mine) <= 5 + window - 1, family
        assert all(t.state == TrialState.FAIL for t in mine), family
    # The sampler draws live families only (runner.search.live_families): no draw is skipped.
    assert not [t for t in study.trials if t.user_attrs.get("uncounted")]
    out = " ".join(capsys.readouterr().out.split())
    assert "raising_for_test failed 5 trials in a row" in out, out

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    failed = client.search_runs(
        [client.get_experiment_by_name("search-test").experiment_id], "tags.state = 'FAILED'"
    )
    types = {r.data.tags["error_type"] for r in failed}
    assert types == {"EngineError", "TypeError"}
    one = failed[0]
    assert one.info.status == "FAILED" and one.data.tags["reason"]
    text = Path(
        client.download_artifacts(one.info.run_id, "traceback.txt", str(workdir))
    ).read_text()
    assert "Traceback" in text and one.data.tags["error_type"] in text
    parent = client.get_run(summary["parent_run_id"])
    assert {"dropped.raising_for_test", "dropped.buggy_for_test"} <= set(parent.data.tags)
