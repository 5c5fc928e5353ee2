"""What lands in MLflow, asserted through MlflowClient on a real SQLite store."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_search import _spec, _table

from runner.errors import TrialFailed
from runner.search.budget import run_budget
from runner.search.objective import make_objective
from runner.session.pipeline import RunOptions, open_spec_study, prepare
from runner.session.session import run_experiment, start_tracking


@pytest.fixture
def table_root(workdir: Path) -> Path:
    _table(workdir / "table.csv")
    return workdir


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def _children(client: MlflowClient, parent_id: str, experiment_id: str):
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["trial_number"]))


@pytest.fixture
def failing_family(temporary_family):
    def build(params, *, task, seed, balanced=False):
        raise TrialFailed("cannot build on purpose")

    return temporary_family("failing_for_test", build)


def test_complete_pruned_and_failed_trials_share_metric_keys(table_root, failing_family) -> None:
    spec = _spec(table_root, models=["failing_for_test", "logistic"], n_trials=8)
    opts = RunOptions(progress=False)
    p = prepare(spec, opts)
    study = open_spec_study(p)
    tracker = start_tracking(p, opts, study)
    objective = make_objective(spec, p.data, tracker.log_trial)
    study.optimize(objective, n_trials=6, catch=(TrialFailed,))
    # Then prune every trial with a pruner no score can satisfy.
    study.pruner = optuna.pruners.ThresholdPruner(lower=1.01)
    for _ in range(2):
        study.enqueue_trial({"model": "logistic"})
    study.optimize(objective, n_trials=2, catch=(TrialFailed,))
    client = _client(table_root)
    children = _children(client, tracker.parent_id, tracker.experiment_id)
    assert len(children) == 8
    by_state = {}
    for run in children:
        by_state.setdefault(run.data.tags["state"], []).append(run)
    assert {"COMPLETE", "FAILED"} <= by_state.keys()
    assert by_state["FAILED"][0].info.status == "FAILED"
    assert "cannot build on purpose" in by_state["FAILED"][0].data.tags["reason"]
    pruned = [r for r in children if r.data.tags["state"] == "PRUNED"]
    # Pruning is how a trial ends by design: FINISHED; KILLED is left for a person's Ctrl-C.
    assert pruned and all(r.info.status == "FINISHED" for r in pruned)
    assert len({frozenset(r.data.metrics) for r in children}) == 1
    done = by_state["COMPLETE"][0]
    steps = [m.step for m in client.get_metric_history(done.info.run_id, "fold_f1_macro")]
    assert sorted(steps) == [0, 1, 2]
    names = {a.path for a in client.list_artifacts(done.info.run_id)}
    assert {
        "confusion_matrix_oof.svg",
        "feature_importance.svg",
        "feature_importance.json",
        "oof.npz",
    } <= names
    assert done.info.run_name == f"trial-{done.data.tags['trial_number']}-logistic"


@pytest.fixture
def ctrl_c_family(temporary_family):
    def build(params, *, task, seed, balanced=False):
        os.kill(os.getpid(), signal.SIGINT)  # a user's Ctrl-C: stop after this trial ...
        os.kill(os.getpid(), signal.SIGINT)  # ... and again: stop now, mid-trial
        time.sleep(5)  # the second one raises KeyboardInterrupt here
        raise AssertionError("the second Ctrl-C did not interrupt the trial")

    return temporary_family("ctrl_c_for_test", build)


def test_only_a_trial_cut_by_ctrl_c_ends_killed(table_root, ctrl_c_family) -> None:
    # One fold at a time: the family builds on the main thread, where signals land.
    models = ["logistic", "ctrl_c_for_test"]
    spec = _spec(table_root, models=models, warm_start=False, n_jobs=1)
    opts = RunOptions(progress=False)
    p = prepare(spec, opts)
    study = open_spec_study(p)
    tracker = start_tracking(p, opts, study)
    study.enqueue_trial({"model": "logistic"})
    study.enqueue_trial({"model": "ctrl_c_for_test"})
    objective = make_objective(spec, p.data, tracker.log_trial)
    with pytest.raises(KeyboardInterrupt):
        run_budget(study, objective, n_trials=3, deadline=None)
    children = _children(_client(table_root), tracker.parent_id, tracker.experiment_id)
    ended = [(r.data.params["model"], r.info.status, r.data.tags.get("reason")) for r in children]
    assert ended == [("logistic", "FINISHED", None), ("ctrl_c_for_test", "KILLED", "interrupted")]


@pytest.fixture
def finished_run(table_root: Path) -> dict:
    spec = _spec(table_root, n_trials=3)
    return run_experiment(spec, RunOptions(progress=False))


def test_parent_run_params_tags_inputs_and_artifacts(table_root: Path, finished_run) -> None:
    client = _client(table_root)
    parent = client.get_run(finished_run["parent_run_id"])
    tags = parent.data.tags
    for key in ("spec_hash", "data_digest", "audioml_version", "study_name", "optuna_storage"):
        assert tags[key], key
    assert parent.data.params["search.metric"] == "f1_macro"
    # Where the wall time went: the stages' seconds, as metrics and in the summary.
    timing = finished_run["timing"]
    assert set(timing) == {"time_prepare_s", "time_search_s", "time_final_s"}
    for key, seconds in timing.items():
        assert parent.data.metrics[key] == pytest.approx(seconds) and seconds > 0, key
    span = (parent.info.end_time - parent.info.start_time) / 1000
    assert timing["time_search_s"] + timing["time_final_s"] <= span + 1.0
    assert parent.data.params["data.source"] == "feature_table"
    assert parent.inputs.dataset_inputs, "the feature table is logged as a dataset input"
    assert parent.inputs.dataset_inputs[0].dataset.digest
    local = Path(client.download_artifacts(parent.info.run_id, "", str(table_root / "dl")))
    expected = [
        "spec/spec.resolved.yaml",
        "search_space.json",
        "feature_table_schema.json",
        "skipped_clips.csv",
        "leaderboard.csv",
        "optuna/history.png",
        "final/confusion_matrix.png",
        "final/confusion_matrix_normalized.png",
        "final/classification_report.json",
        "final/roc_pr_curves.png",
        "feature_importance.png",
    ]
    for name in expected:
        assert (local / name).stat().st_size > 0, name
    assert {"test_f1_macro", "test_accuracy", "best_cv_f1_macro"} <= set(parent.data.metrics)


def test_alias_moves_only_for_a_better_version(table_root: Path, finished_run) -> None:
    from runner.tracking.gate import ChampionScore, score_champion
    from runner.tracking.tracker import Tracker

    client = _client(table_root)
    name, uri = "search-test", f"sqlite:///{table_root / 'mlflow.db'}"
    first = client.get_model_version_by_alias(name, "champion")
    score = float(first.tags["test_f1_macro"])
    # Re-scored by runner.tracking.gate on its own split (the same feature rows), the champion
    # scores exactly what its test tag says.
    p = prepare(_spec(table_root, n_trials=3), RunOptions(progress=False))
    own = score_champion(p, f"models:/{name}/{first.version}", tracking_uri=uri)
    assert own.reason is None and own.score == pytest.approx(score, abs=1e-12)
    assert own.rows == p.dataset.frame["clip_id"].iloc[p.split.test].nunique()
    # A table without a column the champion reads: no score, and the reason names it.
    pd.read_csv(table_root / "table.csv").drop(columns="chroma3_mean").to_csv(
        table_root / "fewer.csv", index=False
    )
    data = p.spec.data.model_copy(update={"manifest": "fewer.csv"})
    fewer = prepare(p.spec.model_copy(update={"data": data}), RunOptions(progress=False))
    missing = score_champion(fewer, f"models:/{name}/{first.version}", tracking_uri=uri)
    assert missing.score is None and "chroma3_mean" in missing.reason

    tracker = Tracker(uri, "search-test", task="classification", metric="f1_macro")
    model = finished_run["model_uri"]
    held = ChampionScore(score, own.rows)

    def register(test_score: float, champion: ChampionScore, **kw):
        return tracker.register(
            model, name, alias="champion", tags={}, test_score=test_score,
            champion=lambda _: champion, **kw,
        )  # fmt: skip

    worse = register(score - 0.1, held)
    assert not worse.moved and worse.champion_score == pytest.approx(score)
    assert worse.holder == str(first.version)
    tie = register(score, held)  # a tie keeps the holder
    unscorable = register(score + 0.5, ChampionScore(None, own.rows, "other classes"))
    assert not tie.moved and not unscorable.moved
    tags = client.get_model_version(name, unscorable.version).tags
    assert tags["gate_reason"] == "other classes" and "gate_champion_score" not in tags
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(first.version)
    better = register(score + 0.05, held)
    assert better.moved
    tags = client.get_model_version(name, better.version).tags
    assert float(tags["gate_champion_score"]) == pytest.approx(score)
    assert float(tags["gate_challenger_score"]) == pytest.approx(score + 0.05)
    assert tags["gate_test_rows"] == str(own.rows) and tags["gate_metric"] == "f1_macro"
    forced = register(score - 0.5, held, promote="always")
    assert forced.moved
    roles = {
        str(v.version): v.tags["role"] for v in client.search_model_versions(f"name='{name}'")
    }
    assert roles == {
        str(first.version): "former_champion", worse.version: "challenger",
        tie.version: "challenger", unscorable.version: "challenger",
        better.version: "former_champion", forced.version: "champion",
    }  # fmt: skip


def test_version_tags_carry_metrics_spec_hash_and_run(table_root: Path, finished_run) -> None:
    client = _client(table_root)
    version = client.get_model_version_by_alias("search-test", "champion")
    assert version.tags["run_id"] == finished_run["parent_run_id"]
    assert {"test_f1_macro", "cv_f1_macro", "spec_hash", "model_family"} <= set(version.tags)
