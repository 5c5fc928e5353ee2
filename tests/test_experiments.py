"""The shipped experiment specs in experiments/.

Fast: every spec validates and tells the user how to point it at a copy of its data;
`audioml experiments` lists each one.
Slow: each spec runs end to end on a miniature dataset written in the exact layout its
comment block documents (GTZAN folders, the 57-column features CSV, Common Voice train.tsv
with mp3 clips and empty labels, a labels JSON), asserted through MlflowClient. The search is
cut to two cheap trials, but each spec's own data, segments and feature settings are kept, so
what is exercised is the layout and the way the spec reads it.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.config.loading import load_spec
from runner.config.spec import ExperimentSpec
from runner.session.pipeline import Prepared, RunOptions, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent / "runner"))  # shared layouts
from _audio_fixtures import (
    make_common_voice,
    make_feature_table_csv,
    make_folder_dataset,
    make_labels_json,
)

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
SPECS = sorted(EXPERIMENTS.glob("*.yaml"), key=lambda p: p.name)
SHIPPED = {"demo", "genre", "genre_windows", "genre_features", "gender", "age",
           "age_regression", "age_fusion", "music_dialogue", "music_dialogue_binary"}  # fmt: skip
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
          "reggae", "rock")  # fmt: skip
# Common Voice bucket -> a numeric age, as docs/experiments.md derives ages.csv.
AGE_MIDPOINTS = {"teens": 16, "twenties": 25, "thirties": 35, "fourties": 45, "fifties": 55,
                 "sixties": 65, "seventies": 75, "eighties": 85, "nineties": 95}  # fmt: skip
# Two trials of one linear family over two folds, extraction in-process: the budget of a test.
CHEAP = ("search.n_trials=2", "search.cv.folds=2", "search.timeout_s=120", "features.n_jobs=1")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_validates_and_says_how_to_point_it_at_data(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    header = path.read_text(encoding="utf-8").split("\nname:")[0]
    assert f"audioml run experiments/{path.name} --set data.root=" in header


def test_every_task_is_shipped_and_documented() -> None:
    assert {p.stem for p in SPECS} >= SHIPPED
    docs = (REPO / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert all(f"`{name}.yaml`" in docs for name in SHIPPED)
    # Distinct registry names, so one task's champion never gates another's.
    names = [load_spec(p).model_name for p in SPECS]
    assert len(set(names)) == len(names)


def test_experiments_lists_each_shipped_spec_on_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["experiments"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split(None, 2) for line in lines[: len(SPECS)]}
    assert list(rows) == [p.stem for p in SPECS]
    for path in SPECS:
        _, task, about = rows[path.stem]
        assert task == load_spec(path).task
        # The description is the start of the spec's own header comment, one line.
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        assert first.startswith(about.removesuffix("...")) and 10 < len(about) <= 80
    assert rows["age_regression"][1] == "regression"
    assert rows["demo"][2] == "The synthetic demo: music versus speech"
    assert "audioml validate demo" in lines[-1]


# ---- miniature datasets, one per layout, written once per module ---------------------------


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``genres_original/<genre>/<genre>.000NN.wav``: 5 clips per genre (the stratified test
    split needs one per class), 6.5 s so that 3-s windows give 2 per clip."""
    root = tmp_path_factory.mktemp("gtzan") / "genres_original"
    return make_folder_dataset(root, GENRES, 5, sr=22050, seconds=6.5)


@pytest.fixture(scope="module")
def gtzan_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gtzan_features")
    make_feature_table_csv(root / "features_30_sec.csv", 100, list(GENRES))
    return root


