"""The search benchmark's harness: every contender fits on the runner's training rows, is
tested on its test rows and scored like the registered model (benchmarks/bench_search.py)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest

from benchmarks._contenders import Result, held_out, run_flaml, run_forest, run_grid, split_of
from benchmarks._corpora import ensure
from benchmarks._genres import GENRES as TASKS_GENRES
from benchmarks._search_report import (
    Report,
    TaskRun,
    load,
    markdown,
    merge,
    paired,
    save,
    verdicts,
)
from benchmarks.bench_search import CONTENDERS, TASKS, prepared, run_audioml

GENRE = TASKS["genre_features"]


@pytest.fixture(scope="module")
def genre(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 300-row GTZAN-shaped table (10 genres) and a feature cache folder."""
    root = tmp_path_factory.mktemp("bench")
    corpus, _ = ensure(root / "gtzan", "gtzan_table", rows=300)
    return corpus, root / "cache"


def test_contenders_get_the_runners_split_and_folds(genre: tuple[Path, Path]) -> None:
    corpus, cache = genre
    p = prepared(GENRE, corpus, cache, seed=3)
    s = split_of(p)
    frame, columns = p.dataset.frame, p.dataset.feature_columns
    np.testing.assert_array_equal(s.X_train.to_numpy(), frame.iloc[p.split.train][columns])
    np.testing.assert_array_equal(s.X_test.to_numpy(), frame.iloc[p.split.test][columns])
    np.testing.assert_array_equal(s.y_train, p.data.y)
    assert not set(s.test_clips) & set(frame.iloc[p.split.train]["clip_id"])
    assert len(s.test_truth) == len(p.split.test) == round(0.2 * 300)
    for (train, test), fold in zip(s.folds, p.data.folds, strict=True):
        np.testing.assert_array_equal(train, fold.train)
        np.testing.assert_array_equal(test, fold.test)
    # run_experiment prepares the spec again: the same seed must give the same split ...
    again = split_of(prepared(GENRE, corpus, cache, seed=3))
    np.testing.assert_array_equal(again.test_rows, s.test_rows)
    # ... and another seed another one (the benchmark's seeds are different splits).
    other = split_of(prepared(GENRE, corpus, cache, seed=4))
    assert set(other.test_rows) != set(s.test_rows)


@pytest.mark.slow
def test_runner_result_is_its_registered_models_test_score(
    genre: tuple[Path, Path], tmp_path: Path
) -> None:
    """The runner's figure equals held_out() of its registered model on split_of()'s test
    rows: the peers are tested on the same rows with the same function."""
    corpus, cache = genre
    only = ["search.models=[logistic]", "tracking.plots=[]"]
    result = run_audioml(GENRE, corpus, cache, 0, budget_s=3, extra=only, workdir=tmp_path)
    s = split_of(prepared(GENRE, corpus, cache, seed=0, extra=only))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/genre-features-classifier/1")
    estimator = model.unwrap_python_model().estimator
    assert held_out(s, estimator, s.X_test.to_numpy())["f1_macro"] == pytest.approx(result.score)
    assert result.score > 0.2  # twice chance (10 classes)
    assert "complete" in result.detail


@pytest.mark.slow
def test_grid_learns_on_the_runners_rows(genre: tuple[Path, Path]) -> None:
    corpus, cache = genre
    s = split_of(prepared(GENRE, corpus, cache, seed=0))
    grid = run_grid(s, ["logistic", "keras_mlp"])
    assert grid.detail.startswith("best logistic") and "no grid: keras_mlp" in grid.detail
    assert grid.score > 0.2, grid  # twice chance on held-out genres


