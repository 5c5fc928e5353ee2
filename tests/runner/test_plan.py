"""The resource plan (folds side by side, then estimator threads) and the warm start."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from threadpoolctl import threadpool_limits

from runner.config.spec import ExperimentSpec
from runner.data.splits import Split
from runner.errors import TrialFailed
from runner.models import TABLE, Inputs, Rows, get_family
from runner.search.budget import run_budget
from runner.search.evaluation import StoredModel, cross_validate
from runner.search.fold_procs import FoldProcesses
from runner.search.horizon import HorizonPruner
from runner.search.objective import make_objective, make_pruner, resource_plan
from runner.search.plan import available_cores, plan_resources
from runner.search.warm_start import WARM_ATTR
from runner.session.pipeline import RunOptions, open_spec_study, prepare


@pytest.mark.parametrize(
    ("n_jobs", "trials", "folds", "plan"),
    [
        (2, 1, 5, (1, 2, 1)),  # this machine: two folds at once
        (16, 1, 5, (1, 5, 3)),  # a workstation: every fold at once, the rest as threads
        (16, 2, 5, (2, 5, 1)),
        (1, 1, 5, (1, 1, 1)),
        (3, 4, 5, (3, 3, 1)),  # never more trials than cores; their folds share 3 slots
        (16, "auto", 5, (16, 5, 1)),  # auto: one trial per core, their folds on one slot each
        (8, "auto", 5, (8, 5, 1)),
        (2, "auto", 5, (2, 2, 1)),
        (1, "auto", 5, (1, 1, 1)),
    ],
)
def test_plan_splits_cores_without_oversubscribing(n_jobs, trials, folds, plan) -> None:
    got = plan_resources(n_jobs, trials, folds)
    assert (got.trials, got.folds, got.threads) == plan
    assert got.slots * got.threads <= got.cores
    assert plan_resources("auto", 1, 5).cores == available_cores()


def _busy_fraction(cores: int, n_folds: int, n_trials: int = 200) -> float:
    """Replay the plan's schedule with folds of unequal length: a window of trials asked
    together, told in trial order (trial n + window starts when trial n is told), their folds
    queued first in, first out on the plan's shared slots. Returns busy core-time / cores x
    wall time."""
    plan = plan_resources(cores, "auto", n_folds)
    lengths = np.random.default_rng(0).uniform(0.5, 1.5, (n_trials, n_folds))
    free = [0.0] * plan.slots  # when each slot frees up
    ends = [0.0] * n_trials
    told = [0.0] * n_trials
    for n in range(n_trials):
        start = told[n - plan.trials] if n >= plan.trials else 0.0
        for k in range(n_folds):  # each fold takes the earliest free slot, not before start
            slot = min(range(plan.slots), key=free.__getitem__)
            free[slot] = max(free[slot], start) + lengths[n, k]
            ends[n] = max(ends[n], free[slot])
        told[n] = max(ends[n], told[n - 1] if n else 0.0)
    return lengths.sum() * plan.threads / (plan.cores * max(told))


@pytest.mark.parametrize("cores", [2, 4, 8, 16, 32, 64])
def test_the_auto_plan_keeps_the_cores_busy(cores: int) -> None:
    plan = plan_resources(cores, "auto", 5)
    assert plan.busy == cores  # every core runs a whole fit when the slots are full
    assert _busy_fraction(cores, 5) >= 0.95


def _table(rng, n: int = 160) -> tuple[pd.DataFrame, np.ndarray]:
    y = rng.integers(0, 3, n)
    X = y[:, None] * 0.7 + rng.normal(0, 1, (n, 6))
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), np.asarray(list("abc"))[y]


def _folds(n: int, k: int) -> list[Split]:
    fold = np.arange(n) % k
    return [Split(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]


def _cv(frame, y, jobs: int, on_fold=None):
    family = get_family("random_forest", "classification")
    params = {"n_estimators": 30, "max_depth": 6}
    return cross_validate(
        lambda: family.make(params, task="classification", seed=1),
        Inputs(TABLE, Rows(frame), list(frame.columns)), y,
        np.asarray([f"c{i}" for i in range(len(y))]), _folds(len(y), 4),
        task="classification", classes=list("abc"), on_fold=on_fold, jobs=jobs,
    )  # fmt: skip


def test_folds_side_by_side_score_as_folds_in_turn(rng) -> None:
    frame, y = _table(rng)
    seen: list[int] = []
    serial = _cv(frame, y, 1)
    parallel = _cv(frame, y, 2, on_fold=lambda k, _: seen.append(k))
    assert seen == [0, 1, 2, 3]  # reported in fold order, in the calling thread
    assert parallel.folds == serial.folds
    assert parallel.oof_ids == serial.oof_ids
    np.testing.assert_array_equal(np.vstack(parallel.oof_proba), np.vstack(serial.oof_proba))


class _OpenMpProbe(BaseEstimator, ClassifierMixin):
    """Records the OpenMP thread count its fit sees, then fits a forest."""

    seen: list[int] = []

    def fit(self, X, y):
        import threadpoolctl

        pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]
        _OpenMpProbe.seen.append(pools[0]["num_threads"])
        self.model_ = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


@pytest.mark.skipif(available_cores() < 2, reason="one core: every thread count is 1")
def test_each_fold_thread_fits_under_the_plans_thread_limit(rng) -> None:
    """OpenMP's thread count is per thread; the limit must hold where each fold fits, or two
    folds of an OpenMP estimator (HistGradientBoosting) each start every core."""
    frame, y = _table(rng)
    _OpenMpProbe.seen.clear()
    inputs = Inputs(TABLE, Rows(frame), list(frame.columns))
    ids = np.asarray([f"c{i}" for i in range(len(y))])
    with threadpool_limits(limits=1):
        cross_validate(_OpenMpProbe, inputs, y, ids, _folds(len(y), 4),
                       task="classification", classes=list("abc"), jobs=2, threads=1)  # fmt: skip
    assert _OpenMpProbe.seen == [1, 1, 1, 1]
    _OpenMpProbe.seen.clear()
    with threadpool_limits(limits=1):  # no limit passed: the fold threads use every core
        cross_validate(_OpenMpProbe, inputs, y, ids, _folds(len(y), 4),
                       task="classification", classes=list("abc"), jobs=2)  # fmt: skip
    assert _OpenMpProbe.seen == [available_cores()] * 4


def test_a_fold_that_stops_the_trial_stops_the_folds_in_flight(rng) -> None:
    frame, y = _table(rng)

    def prune(k: int, _scores) -> None:
        raise optuna.TrialPruned(f"pruned after fold {k}")

    with pytest.raises(optuna.TrialPruned, match="fold 0"):
        _cv(frame, y, 2, on_fold=prune)


def _csv(root: Path, rng) -> None:
    frame, y = _table(rng, 120)
    frame.columns = [f"mfcc{i}_mean" for i in range(6)]
    frame.insert(0, "filename", [f"c{i}.wav" for i in range(len(y))])
    frame["label"] = y
    frame.to_csv(root / "table.csv", index=False)


def _spec(root: Path, **search) -> ExperimentSpec:
    data = {"source": "feature_table", "root": str(root), "manifest": "table.csv",
            "label_column": "label"}  # fmt: skip
    search = {"models": ["logistic", "svm", "random_forest"], "n_trials": 6,
              "cv": {"folds": 3}, "pruner": "none", **search}  # fmt: skip
    return ExperimentSpec.model_validate({"name": "plan-test", "seed": 5, "data": data,
                                          "search": search})  # fmt: skip


def _search(spec: ExperimentSpec, p) -> list[tuple]:
    study = open_spec_study(p)
    study.optimize(make_objective(spec, p.data), n_trials=6, catch=(TrialFailed,))
    return [(t.params, t.value) for t in study.trials]


def test_a_seed_fixes_the_trials_whatever_the_fold_plan(workdir: Path, rng) -> None:
    _csv(workdir, rng)
    runs = []
    for n_jobs, store in [("auto", "a"), ("auto", "b"), (1, "c")]:
        spec = _spec(workdir, n_jobs=n_jobs)
        opts = RunOptions(progress=False, tracking_uri=f"sqlite:///{workdir / store}.db")
        p = prepare(spec, opts)
        p.storage = f"sqlite:///{workdir / store}-optuna.db"
        runs.append(_search(spec, p))
    assert runs[0] == runs[1] == runs[2]


def test_a_new_study_tries_each_familys_warm_start_first(workdir: Path, rng) -> None:
    _csv(workdir, rng)
    spec = _spec(workdir, spaces={"svm": {"C": [0.1, 1.0]}})  # svm's C=10 is outside
    p = prepare(spec, RunOptions(progress=False))
    study = open_spec_study(p)
    waiting = [
        t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))
    ]
    assert [t["model"] for t in waiting] == ["logistic", "svm", "random_forest"]
    assert waiting[0] == {"model": "logistic", "logistic.C": 0.1}  # configs/portfolio.yaml
    assert "svm.C" not in waiting[1]  # outside the narrowed space: left to the sampler
    assert waiting[1]["svm.kernel"] == "rbf"
    assert study.user_attrs[WARM_ATTR] == 3
    study.optimize(make_objective(spec, p.data), n_trials=3, catch=(TrialFailed,))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert done[0].params == {"model": "logistic", "logistic.C": 0.1}
    assert 0.1 <= done[1].params["svm.C"] <= 1.0
    # Opening the study again (a resume, a worker) enqueues nothing more.
    again = open_spec_study(p)
    assert len(again.get_trials()) == 3


def test_warm_start_off_enqueues_nothing(workdir: Path, rng) -> None:
    _csv(workdir, rng)
    p = prepare(_spec(workdir, warm_start=False), RunOptions(progress=False))
    assert open_spec_study(p).get_trials() == []


def _windowed(spec: ExperimentSpec, p, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    study = open_spec_study(p)
    run_budget(study, make_objective(spec, p.data), n_trials=n_trials, deadline=None,
               n_jobs=resource_plan(spec).trials)  # fmt: skip
    return study.get_trials()


def test_trials_side_by_side_are_the_same_for_one_seed_and_plan(workdir: Path, rng) -> None:
    """Six cores and three folds on this machine, four trials at a time on six shared fold
    slots; two runs give the same trials, pruned ones too, and the trials really overlapped
    (each of trials 1-3 asked before trial 0 was told)."""
    _csv(workdir, rng)
    runs = []
    for store in ("a", "b"):
        spec = _spec(workdir, n_jobs=6, n_trials=12, pruner="median", warm_start=False,
                     parallel_trials=4)  # fmt: skip
        assert (resource_plan(spec).trials, resource_plan(spec).slots) == (4, 6)
        p = prepare(
            spec, RunOptions(progress=False, tracking_uri=f"sqlite:///{workdir / store}.db")
        )
        p.storage = f"sqlite:///{workdir / store}-optuna.db"
        trials = _windowed(spec, p, 12)
        runs.append([(t.number, t.state, t.params, t.value) for t in trials])
    assert runs[0] == runs[1]
    assert len(runs[0]) == 12 and all(state.is_finished() for _, state, _, _ in runs[0])
    told0 = trials[0].datetime_complete
    assert all(t.datetime_start < told0 for t in trials[1:4])
    assert trials[4].datetime_start >= told0  # asked once trial 0 was told, not before
    assert isinstance(make_pruner(spec), HorizonPruner)


def test_folds_in_worker_processes_score_the_trials_as_threads_do(workdir: Path, rng) -> None:
    """search.fold_workers=processes: the same window of trials, their folds fitted in worker
    processes (not this one), gives the same trials and scores as fold threads."""
    _csv(workdir, rng)
    runs, objectives = [], []
    for how in ("threads", "processes"):
        spec = _spec(workdir, n_jobs=6, n_trials=6, warm_start=False, fold_workers=how)
        p = prepare(spec, RunOptions(progress=False, tracking_uri=f"sqlite:///{workdir / how}.db"))
        p.storage = f"sqlite:///{workdir / how}-optuna.db"
        study = open_spec_study(p)
        objective = make_objective(spec, p.data)
        run_budget(study, objective, n_trials=6, deadline=None, n_jobs=resource_plan(spec).trials)
        runs.append([(t.params, round(t.value, 12)) for t in study.get_trials()])
        objectives.append(objective)
    assert runs[0] == runs[1] and len(runs[0]) == 6
    assert objectives[0].procs is None
    pids = objectives[1].procs.pids
    assert len(pids) >= 2 and os.getpid() not in pids
    objectives[1].procs.close()


def test_kept_fold_models_come_back_from_worker_processes_as_files(rng) -> None:
    """A fold estimator kept in a worker process comes back as a file loaded on demand (not
    through the pool's one result pipe); the file goes with its handle, the folder with the
    pool and the last handle."""
    frame, y = _table(rng)
    procs = FoldProcesses(Rows(frame), y, 2)
    family = get_family("random_forest", "classification")
    inputs = Inputs(TABLE, Rows(frame), list(frame.columns))
    threads, result = (
        cross_validate(
            lambda: family.make({"n_estimators": 30, "max_depth": 6}, task="classification",
                                seed=1),
            inputs, y, np.asarray([f"c{i}" for i in range(len(y))]), _folds(len(y), 4),
            task="classification", classes=list("abc"), jobs=2, fitter=fitter, keep_models=True,
        )
        for fitter in (None, procs.fit)
    )  # fmt: skip
    assert result.folds == threads.folds
    handles = [*result.fold_models, result.last_estimator]
    assert all(isinstance(h, StoredModel) for h in handles)
    paths = [Path(h.path) for h in handles]
    folder = paths[0].parent
    assert all(p.exists() and p.parent == folder for p in paths)
    X = frame.to_numpy()
    for fitted, handle in zip(threads.estimators(), result.estimators(), strict=True):
        np.testing.assert_array_equal(fitted.predict_proba(X), handle.predict_proba(X))
    del handles, handle
    assert result.last_estimator is result.fold_models[-1]  # one file for the last fold
    result.fold_models = result.fold_models[:1]  # folds 1 and 2 dropped: their files go
    gc.collect()
    assert [p.exists() for p in paths] == [True, False, False, True, True]
    procs.close()
    del procs
    gc.collect()
    assert folder.exists()  # two handles still point into it
    del result
    gc.collect()
    assert not folder.exists()