@pytest.fixture(scope="module")
def common_voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train.tsv`` + ``clips/*.mp3`` with empty and ``other`` labels, both gender spellings,
    and an ``ages.csv`` derived from it as docs/experiments.md shows.

    19 speakers alternate male/female (10 vs 9, so downsampling has work to do) and cycle
    through six age buckets (3-4 speakers each, so every bucket survives a grouped split).
    """
    root = tmp_path_factory.mktemp("cv") / "en"
    tsv = make_common_voice(root, n_speakers=19, clips_per_speaker=2, seconds=1.0)
    # Releases from 17 on write male_masculine / female_feminine: use them for every other
    # speaker pair. Plain text edit: the file is never quoted, as Common Voice writes it.
    lines = tsv.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    col, speakers = header.index("gender"), []
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split("\t")
        if cells[0] not in speakers:
            speakers.append(cells[0])
        if speakers.index(cells[0]) % 4 >= 2:
            cells[col] = {"male": "male_masculine", "female": "female_feminine"}.get(
                cells[col], cells[col]
            )
        lines[i] = "\t".join(cells)
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cv = pd.read_csv(tsv, sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    cv["age"] = cv["age"].map(AGE_MIDPOINTS)  # empty buckets stay empty and are dropped
    keep = ["path", "age", "client_id", "gender", "accent", "up_votes", "down_votes"]
    cv[keep].to_csv(root / "ages.csv", index=False)
    return root


@pytest.fixture(scope="module")
def common_voice_rare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Common Voice where the two oldest buckets have one speaker each, as small releases do;
    the six others have three speakers of two clips."""
    root = tmp_path_factory.mktemp("cv_rare") / "en"
    tsv = make_common_voice(root, n_speakers=20, clips_per_speaker=2, seconds=1.0)
    lines = tsv.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    col, speakers = header.index("age"), []
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split("\t")
        speakers += [] if cells[0] in speakers else [cells[0]]
        if speakers.index(cells[0]) >= 18:  # plain text edit: the file is never quoted
            cells[col] = ("eighties", "nineties")[speakers.index(cells[0]) - 18]
        lines[i] = "\t".join(cells)
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def music_dialogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labels.json`` of music | dialogue | both; 11-s clips, so "the last 10 s" cuts."""
    root = tmp_path_factory.mktemp("music_dialogue")
    make_labels_json(root, {"music": 6, "dialogue": 6, "both": 6}, seconds=11.0)
    return root


# ---- helpers ------------------------------------------------------------------------------


def _run(name: str, root: Path, *overrides: str, models: str = "[logistic]") -> ExperimentSpec:
    """``audioml run experiments/<name>.yaml`` cheaply; returns the spec as it ran."""
    sets = (f"data.root={root}", f"search.models={models}", *CHEAP, *overrides)
    path = EXPERIMENTS / f"{name}.yaml"
    assert main(["run", str(path), "-q", *(a for s in sets for a in ("--set", s))]) == 0
    return load_spec(path, sets)


def _assert_run(workdir: Path, spec: ExperimentSpec, n_trials: int = 2):
    """One FINISHED parent with n child runs, a test score, and a champion version."""
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = [r for r in children if "trial_number" in r.data.tags]
    assert len(trials) == n_trials
    # At most two more: the ensemble selection and the stacker, when two trials or more
    # completed.
    assert len(children) - len(trials) <= 2
    score = parent.data.metrics[f"test_{spec.search.metric}"]
    assert np.isfinite(score)
    if spec.task == "classification":
        assert 0.0 <= score <= 1.0
    version = client.get_model_version_by_alias(spec.model_name, "champion")
    assert version.tags["run_id"] == parent.info.run_id
    return parent


def _prepare_grouped(spec: ExperimentSpec, workdir: Path) -> Prepared:
    """The run's data and split (same spec and seed, features from the cache); asserts that
    no speaker has clips on both sides of the held-out test split."""
    p = prepare(spec, RunOptions(progress=False), base=workdir)
    groups = p.dataset.frame["group"]
    train, test = set(groups.iloc[p.split.train]), set(groups.iloc[p.split.test])
    assert train and test and not train & test
    return p


# ---- each spec end to end -----------------------------------------------------------------


@pytest.mark.slow
def test_genre(workdir: Path, gtzan: Path) -> None:
    spec = _run("genre", gtzan)
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["rows"] == 50  # one row per whole clip


@pytest.mark.slow
def test_genre_windows(workdir: Path, gtzan: Path) -> None:
    spec = _run("genre_windows", gtzan)
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["rows"] == 100  # two 3-s windows per 6.5-s clip
    # Scores are per clip after aggregation: the test split holds 10 clips, 20 windows.
    p = prepare(spec, RunOptions(progress=False), base=workdir)
    assert p.dataset.frame["clip_id"].iloc[p.split.test].nunique() == 10


@pytest.mark.slow
def test_genre_windows_cnn_on_mel_images(workdir: Path, gtzan: Path) -> None:
    # The smallest network and epoch count configs/search_spaces/keras_cnn.yaml allows, on
    # 32 x 32 log-mels (the spec's 128 x 128 only cost time here).
    space = "search.spaces.keras_cnn={epochs: 5, n_blocks: 1, filters: 8, batch_size: 16}"
    small = ("features.n_mels=32", "features.mel_image_frames=32")
    spec = _run("genre_windows", gtzan, space, *small, models="[keras_cnn]")
    parent = _assert_run(workdir, spec)
    assert json.loads(parent.data.params["search.models"]) == ["keras_cnn"]


@pytest.mark.slow
def test_genre_features(workdir: Path, gtzan_features: Path) -> None:
    spec = _run("genre_features", gtzan_features)
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["rows"] == 100
    p = prepare(spec, RunOptions(progress=False), base=workdir)
    assert len(p.dataset.feature_columns) == 57  # filename, length and label are not features


@pytest.mark.slow
def test_gender(workdir: Path, common_voice: Path) -> None:
    spec = _run("gender", common_voice)
    _assert_run(workdir, spec)
    p = _prepare_grouped(spec, workdir)
    report = p.dataset.report
    assert report["empty_label_dropped"] == 2 and report["filtered_out"] == 1  # "", "other"
    assert report["relabelled"] > 0 and report["downsampled_out"] == 2
    assert p.dataset.frame["label"].value_counts().to_dict() == {"female": 18, "male": 18}
    # Metadata rides beside the audio features; the label (gender) is never among it.
    assert p.dataset.groups["metadata"] == ["up_votes", "down_votes", "age"]


@pytest.mark.slow
def test_age(workdir: Path, common_voice: Path) -> None:
    spec = _run("age", common_voice)
    _assert_run(workdir, spec)
    p = _prepare_grouped(spec, workdir)
    assert p.dataset.report["empty_label_dropped"] == 2
    assert "fourties" in set(p.dataset.frame["label"])  # Common Voice's spelling, kept
    assert p.dataset.class_weight is not None  # balance: class_weight, not downsampling


@pytest.mark.slow
def test_age_drops_buckets_of_a_single_speaker(
    workdir: Path, common_voice_rare: Path, capsys: pytest.CaptureFixture
) -> None:
    # Without the key, the data check names the rare buckets before any audio is decoded.
    sets = (f"data.root={common_voice_rare}", "search.cv.folds=2", "data.min_clips_per_class=null")
    path = str(EXPERIMENTS / "age.yaml")
    assert main(["validate", "--check-data", path, *(a for s in sets for a in ("--set", s))]) == 2
    out = capsys.readouterr().out
    assert "'eighties' has 1" in out and "'nineties' has 1" in out and "client_id" in out
    spec = _run("age", common_voice_rare)
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["source_rare_class_dropped"] == 4  # one speaker, 2 clips each
    p = _prepare_grouped(spec, workdir)
    assert set(p.dataset.frame["label"]) == {
        "teens", "twenties", "thirties", "fourties", "fifties", "sixties"
    }  # fmt: skip


@pytest.mark.slow
def test_age_regression(workdir: Path, common_voice: Path) -> None:
    spec = _run("age_regression", common_voice, models="[ridge]")
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["test_mae"] >= 0
    p = _prepare_grouped(spec, workdir)
    assert p.dataset.report["empty_label_dropped"] == 2
    assert set(p.dataset.frame["label"]) <= set(AGE_MIDPOINTS.values())
    assert p.dataset.roles.categorical == ("gender", "accent")


@pytest.mark.slow
def test_music_dialogue(workdir: Path, music_dialogue: Path) -> None:
    spec = _run("music_dialogue", music_dialogue)
    parent = _assert_run(workdir, spec)
    assert parent.data.metrics["rows"] == 18  # mode last: one segment per clip
    p = prepare(spec, RunOptions(progress=False), base=workdir)
    assert sorted(p.dataset.frame["label"].unique()) == ["both", "dialogue", "music"]


@pytest.mark.slow
def test_music_dialogue_binary(workdir: Path, music_dialogue: Path) -> None:
    spec = _run("music_dialogue_binary", music_dialogue)
    _assert_run(workdir, spec)
    p = prepare(spec, RunOptions(progress=False), base=workdir)
    counts = p.dataset.frame["label"].value_counts().to_dict()
    assert counts == {"music": 12, "dialogue": 6}  # both folded into music