@pytest.mark.slow
def test_flaml_learns_on_the_runners_rows(genre: tuple[Path, Path]) -> None:
    # FLAML is the benchmark's extra (`pip install -e ".[bench]"`, about 600 MB with
    # xgboost's CUDA libraries), not a test dependency: without it there is nothing to test.
    pytest.importorskip("flaml.automl", reason="needs the bench extra (FLAML)")
    corpus, cache = genre
    s = split_of(prepared(GENRE, corpus, cache, seed=0))
    flaml = run_flaml(s, budget_s=3, seed=0)
    assert flaml.score > 0.2, flaml


@pytest.mark.slow
def test_autogluon_is_tested_on_the_runners_test_clips(
    genre: tuple[Path, Path], tmp_path: Path
) -> None:
    """AutoGluon (the bench extra, like FLAML) fits on the runner's training rows, predicts
    every test clip, and its figure is held_out() of those predictions: macro F1 over clips."""
    pytest.importorskip("autogluon.tabular", reason="needs the bench extra (AutoGluon)")
    from sklearn.metrics import f1_score

    from benchmarks._autogluon import excluded_models, fit_autogluon, run_autogluon

    corpus, cache = genre
    s = split_of(prepared(GENRE, corpus, cache, seed=0))
    model = fit_autogluon(s, budget_s=4, path=tmp_path / "ag")
    pred = model.predict(s.X_test)
    assert len(pred) == len(s.test_clips) == 60 and set(pred) <= set(s.classes)
    assert model.predict_proba(s.X_test).shape == (60, 10)
    # One row per clip here: held_out's clip F1 is sklearn's over the rows, in clip order.
    truth = s.test_truth.loc[s.test_clips].to_numpy()
    expected = f1_score(truth, pred, average="macro")
    assert held_out(s, model, s.X_test)["f1_macro"] == pytest.approx(expected)
    # How well it learns in a few seconds depends on the machine's load: the benchmark's
    # question, not this test's.
    result = run_autogluon(s, budget_s=2)
    assert result.contender == "autogluon" and "; medium_quality; time_limit 2 s" in result.detail
    without_torch = excluded_models() == ["NN_TORCH", "FASTAI"]
    assert ("no NN_TORCH, FASTAI (no PyTorch)" in result.detail) == without_torch


def test_the_notebooks_forest_learns_on_the_runners_rows(genre: tuple[Path, Path]) -> None:
    corpus, cache = genre
    s = split_of(prepared(GENRE, corpus, cache, seed=0))
    forest = run_forest(s, seed=0)
    assert forest.contender == "forest" and forest.score > 0.2, forest  # twice chance
    assert run_forest(s, seed=0).score == forest.score  # seeded: the same forest again


def test_speaker_groups_follow_the_runners_rows(tmp_path: Path) -> None:
    """On a grouped spec (gender) the speaker of every training row goes with it to the
    peers (FLAML's grouped CV), and no speaker is on both sides of the split."""
    corpus, built = ensure(tmp_path / "voices", "voices", speakers=20, clips_per_speaker=2)
    assert built and not ensure(tmp_path / "voices", "voices", speakers=20, clips_per_speaker=2)[1]
    p = prepared(TASKS["gender"], corpus, tmp_path / "cache", seed=0)
    s = split_of(p)
    frame = p.dataset.frame
    np.testing.assert_array_equal(s.groups, frame.iloc[p.split.train]["group"])
    assert not set(s.groups) & set(frame.iloc[p.split.test]["group"])
    assert len(set(s.groups)) >= 10 and s.roles.categorical == ("age",)


#: GTZAN's features_30_sec.csv header, in its order.
GTZAN_HEADER = [
    "filename", "length", "chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var",
    "spectral_centroid_mean", "spectral_centroid_var", "spectral_bandwidth_mean",
    "spectral_bandwidth_var", "rolloff_mean", "rolloff_var", "zero_crossing_rate_mean",
    "zero_crossing_rate_var", "harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var",
    "tempo", *(f"mfcc{k}_{s}" for k in range(1, 21) for s in ("mean", "var")), "label",
]  # fmt: skip


