"""The command line on real files: `features` summaries, bad clips reported and never fatal,
too few usable clips refused before any MLflow run exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from _audio_fixtures import make_folder_dataset
from mlflow.tracking import MlflowClient

from runner.cli import main


def _spec(workdir: Path, root: Path, *, folds: int = 3) -> Path:
    spec = workdir / "spec.yaml"
    spec.write_text(
        f"name: cli-test\ndata: {{source: folder, root: {root}}}\n"
        "features: {sample_rate: 16000, extractors: [mfcc, zcr, centroid]}\n"
        f"search: {{models: [logistic], n_trials: 2, cv: {{folds: {folds}}}, pruner: none}}\n"
    )
    return spec


@pytest.fixture
def dataset(workdir: Path) -> Path:
    root = make_folder_dataset(workdir / "data", ["low", "high"], 8)
    (root / "low" / "empty.wav").write_bytes(b"")
    (root / "high" / "text.wav").write_text("this is not audio\n")
    return root


def test_features_reports_rows_cache_and_skipped(workdir: Path, dataset: Path, capsys) -> None:
    spec = _spec(workdir, dataset)
    assert main(["features", str(spec), "-q"]) == 0
    out = capsys.readouterr().out
    # Bad clips are looked at (misses) and skipped, never extracted.
    assert "rows=16" in out and "cache_misses=18" in out and "extracted=16" in out
    assert "skipped=2" in out
    assert "empty.wav" in out and "text.wav" in out
    assert main(["features", str(spec), "-q"]) == 0
    out = capsys.readouterr().out
    assert "cache_misses=0" in out and "extracted=0" in out and "skipped=2" in out


def test_run_logs_skipped_clips_and_goes_on(workdir: Path, dataset: Path) -> None:
    assert main(["run", str(_spec(workdir, dataset)), "-q"]) == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cli-test")
    parent = next(
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    )
    assert parent.data.metrics["clips_skipped"] == 2
    local = client.download_artifacts(parent.info.run_id, "skipped_clips.csv", str(workdir))
    text = Path(local).read_text()
    assert "empty.wav" in text and "text.wav" in text


def test_too_few_usable_clips_exit_2_without_a_run(workdir: Path, dataset: Path, capsys) -> None:
    code = main(["run", str(_spec(workdir, dataset, folds=8)), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "search.cv.folds: 8 must be at most" in err and "Traceback" not in err
    assert "the clips of class" in err and "; add clips or lower the folds" in err
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert client.get_experiment_by_name("cli-test") is None


def test_set_override_on_every_command(workdir: Path, dataset: Path, capsys) -> None:
    spec = _spec(workdir, dataset)
    assert main(["validate", str(spec), "--set", "search.metric=mae"]) == 2
    assert "search.metric" in capsys.readouterr().out
    assert main(["features", str(spec), "-q", "--set", "features.extractors=[rms]"]) == 0
    assert "columns=2" in capsys.readouterr().out  # rms_mean, rms_std


def test_features_out_writes_the_table(workdir: Path, dataset: Path, capsys) -> None:
    import pandas as pd

    spec = _spec(workdir, dataset)
    for name in ("table.parquet", "table.csv"):
        assert main(["features", str(spec), "-q", "--out", str(workdir / name)]) == 0
    parquet = pd.read_parquet(workdir / "table.parquet")
    csv = pd.read_csv(workdir / "table.csv")
    assert list(parquet.columns[:4]) == ["clip_id", "segment", "label", "group"]
    assert parquet.columns[4] == "mfcc_00_mean" and len(parquet) == 16
    assert list(csv.columns) == list(parquet.columns)
    assert set(parquet["label"]) == {"low", "high"}
    assert main(["features", str(spec), "-q", "--out", str(workdir / "table.txt")]) == 2
    assert not (workdir / "table.txt").exists()


# ---- SPEC by name: the shipped specs, in the checkout (the wheel: tests/test_packaging.py) --


def test_a_shipped_spec_is_named_without_its_folder(workdir: Path, capsys) -> None:
    shipped = Path(__file__).resolve().parents[2] / "experiments"
    assert main(["validate", "genre", "demo.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"ok {shipped / 'genre.yaml'}" in out and f"ok {shipped / 'demo.yaml'}" in out
    # A file of that name in the working directory is the user's own, and wins.
    (workdir / "demo.yaml").write_text("name: mine\ndata: {source: folder, root: .}\n")
    assert main(["validate", "demo.yaml"]) == 0
    assert "ok demo.yaml\n" in capsys.readouterr().out


def test_an_unknown_spec_name_exits_2_listing_the_shipped_ones(workdir: Path, capsys) -> None:
    assert main(["run", "genere", "-q"]) == 2
    err = capsys.readouterr().err
    assert "SPEC: 'genere' is not one of the spec files here or shipped specs:" in err
    assert "demo, gender, genre, genre_features" in err and "Traceback" not in err
    # A path whose folder is not here points at the shipped spec's name.
    assert main(["validate", "experiments/genre.yaml"]) == 2
    assert "the shipped spec 'genre' is named without a folder" in capsys.readouterr().out
    assert not (workdir / "mlflow.db").exists()


def test_a_missing_manifest_is_refused_naming_the_spec(workdir: Path, capsys) -> None:
    spec = workdir / "cv.yaml"
    spec.write_text(
        "name: cv\ndata: {source: manifest, root: ., manifest: train.tsv, label_column: gender}\n"
    )
    assert main(["features", str(spec), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: data.manifest: '{workdir / 'train.tsv'}' is not a file" in err
    assert "files in data.root: cv.yaml" in err
