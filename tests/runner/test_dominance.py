"""Budget use: a family beaten by a cheaper one stops being drawn once it has taken more
than its share of the time (runner.search.dominance); the best family is never dropped."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from sklearn.dummy import DummyClassifier
from test_search import _spec, _table

from runner.config.spec import FinalSpec
from runner.search.dominance import dominated_families, drops_dominated
from runner.session.pipeline import RunOptions
from runner.session.session import run_experiment

MODELS = ["slow", "fast"]


class _SlowConstant(DummyClassifier):
    """Worse (one class for every row) and slower (0.2 s per fit) than logistic."""

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: object = None) -> _SlowConstant:
        time.sleep(0.2)
        return super().fit(X, y, sample_weight)


def _add(study: optuna.Study, family: str, value: float | None, seconds: float) -> None:
    state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
    trial = create_trial(
        params={"model": family}, distributions={"model": CategoricalDistribution(MODELS)},
        value=value, state=state, user_attrs={"seconds": seconds},
    )  # fmt: skip
    study.add_trial(trial)


def test_slower_worse_family_is_dropped_and_the_best_family_never() -> None:
    study = optuna.create_study(direction="maximize")
    for _ in range(3):
        _add(study, "slow", 0.5, 10.0)
        _add(study, "fast", 0.8, 1.0)
    assert dominated_families(study, MODELS) == {
        "slow": "dominated by fast (best CV 0.8 vs 0.5, median trial 1.00 s vs 10.00 s) "
        "after taking 30.0 s of 33.0 s"
    }
    # Costly fast trials told later do not undo it (sticky), though fast's median cost is
    # now slow's (10 s) and slow's share of the time fell under half (30 of 73 s).
    for _ in range(4):
        _add(study, "fast", 0.7, 10.0)
    assert set(dominated_families(study, MODELS)) == {"slow"}
    # A trial of slow drawn before the drop and told after it is the best: never dropped.
    _add(study, "slow", 0.9, 10.0)
    assert dominated_families(study, MODELS) == {}
    # A family dropped otherwise (failures) neither dominates nor is dropped again.
    assert dominated_families(study, MODELS, exclude={"fast"}) == {}


def test_no_drop_before_min_trials_or_within_the_share() -> None:
    study = optuna.create_study(direction="minimize")
    for _ in range(2):
        _add(study, "slow", 5.0, 10.0)
        _add(study, "fast", 1.0, 1.0)
    assert dominated_families(study, MODELS) == {}, "two told trials each are too few"
    _add(study, "fast", 1.0, 1.0)
    _add(study, "slow", None, 0.1)  # pruned: told, cheap, no score
    # slow: 20.1 s of 23.1 s, median 10 s against 1 s, best 5 against 1 (minimised).
    assert set(dominated_families(study, MODELS)) == {"slow"}
    cheap = optuna.create_study(direction="minimize")
    for seconds in (5.0, 0.5, 0.5, 0.5, 0.5):
        _add(cheap, "fast", 1.0, seconds)
    for _ in range(3):
        _add(cheap, "slow", 5.0, 1.0)  # beaten for less, but 3 s of 10 s: within its half
    assert dominated_families(cheap, MODELS) == {}


def test_switch_defaults_on_with_a_time_budget(table_root: Path) -> None:
    assert not drops_dominated(_spec(table_root))
    assert drops_dominated(_spec(table_root, timeout_s=60))
    assert not drops_dominated(_spec(table_root, timeout_s=60, drop_dominated=False))
    assert drops_dominated(_spec(table_root, drop_dominated=True))


@pytest.fixture
def table_root(workdir: Path) -> Path:
    _table(workdir / "table.csv")
    return workdir


def test_run_stops_drawing_a_dominated_family(
    table_root: Path, temporary_family, capsys: pytest.CaptureFixture
) -> None:
    temporary_family("slow_for_test", lambda params, **kw: _SlowConstant())
    spec = _spec(
        table_root, models=["slow_for_test", "logistic"], n_trials=14, sampler="random",
        timeout_s=300, n_jobs=1, warm_start=False, ensemble=False,
    )  # fmt: skip
    spec = spec.model_copy(update={"final": FinalSpec(candidate="trial", stack=False)})
    summary = run_experiment(spec, RunOptions(progress=False))
    assert summary["best_model"] == "logistic"
    study = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{table_root / 'optuna.db'}"
    )
    assert not [t for t in study.trials if t.user_attrs.get("uncounted")], "nothing skipped"
    assert len(study.trials) == 14
    slow = [t for t in study.trials if t.params["model"] == "slow_for_test"]
    assert len(slow) >= 3 and all(t.state == TrialState.COMPLETE for t in slow)
    # Dominated once its last trial was told; after that the sampler drew logistic only.
    last = max(t.number for t in slow)
    upto = optuna.create_study(direction="maximize")
    upto.add_trials([t for t in study.trials if t.number <= last])
    assert set(dominated_families(upto, spec.search.models)) == {"slow_for_test"}
    later = {t.params["model"] for t in study.trials if t.number > last}
    assert later == {"logistic"} and last < 10, last
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: slow_for_test is dominated by logistic" in out, out
    client = MlflowClient(f"sqlite:///{table_root / 'mlflow.db'}")
    tags = client.get_run(summary["parent_run_id"]).data.tags
    assert tags["dominated.slow_for_test"].startswith("dominated by logistic (best CV ")