@pytest.mark.slow
def test_gtzan_table_rebuilt_from_audio_has_gtzans_columns_and_values(tmp_path: Path) -> None:
    """The genre corpus is audio: the CSV the genre_features task reads is made by the
    documented `audioml features` rebuild, under GTZAN's header, with GTZAN's definitions
    (pooled chroma, waveform mean/variance of librosa.effects.hpss, mfcc1 = librosa's 0th)."""
    import librosa
    import pandas as pd

    root, _ = ensure(tmp_path / "g", "gtzan_audio", rows=50, seconds=1.5)
    table = pd.read_csv(root / "features_30_sec.csv")
    assert list(table.columns) == GTZAN_HEADER and len(table) == 50
    assert sorted(set(table["label"])) == sorted(TASKS_GENRES)
    row = table.iloc[3]
    genre = row["label"]
    y, sr = librosa.load(root / "genres_original" / genre / row["filename"], sr=None)
    assert sr == 22050 and row["length"] == len(y)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    assert row["chroma_stft_mean"] == pytest.approx(chroma.mean(), rel=1e-4)
    assert row["chroma_stft_var"] == pytest.approx(chroma.var(), rel=1e-3)
    harm, perc = librosa.effects.hpss(y)
    assert row["harmony_var"] == pytest.approx(harm.var(), rel=1e-3)
    assert row["perceptr_var"] == pytest.approx(perc.var(), rel=1e-3)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    assert row["mfcc1_mean"] == pytest.approx(mfcc[0].mean(), rel=1e-4)
    assert row["mfcc20_var"] == pytest.approx(mfcc[19].var(), rel=1e-3)
    # The shipped spec reads it as it would read Kaggle's file.
    p = prepared(GENRE, root, tmp_path / "cache", seed=0, extra=["search.cv.folds=3"])
    assert len(p.dataset.feature_columns) == 57 and len(p.dataset.frame) == 50


def test_verdicts_follow_the_metrics_direction_and_the_time_ratio() -> None:
    def run(greater: bool, **scores: tuple[float, float]) -> TaskRun:
        results = {who: [Result(who, s, w)] for who, (s, w) in scores.items()}
        return TaskRun("t", metric="m", greater=greater, results=results)

    f1 = verdicts(run(True, audioml=(0.9, 40), flaml=(0.8, 30), audioml_1x=(0.7, 30),
                       grid=(0.85, 150), audioml_third=(0.86, 45)))  # fmt: skip
    assert [line.endswith(": met") for line in f1] == [True, False, True, True], f1
    mae = verdicts(run(False, audioml=(5.0, 40), flaml=(4.0, 30), audioml_1x=(3.9, 30)))
    assert [line.endswith(": met") for line in mae] == [False, True], mae


def test_peers_lines_and_partial_seeds_in_the_report() -> None:
    """AutoGluon and the forest get their own verdict lines; a task cut short says which
    contenders have fewer seeds, and its per-seed lines list only what finished."""

    def res(who: str, *scores: float) -> list[Result]:
        return [Result(who, s, 30.0, seed=seed) for seed, s in enumerate(scores)]

    run = TaskRun("age", metric="mae", greater=False, note="n", rows=9, results={
        "audioml": res("audioml", 5.0, 5.2), "autogluon": res("autogluon", 5.5, 5.4),
        "forest": res("forest", 4.0),
    })  # fmt: skip
    lines = verdicts(run)  # the forest has seed 0 only: 5.0 against 4.0
    assert lines[1].endswith("(5.0000 vs 4.0000; wall 30 s vs 30 s, over the 1 seeds both "
                              "finished): NOT met")  # fmt: skip
    assert [line.split(" (")[0] for line in lines] == [
        "audioml at least as good as AutoGluon", "audioml at least as good as the notebook's "
        "300-tree forest",
    ]  # fmt: skip
    assert [line.endswith(": met") for line in lines] == [True, False]  # 5.1 <= 5.45
    text = markdown(Report(["cmd"], [0, 1], 30.0, 2, [run]))
    assert "**Partial**: seeds finished, where fewer than 2: forest 1." in text
    assert "- seed 1: audioml 5.2000 in 30; autogluon 5.4000 in 30\n" in text


