"""Image+table families in feature importance and in the feature-group search: the log-mel
image and the metadata are one group each, and the search can switch the metadata off.

Tiny noise images whose only signal is in a categorical metadata column; a one-block CNN
trained for a few epochs learns it in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runner.config.spec import ExperimentSpec
from runner.data.splits import Split
from runner.models import (
    IMAGE_GROUP,
    IMAGE_TABLE,
    METADATA_GROUP,
    MODELS,
    ColumnRoles,
    Inputs,
    Rows,
    ensure_loaded,
)
from runner.search.evaluation import metric_scorer
from runner.search.objective import SearchData, TrialRecord, make_objective
from runner.tracking.tracker import Tracker

ensure_loaded()
ROLES = ColumnRoles(numeric=("votes",), categorical=("accent",))
AUDIO = ["rms_mean", "zcr_mean"]
COLUMNS = [*AUDIO, *ROLES.columns]
GROUPS = {"rms": ["rms_mean"], "zcr": ["zcr_mean"], METADATA_GROUP: list(ROLES.columns)}
PARAMS = {
    "n_blocks": 1, "filters": 8, "kernel_size": 3, "dense_units": 32, "metadata_units": 8,
    "dropout": 0.0, "learning_rate": 0.01, "batch_size": 16, "epochs": 25,
}  # fmt: skip
# Accent 'scottish' is 60 years old, 'us' 22: shuffling the accent over the rows moves about
# half of them by 38 years, so the MAE grows by well over this many years.
MIN_METADATA_DROP = 8.0


def _rows(n: int, seed: int) -> tuple[Rows, np.ndarray]:
    """Noise images (8 mels x 8 frames) and a target that only the accent knows."""
    rng = np.random.default_rng(seed)
    accent = np.where(np.arange(n) % 2 == 0, "scottish", "us").astype(object)
    y = np.where(accent == "scottish", 60.0, 22.0) + rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {"rms_mean": rng.normal(size=n), "zcr_mean": rng.normal(size=n),
         "votes": rng.integers(0, 5, n).astype(float), "accent": accent}
    )  # fmt: skip
    images = rng.normal(-40, 10, size=(n, 8, 8)).astype(np.float32)
    return Rows(frame, images.__getitem__), y


def _tracker(tmp_path: Path) -> Tracker:
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "fused", task="regression",
                      metric="mae")  # fmt: skip
    tracker.plots = {"feature_importance"}
    tracker.importance_groups = GROUPS
    tracker.start_parent("fused", {})
    return tracker


def _logged_importance(tracker: Tracker, run_id: str) -> dict:
    client = MlflowClient(tracker.uri)
    folder = client.download_artifacts(run_id, "feature_importance.json")
    return json.loads(Path(folder).read_text())


@pytest.mark.slow
def test_metadata_ranks_first_in_fused_importance(tmp_path: Path) -> None:
    train, y_train = _rows(64, seed=0)
    valid, y_valid = _rows(32, seed=1)
    roles = ROLES
    model = MODELS["keras_cnn"].make(PARAMS, task="regression", seed=0, metadata=roles)
    model.fit(Inputs(IMAGE_TABLE, train, COLUMNS, roles).all(), y_train)
    X = Inputs(IMAGE_TABLE, valid, COLUMNS, roles).all()
    mae = -metric_scorer("regression", "mae", None)(model, X, y_valid)
    assert mae < 5.0, mae  # the network learned the accent (a constant guess is off by 19)

    tracker = _tracker(tmp_path)
    imp = tracker.log_importance(model, X, y_valid, COLUMNS, kind=IMAGE_TABLE, seed=0)
    tracker.end_parent()
    assert set(imp.index) == {IMAGE_GROUP, "votes", "accent"}
    assert imp.index[0] == "accent"
    groups = _logged_importance(tracker, tracker.parent_id)["groups"]
    print(f"fused importance (MAE drop, years): {groups}")
    assert list(groups) == [METADATA_GROUP, IMAGE_GROUP], groups  # largest first
    assert groups[METADATA_GROUP] > MIN_METADATA_DROP, groups
    assert groups[METADATA_GROUP] > groups[IMAGE_GROUP] + MIN_METADATA_DROP, groups
    names = {a.path for a in MlflowClient(tracker.uri).list_artifacts(tracker.parent_id)}
    assert "feature_importance.png" in names


def _spec(tmp_path: Path) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "fused-groups", "task": "regression", "seed": 0,
            "data": {"source": "manifest", "root": str(tmp_path), "manifest": "ages.csv",
                     "label_column": "age",
                     "metadata": {"numeric": ["votes"], "categorical": ["accent"]}},
            "features": {"mel_image": True},
            "search": {"models": ["keras_cnn"], "metric": "mae", "n_trials": 2,
                       "cv": {"folds": 2}, "pruner": "none", "feature_groups": True,
                       "spaces": {"keras_cnn": PARAMS}},
            "tracking": {"plots": ["feature_importance"]},
        }
    )  # fmt: skip


@pytest.mark.slow
def test_group_search_switches_the_metadata_branch_off(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    rows, y = _rows(48, seed=2)
    index = np.arange(len(y))
    half = (index // 2) % 2  # both accents on each side (the accent alternates by row)
    folds = [Split(train=index[half == k], test=index[half != k]) for k in (0, 1)]
    data = SearchData(rows=rows, y=y, clip_ids=index.astype(str), feature_columns=COLUMNS,
                      groups=GROUPS, folds=folds, classes=None, roles=ROLES)  # fmt: skip
    tracker = _tracker(tmp_path)
    records: list[TrialRecord] = []

    def observe(record: TrialRecord) -> None:
        records.append(record)
        tracker.log_trial(record)

    study = optuna.create_study(direction="minimize")
    for keep in (False, True):
        study.enqueue_trial({"model": "keras_cnn", "features.metadata": keep})
    study.optimize(make_objective(spec, data, observe, on_start=None), n_trials=2)
    tracker.flush()
    tracker.end_parent()

    off, on = records
    assert [r.state for r in records] == ["complete", "complete"], [r.reason for r in records]
    # Only the metadata is switched beside an image: no audio group is searched.
    assert {k for k in study.trials[0].params if k.startswith("features.")} == {
        "features.metadata"
    }
    assert off.setup.groups == [] and off.columns == []
    assert on.setup.groups == [METADATA_GROUP]
    # Metadata off: a bare CNN with the image as its one input, fed images only.
    network = off.cv.last_estimator
    assert not hasattr(network, "encoder_") and len(network.model_.inputs) == 1
    assert isinstance(off.X_last, np.ndarray) and off.X_last.ndim == 3
    # Metadata on: the encoded metadata is the network's second input.
    assert len(on.cv.last_estimator.fitted_.model_.inputs) == 2
    assert on.cv.mean()["mae"] < 0.5 * off.cv.mean()["mae"], (on.cv.mean(), off.cv.mean())
    # Each child run's importance has the groups its model read.
    client = MlflowClient(tracker.uri)
    child = {
        int(r.data.tags["trial_number"]): r.info.run_id
        for r in client.search_runs([tracker.experiment_id], "tags.trial_number != ''")
    }
    assert set(_logged_importance(tracker, child[off.number])["groups"]) == {IMAGE_GROUP}
    groups = _logged_importance(tracker, child[on.number])["groups"]
    assert next(iter(groups)) == METADATA_GROUP and groups[METADATA_GROUP] > MIN_METADATA_DROP


@pytest.mark.parametrize("kind_name", ["image", "table"])
def test_kinds_switch_only_the_groups_they_read(kind_name: str) -> None:
    from runner.models import input_kind

    kind = input_kind(kind_name)
    selectable = kind.selectable_groups(GROUPS, ROLES)
    assert selectable == ([] if kind_name == "image" else list(GROUPS))
    assert IMAGE_TABLE.selectable_groups(GROUPS, ROLES) == [METADATA_GROUP]
