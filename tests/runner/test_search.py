"""The search: honest splits, pruning, failed trials, resume, determinism, regression.

Most tests use the feature_table source on a synthetic CSV so they run in seconds; the
regression test runs the whole command on audio."""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.config.spec import ExperimentSpec
from runner.data.splits import cv_folds, holdout_split
from runner.errors import DataError, TrialFailed
from runner.search.budget import run_budget
from runner.search.objective import TrialRecord, make_objective
from runner.search.study import count_finished
from runner.session.pipeline import RunOptions, prepare


def _table(path: Path, *, n_groups: int = 24, per_group: int = 4, seed: int = 0) -> Path:
    """Features that separate 3 classes noisily; each group (speaker) holds one class."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        label = ["a", "b", "c"][g % 3]
        centre = {"a": 0.0, "b": 1.0, "c": 2.0}[label]
        for k in range(per_group):
            feats = rng.normal(centre, 1.0, size=4).tolist() + rng.normal(0, 1, size=4).tolist()
            rows.append([f"g{g}_{k}.wav", f"spk{g}", *feats, label])
    cols = ["filename", "speaker"] + [f"mfcc{i}_mean" for i in range(4)]
    cols += [f"chroma{i}_mean" for i in range(4)] + ["label"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return path


def _spec(root: Path, **search) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "search-test",
            "seed": 3,
            "data": {
                "source": "feature_table",
                "root": str(root),
                "manifest": "table.csv",
                "label_column": "label",
                "group_column": "speaker",
            },
            "search": {
                "models": ["logistic", "random_forest"],
                "n_trials": 6,
                "cv": {"folds": 3},
                "pruner": "none",
                **search,
            },
        }
    )


@pytest.fixture
def table_root(workdir: Path) -> Path:
    _table(workdir / "table.csv")
    return workdir


def test_holdout_and_folds_never_split_a_group(table_root: Path) -> None:
    p = prepare(_spec(table_root), RunOptions(progress=False))
    frame = p.dataset.frame
    train_groups = set(frame.iloc[p.split.train]["group"])
    test_groups = set(frame.iloc[p.split.test]["group"])
    assert train_groups and test_groups and not train_groups & test_groups
    train = frame.iloc[p.split.train].reset_index(drop=True)
    for fold in p.data.folds:
        assert not set(train.iloc[fold.train]["group"]) & set(train.iloc[fold.test]["group"])


def test_search_never_sees_the_test_split(table_root: Path) -> None:
    p = prepare(_spec(table_root), RunOptions(progress=False))
    test_clips = set(p.dataset.frame.iloc[p.split.test]["clip_id"])
    assert test_clips
    assert not test_clips & set(p.data.clip_ids)
    assert len(p.data.y) == len(p.split.train)


def test_windows_of_a_clip_stay_in_one_fold() -> None:
    frame = pd.DataFrame(
        {
            "clip_id": np.repeat([f"c{i}" for i in range(20)], 3),
            "label": np.repeat(["x", "y"] * 10, 3),
            "group": None,
        }
    )
    split = holdout_split(frame, test_size=0.25, task="classification", seed=0)
    assert not set(frame.iloc[split.train]["clip_id"]) & set(frame.iloc[split.test]["clip_id"])
    for fold in cv_folds(frame, folds=4, task="classification", seed=0):
        assert not set(frame.iloc[fold.train]["clip_id"]) & set(frame.iloc[fold.test]["clip_id"])


def test_smallest_class_below_folds_is_refused() -> None:
    frame = pd.DataFrame(
        {"clip_id": [f"c{i}" for i in range(12)], "label": ["x"] * 10 + ["y"] * 2, "group": None}
    )
    match = r"search\.cv\.folds: 5 must be at most 2, the clips of class 'y' in training"
    with pytest.raises(DataError, match=match):
        cv_folds(frame, folds=5, task="classification", seed=0)


def _study(direction: str = "maximize", pruner=None) -> optuna.Study:
    return optuna.create_study(
        direction=direction, pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )


def test_pruned_trials_report_every_fold_until_pruned(table_root: Path) -> None:
    spec = _spec(table_root)
    p = prepare(spec, RunOptions(progress=False))
    records: list[TrialRecord] = []
    study = _study(pruner=optuna.pruners.ThresholdPruner(lower=1.01))  # prunes every trial
    study.optimize(make_objective(spec, p.data, records.append), n_trials=3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 3
    assert all(t.intermediate_values.keys() == {0} for t in study.trials)
    assert [r.state for r in records] == ["pruned"] * 3


def test_a_trial_running_past_the_deadline_stops_after_its_fold(table_root: Path) -> None:
    """Past the deadline a trial ends after the fold under way (pruned, with the reason);
    before it the same trial runs every fold."""
    spec = _spec(table_root)
    p = prepare(spec, RunOptions(progress=False))
    late: list[TrialRecord] = []
    study = _study(pruner=optuna.pruners.NopPruner())
    study.optimize(make_objective(spec, p.data, late.append, deadline=time.monotonic()), 2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(t.intermediate_values.keys() == {0} for t in study.trials)
    assert [r.reason for r in late] == ["stopped at the time budget after fold 0"] * 2
    early = _study(pruner=optuna.pruners.NopPruner())
    far = time.monotonic() + 3600
    early.optimize(make_objective(spec, p.data, deadline=far), n_trials=2)
    assert [t.state for t in early.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(t.intermediate_values.keys() == {0, 1, 2} for t in early.trials)


class _SlowFit:
    """Fits in ``FOLD_S`` seconds (a sleep: the GIL is free, as in a native fit), noting when
    each fit starts; predicts the first class."""

    FOLD_S = 1.0
    starts: list[float] = []

    def __init__(self, **_: object) -> None:
        pass

    def fit(self, X, y):
        type(self).starts.append(time.monotonic())
        time.sleep(self.FOLD_S)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def predict_proba(self, X):
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, 0] = 1.0
        return proba


def test_folds_side_by_side_start_none_past_the_deadline(table_root: Path, temporary_family):
    """Two folds at a time, 3 folds of 1 s, the deadline 0.5 s in: folds 0 and 1 start at
    once, and when a worker frees up at 1 s, fold 2 is not started (before, it was, and the
    trial ran 2 s for the 1 s of folds it kept)."""
    temporary_family("slow_for_test", lambda params, **_: _SlowFit())
    spec = _spec(table_root, models=["slow_for_test"], n_jobs=2)
    p = prepare(spec, RunOptions(progress=False))
    records: list[TrialRecord] = []
    study = _study(pruner=optuna.pruners.NopPruner())
    _SlowFit.starts = []
    start = time.monotonic()
    objective = make_objective(spec, p.data, records.append, deadline=start + 0.5)
    study.optimize(objective, n_trials=1)
    assert len(_SlowFit.starts) == 2, "a fold started past the deadline"
    assert max(_SlowFit.starts) - start < 0.5  # both started at once, side by side
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values.keys() == {0, 1}
    assert records[0].reason == "stopped at the time budget after fold 1"


def _broken_build(params, *, task, seed, balanced=False):
    raise_on_fit = type(
        "Broken",
        (),
        {
            "fit": lambda self, X, y: (_ for _ in ()).throw(ValueError("degenerate fold")),
        },
    )
    return raise_on_fit()


@pytest.fixture
def broken_family(temporary_family):
    return temporary_family("broken_for_test", _broken_build)


def test_failed_trial_is_recorded_and_the_study_goes_on(table_root: Path, broken_family) -> None:
    spec = _spec(table_root, models=["broken_for_test", "logistic"])
    p = prepare(spec, RunOptions(progress=False))
    records: list[TrialRecord] = []
    study = _study()
    study.optimize(make_objective(spec, p.data, records.append), n_trials=8, catch=(TrialFailed,))
    states = {t.params["model"]: t.state for t in study.trials}
    assert states["broken_for_test"] == optuna.trial.TrialState.FAIL
    assert states["logistic"] == optuna.trial.TrialState.COMPLETE
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all("degenerate fold" in t.user_attrs["fail_reason"] for t in failed)
    assert {r.state for r in records} == {"failed", "complete"}


def test_ctrl_c_stops_after_the_current_trial_and_resumes(table_root: Path) -> None:
    spec = _spec(table_root)
    p = prepare(spec, RunOptions(progress=False))
    study = optuna.create_study(
        storage=f"sqlite:///{table_root / 'o.db'}", study_name="s", direction="maximize"
    )
    inner = make_objective(spec, p.data)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what a user's Ctrl-C sends
        return inner(trial)

    assert run_budget(study, objective, n_trials=6, deadline=None) is False
    assert count_finished(study) == 2, "the trial running at Ctrl-C finished, then it stopped"
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    resumed = optuna.load_study(study_name="s", storage=f"sqlite:///{table_root / 'o.db'}")
    assert run_budget(resumed, inner, n_trials=6, deadline=None) is True
    assert count_finished(resumed) == 6


def test_same_spec_and_seed_give_the_same_trials(table_root: Path) -> None:
    spec = _spec(table_root, sampler="tpe")
    p = prepare(spec, RunOptions(progress=False))
    runs = []
    for _ in range(2):
        from runner.search.objective import make_sampler

        study = optuna.create_study(direction="maximize", sampler=make_sampler(spec))
        study.optimize(make_objective(spec, p.data), n_trials=6)
        runs.append([(t.params, t.value) for t in study.trials])
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_regression_end_to_end(workdir: Path) -> None:
    from _audio_fixtures import write_tone

    rows = []
    for i in range(24):
        freq = 200.0 + 40.0 * i  # the target is the tone's pitch: learnable from centroid
        write_tone(workdir / "clips" / f"t{i:02d}.wav", freq, 1.0, 16000)
        rows.append({"path": f"t{i:02d}.wav", "pitch": freq})
    pd.DataFrame(rows).to_csv(workdir / "pitch.csv", index=False)
    spec = workdir / "reg.yaml"
    spec.write_text(
        "name: pitch\ntask: regression\n"
        f"data: {{source: manifest, root: {workdir}, manifest: pitch.csv, audio_dir: clips,"
        " label_column: pitch}\n"
        "features: {sample_rate: 16000, extractors: [centroid, rolloff, zcr, mfcc]}\n"
        "search: {models: [ridge, random_forest], n_trials: 3, metric: mae, cv: {folds: 3},"
        " pruner: none}\n"
    )
    assert main(["run", str(spec), "-q"]) == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pitch")
    parent = next(
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    )
    assert parent.data.metrics["test_mae"] >= 0
    assert {"test_rmse", "test_r2"} <= set(parent.data.metrics)
    assert client.get_model_version_by_alias("pitch", "champion").tags["test_mae"]


HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize(
    ("sampler", "pruner"),
    [
        ("tpe", "median"),
        ("random", "wilcoxon"),
        ("cmaes", "hyperband"),
        pytest.param(
            "gp",
            "none",
            marks=pytest.mark.skipif(
                not HAS_TORCH, reason="GPSampler needs PyTorch (the optional 'gp' extra)"
            ),
        ),
    ],
)
def test_every_sampler_and_pruner_runs(table_root: Path, sampler: str, pruner: str) -> None:
    from runner.search.objective import make_pruner, make_sampler

    spec = _spec(table_root, sampler=sampler, pruner=pruner, models=["logistic"])
    p = prepare(spec, RunOptions(progress=False))
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    study.optimize(make_objective(spec, p.data), n_trials=4, catch=(TrialFailed,))
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 1
    names = {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "cmaes": "CmaEsSampler",
        "gp": "GPSampler",
    }
    assert type(study.sampler).__name__ == names[sampler]


def test_feature_groups_are_searched(table_root: Path) -> None:
    spec = _spec(table_root, feature_groups=True, models=["logistic"], n_trials=8)
    p = prepare(spec, RunOptions(progress=False))
    assert set(p.data.groups) == {"mfcc", "chroma"}
    records: list[TrialRecord] = []
    study = _study()
    study.optimize(make_objective(spec, p.data, records.append), n_trials=8, catch=(TrialFailed,))
    assert all({"features.mfcc", "features.chroma"} <= t.params.keys() for t in study.trials)
    used = {tuple(r.columns) for r in records if r.state == "complete"}
    assert len(used) > 1, "trials kept different feature groups"
    for r in records:
        if r.state == "complete":
            kept = {c.split("_")[0].rstrip("0123456789") for c in r.columns}
            assert kept == set(r.setup.groups)


def test_metric_directions(table_root: Path) -> None:
    from runner.search.study import open_study

    for metric, direction in [("log_loss", "MINIMIZE"), ("roc_auc_ovr", "MAXIMIZE")]:
        spec = _spec(table_root, metric=metric)
        study = open_study(
            spec,
            name=metric,
            storage=f"sqlite:///{table_root / 'd.db'}",
            sampler=optuna.samplers.RandomSampler(),
            pruner=optuna.pruners.NopPruner(),
        )
        assert study.direction.name == direction


@pytest.mark.skipif(HAS_TORCH, reason="checks the message shown when PyTorch is absent")
def test_gp_sampler_without_torch_is_a_spec_error(table_root: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"search\.sampler: 'gp'.*needs PyTorch"):
        _spec(table_root, sampler="gp")


def test_live_line_and_leaderboard_read_one_clock(table_root: Path) -> None:
    """The trial's seconds, measured once by the objective, are what the live line prints
    and the leaderboard shows; the observer's own time (tracking) is not in them."""
    from rich.console import Console

    from runner.search.objective import trials_frame
    from runner.tracking.report import print_trial

    spec = _spec(table_root)
    p = prepare(spec, RunOptions(progress=False))
    records: list[TrialRecord] = []

    def slow_observer(record: TrialRecord) -> None:
        records.append(record)
        time.sleep(0.3)  # what logging the child run costs, outside the trial's clock

    study = _study()
    study.optimize(make_objective(spec, p.data, slow_observer), n_trials=3)
    board = trials_frame(study, spec.search.metric).set_index("trial")
    console = Console(record=True, width=200)
    for record, trial in zip(records, study.trials, strict=True):
        assert record.seconds > 0
        assert trial.user_attrs["seconds"] == round(record.seconds, 3)
        assert board.loc[trial.number, "seconds"] == trial.user_attrs["seconds"]
        assert trial.duration.total_seconds() >= record.seconds + 0.3
        print_trial(console, record, spec.search.metric)
        assert f"{record.seconds:6.1f}s" in console.export_text().splitlines()[-1]