def test_paired_lines_count_the_seeds_and_bound_the_mean_difference() -> None:
    """Seed by seed, in the runner's favour whichever way the metric points; a paired
    t-interval that holds 0 says the seeds cannot tell the two apart."""

    def res(who: str, *scores: float) -> list[Result]:
        return [Result(who, s, 30.0, seed=seed) for seed, s in enumerate(scores)]

    f1 = TaskRun("music", metric="f1_macro", results={
        "audioml": res("audioml", 0.90, 0.92, 0.94), "flaml": res("flaml", 0.89, 0.91, 0.93),
        "forest": res("forest", 0.95, 0.98, 0.99), "grid": res("grid", 0.5),
    })  # fmt: skip
    assert paired(f1) == [
        "audioml against flaml: 3 won, 0 tied, 0 lost; mean difference in audioml's favour "
        "+0.0100 (95% interval +0.0100 to +0.0100, 3 seeds): audioml ahead beyond the seeds' "
        "noise",
        "audioml against forest: 0 won, 0 tied, 3 lost; mean difference in audioml's favour "
        "-0.0533 (95% interval -0.0677 to -0.0390, 3 seeds): audioml behind beyond the "
        "seeds' noise",
    ]  # the grid has one seed: no interval
    # MAE, lower is better: 5.0 vs 5.5 is a win; differences +0.5, -0.5, 0 (sd 0.5, t 4.303).
    mae = TaskRun("age", metric="mae", greater=False, results={
        "audioml": res("audioml", 5.0, 6.0, 7.0), "forest": res("forest", 5.5, 5.5, 7.0),
    })  # fmt: skip
    assert paired(mae) == [
        "audioml against forest: 1 won, 1 tied, 1 lost; mean difference in audioml's favour "
        "+0.0000 (95% interval -1.2421 to +1.2421, 3 seeds): the seeds cannot tell them apart"
    ]
    assert "Seed by seed (a paired t-interval over the seeds):" in markdown(
        Report(["cmd"], [0, 1, 2], 30.0, 2, [mae])
    )


def test_merge_puts_runs_into_one_table_by_contender_and_seed(tmp_path: Path) -> None:
    """The peers and the runner (or seeds 0-2 and 3-4) run apart are one table after."""

    def report(seeds: list[int], **results: float) -> Report:
        rs = {who: [Result(who, s, 1.0, seed=i) for i in seeds] for who, s in results.items()}
        return Report([f"cmd {sorted(rs)} {seeds}"], seeds, 30.0, 2, [TaskRun("t", results=rs)])

    both = merge(
        [report([3, 4], audioml=0.7), report([0, 1, 2, 3, 4], forest=0.4, autogluon=0.5),
         report([0, 1, 2], audioml=0.6)], CONTENDERS,
    )  # fmt: skip
    results = both.runs[0].results
    assert list(results) == ["audioml", "autogluon", "forest"] and both.seeds == [0, 1, 2, 3, 4]
    assert [(r.seed, r.score) for r in results["audioml"]] == [
        (0, 0.6), (1, 0.6), (2, 0.6), (3, 0.7), (4, 0.7)
    ]  # fmt: skip
    assert both.commands[0] == "cmd ['audioml'] [3, 4]"
    save(both, tmp_path / "r.json")
    assert load(tmp_path / "r.json") == both  # what --merge reads back is what ran
    with pytest.raises(ValueError, match=r"t: forest seeds \[1\] measured twice"):
        merge([report([0, 1], forest=0.4), report([1, 2], forest=0.3)], CONTENDERS)
