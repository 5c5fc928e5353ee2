"""Data sources on synthetic miniatures written in each real dataset's exact layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _audio_fixtures import (
    GTZAN_FEATURE_COLUMNS,
    make_common_voice,
    make_feature_table_csv,
    make_folder_dataset,
    make_labels_json,
    write_tone,
)

from runner.config.loading import load_spec
from runner.config.spec import ExperimentSpec
from runner.data.sources import REPORT_KEYS, SourceResult, load_source
from runner.errors import DataError

GENRES = ["blues", "jazz", "rock"]


def make_spec(root: Path | str, *, task: str = "classification", **data: Any) -> ExperimentSpec:
    classification = task == "classification"
    return ExperimentSpec.model_validate(
        {
            "name": "t",
            "task": task,
            "seed": 3,
            "data": {"root": str(root), **data},
            "search": {
                "models": ["logistic"] if classification else ["ridge"],
                "metric": "f1_macro" if classification else "mae",
            },
        }
    )


def cv_spec(root: Path, **data: Any) -> ExperimentSpec:
    """Common Voice as the spec reference shows it: gender of speakers grouped by client."""
    base = {
        "source": "manifest",
        "manifest": "train.tsv",
        "audio_dir": "clips",
        "label_column": "gender",
        "group_column": "client_id",
        "filters": {"gender": ["male", "female"]},
    }
    return make_spec(root, **{**base, **data})


# -- folder (GTZAN genres_original) ------------------------------------------------------


@pytest.fixture
def gtzan(tmp_path: Path) -> Path:
    root = make_folder_dataset(tmp_path / "genres_original", GENRES, 3, seconds=0.1)
    (root / "jazz" / ".DS_Store").write_bytes(b"\0")
    write_tone(root / "jazz" / "._jazz.00000.wav", 440, 0.1)  # macOS resource fork
    write_tone(root / ".hidden" / "x.wav", 440, 0.1)
    (root / "rock" / "notes.txt").write_text("not audio")
    write_tone(root / "rock" / "live" / "ROCK.LIVE.WAV", 440, 0.1)  # nested, upper case
    return root


def test_folder_lists_gtzan_layout(gtzan: Path) -> None:
    result = load_source(make_spec(gtzan))
    clips = result.clips
    assert isinstance(result, SourceResult) and result.table is None
    assert list(clips.columns[:4]) == ["clip_id", "path", "label", "group"]
    assert clips["clip_id"].tolist()[:3] == [f"blues/blues.{i:05d}.wav" for i in range(3)]
    assert "rock/live/ROCK.LIVE.WAV" in set(clips["clip_id"])
    assert clips["label"].value_counts().to_dict() == {"rock": 4, "blues": 3, "jazz": 3}
    assert clips["clip_id"].is_unique and clips["group"].isna().all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in clips["path"])
    assert result.report == {**dict.fromkeys(REPORT_KEYS, 0), "rows_read": 10, "kept": 10}
    assert result.source_file == gtzan and result.class_weight is None


def test_folder_relative_root_resolves_against_base(gtzan: Path, tmp_path: Path) -> None:
    spec_file = tmp_path / "genre.yaml"
    spec_file.write_text("name: genre\ndata: {source: folder, root: genres_original}\n")
    result = load_source(load_spec(spec_file), base=tmp_path)
    assert len(result.clips) == 10 and result.source_file == gtzan


def test_folder_extensions_max_clips_and_filters(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "g", GENRES, 10, seconds=0.05)
    make_folder_dataset(tmp_path / "g", ["blues", "jazz"], 2, seconds=0.05, fmt="flac")
    only_flac = load_source(make_spec(root, extensions=["FLAC"]))  # no dot, any case
    assert only_flac.clips["clip_id"].str.endswith(".flac").sum() == 4
    capped = load_source(make_spec(root, max_clips=12, extensions=[".wav"]))
    assert capped.clips["label"].value_counts().to_dict() == dict.fromkeys(GENRES, 4)
    assert capped.report["capped_out"] == 18 and capped.report["kept"] == 12
    again = load_source(make_spec(root, max_clips=12, extensions=[".wav"]))
    assert again.clips.equals(capped.clips)
    two = load_source(make_spec(root, filters={"label": ["jazz", "rock"]}))
    assert set(two.clips["label"]) == {"jazz", "rock"} and two.report["filtered_out"] == 12


def test_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.root: '.*nowhere' does not exist"):
        load_source(make_spec(tmp_path / "nowhere"))
    (tmp_path / "empty" / "blues").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty' holds no \.wav, \.flac, \.ogg, \.mp3 files"):
        load_source(make_spec(tmp_path / "empty"))
    make_folder_dataset(tmp_path / "one", ["blues"], 2, seconds=0.05)
    with pytest.raises(DataError, match=r"folder name: \['blues'\] must be at least 2 classes"):
        load_source(make_spec(tmp_path / "one"))
    make_folder_dataset(tmp_path / "Data" / "genres_original", GENRES, 1, seconds=0.05)
    with pytest.raises(DataError, match=r"did you mean data.root: .*genres_original"):
        load_source(make_spec(tmp_path / "Data"))


# -- manifest (Common Voice train.tsv) ---------------------------------------------------


def test_common_voice_gender_grouped_by_speaker(tmp_path: Path) -> None:
    make_common_voice(tmp_path, n_speakers=4, clips_per_speaker=3)
    result = load_source(cv_spec(tmp_path))
    clips = result.clips
    assert result.report["rows_read"] == 15 and result.report["empty_label_dropped"] == 2
    assert result.report["filtered_out"] == 1 and result.report["kept"] == 12
    assert clips["label"].value_counts().to_dict() == {"male": 6, "female": 6}
    assert clips["group"].nunique() == 4 and clips["group"].str.len().eq(128).all()
    assert clips["clip_id"].iloc[0] == "clips/common_voice_en_001000.mp3"
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in clips["path"])
    assert {"sentence", "age", "accent", "up_votes", "locale"} <= set(clips.columns)
    assert clips["sentence"].iloc[0] == 'He said "hello 0 times.'  # unbalanced quote kept
    assert result.source_file == tmp_path / "train.tsv"


def test_common_voice_downsample_and_class_weight(tmp_path: Path) -> None:
    make_common_voice(tmp_path, n_speakers=3, clips_per_speaker=3)  # 6 male, 3 female
    down = load_source(cv_spec(tmp_path, balance="downsample"))
    assert down.clips["label"].value_counts().to_dict() == {"male": 3, "female": 3}
    assert down.report["downsampled_out"] == 3 and down.report["kept"] == 6
    assert load_source(cv_spec(tmp_path, balance="downsample")).clips.equals(down.clips)
    weighted = load_source(cv_spec(tmp_path, balance="class_weight"))
    assert weighted.class_weight == pytest.approx({"female": 1.5, "male": 0.75})
    assert len(weighted.clips) == 9


def test_common_voice_age_buckets_as_classes(tmp_path: Path) -> None:
    make_common_voice(tmp_path, n_speakers=4, clips_per_speaker=2)
    result = load_source(cv_spec(tmp_path, label_column="age", filters={}))
    assert set(result.clips["label"]) == {"teens", "twenties", "thirties", "fourties"}
    assert result.report["empty_label_dropped"] == 2
    assert "gender" in result.clips.columns and "age" not in result.clips.columns


def _numeric_ages(tmp_path: Path, bad: str | None = None) -> None:
    tsv = make_common_voice(tmp_path, n_speakers=2, clips_per_speaker=3)
    frame = pd.read_csv(tsv, sep="\t", dtype=str, quoting=3)
    frame["age"] = ["", "23", "31.5", "40", "", "19", "55", "61", "18"][: len(frame)]
    if bad is not None:
        frame.loc[5, "age"] = bad
    frame.to_csv(tsv, sep="\t", index=False, quoting=3)


def test_manifest_regression_on_numeric_age(tmp_path: Path) -> None:
    _numeric_ages(tmp_path)
    spec = cv_spec(tmp_path, label_column="age", filters={}, task="regression")
    result = load_source(spec)
    assert result.clips["label"].dtype == float
    assert result.clips["label"].tolist() == [23.0, 31.5, 40.0, 19.0, 55.0, 61.0, 18.0]
    assert result.report["empty_label_dropped"] == 2


def test_manifest_regression_names_the_bad_row(tmp_path: Path) -> None:
    _numeric_ages(tmp_path, bad="twenties")
    spec = cv_spec(tmp_path, label_column="age", filters={}, task="regression")
    with pytest.raises(
        DataError, match=r"train.tsv: row 6, column 'age': 'twent.* must be a number"
    ):
        load_source(spec)


def test_manifest_errors_name_file_and_columns(tmp_path: Path) -> None:
    make_common_voice(tmp_path, n_speakers=2, clips_per_speaker=1)
    with pytest.raises(DataError, match=r"train.tsv: data.label_column: 'sex' is not one of the "
                       r"columns: client_id, path, sentence"):  # fmt: skip
        load_source(cv_spec(tmp_path, label_column="sex"))
    with pytest.raises(DataError, match=r"data.filters.lang: 'lang' is not one of the columns"):
        load_source(cv_spec(tmp_path, filters={"lang": ["en"]}))
    with pytest.raises(
        DataError,
        match=r"data.manifest: '.*dev.tsv' is not a file; files in data.root: .*train.tsv",
    ):
        load_source(cv_spec(tmp_path, manifest="dev.tsv"))
    with pytest.raises(DataError, match="at least 2 classes"):
        load_source(cv_spec(tmp_path, filters={"gender": ["male"]}))


def test_manifest_csv_with_absolute_paths(tmp_path: Path) -> None:
    a = write_tone(tmp_path / "elsewhere" / "a.wav", 300, 0.05)
    b = write_tone(tmp_path / "data" / "b.wav", 300, 0.05)
    (tmp_path / "data" / "m.csv").write_text(f"file,kind\n{a},x\nb.wav,y\n , y\n")
    spec = make_spec(tmp_path / "data", source="manifest", manifest="m.csv",
                     path_column="file", label_column="kind")  # fmt: skip
    result = load_source(spec)
    assert result.clips["path"].tolist() == [str(a), str(b)]
    assert result.clips["clip_id"].tolist() == [str(a), "b.wav"]
    assert result.report["empty_path_dropped"] == 1


# -- labels JSON -------------------------------------------------------------------------


def test_labels_json_with_label_map(tmp_path: Path) -> None:
    make_labels_json(tmp_path)
    spec = make_spec(tmp_path, source="labels_json", manifest="labels.json",
                     label_map={"both": "music"})  # fmt: skip
    result = load_source(spec)
    assert result.clips["label"].value_counts().to_dict() == {"music": 6, "dialogue": 3}
    assert result.report["relabelled"] == 3 and result.report["kept"] == 9
    assert result.clips["clip_id"].iloc[0] == "audio/music_00.wav"
    assert all(Path(p).is_file() for p in result.clips["path"])


def test_labels_json_list_of_objects(tmp_path: Path) -> None:
    labels_file = make_labels_json(tmp_path, {"music": 2, "dialogue": 2})
    mapping = json.loads(labels_file.read_text())
    items = [{"path": k, "label": v, "show": "s1"} for k, v in mapping.items()]
    (tmp_path / "list.json").write_text(json.dumps([*items, {"path": "x.wav", "label": None}]))
    result = load_source(make_spec(tmp_path, source="labels_json", manifest="list.json"))
    assert len(result.clips) == 4 and result.report["empty_label_dropped"] == 1
    assert result.clips["show"].eq("s1").all()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"bad.json: entry 0: 1 must be an object"):
        load_source(make_spec(tmp_path, source="labels_json", manifest="bad.json"))


# -- feature table (GTZAN features_30_sec.csv) -------------------------------------------


def table_spec(root: Path, manifest: str = "features_30_sec.csv", **data: Any) -> ExperimentSpec:
    data = {"label_column": "label", "drop_columns": ["filename", "length"], **data}
    return make_spec(root, source="feature_table", manifest=manifest, **data)


def test_feature_table_csv_and_parquet(tmp_path: Path) -> None:
    csv_path = make_feature_table_csv(tmp_path / "features_30_sec.csv", 20, GENRES)
    pd.read_csv(csv_path).to_parquet(tmp_path / "features_30_sec.parquet")
    from_csv = load_source(table_spec(tmp_path))
    table = from_csv.table
    assert from_csv.clips is None and from_csv.source_file == csv_path
    assert list(table.columns) == ["clip_id", "label", "group", *GTZAN_FEATURE_COLUMNS[2:-1]]
    assert len(table.columns) == 3 + 57
    assert table["clip_id"].iloc[0] == "blues.00000.wav" and table["label"].iloc[1] == "jazz"
    assert (table.dtypes.iloc[3:] == "float64").all()
    from_parquet = load_source(table_spec(tmp_path, "features_30_sec.parquet"))
    pd.testing.assert_frame_equal(from_parquet.table, table)


def test_feature_table_rejects_undeclared_text_columns(tmp_path: Path) -> None:
    csv_path = make_feature_table_csv(tmp_path / "features_30_sec.csv", 6, GENRES)
    frame = pd.read_csv(csv_path)
    frame.insert(2, "artist", "someone")
    frame.to_csv(csv_path, index=False)
    with pytest.raises(
        DataError, match=r"columns: \['artist'\] are not numeric.*; add them to data.drop_columns"
    ):
        load_source(table_spec(tmp_path))
    result = load_source(table_spec(tmp_path, group_column="artist"))
    assert result.table["group"].eq("someone").all() and "artist" not in result.table


def test_feature_table_without_filename_numbers_rows(tmp_path: Path) -> None:
    csv_path = make_feature_table_csv(tmp_path / "f.csv", 6, GENRES)
    pd.read_csv(csv_path).drop(columns=["filename"]).to_csv(csv_path, index=False)
    result = load_source(table_spec(tmp_path, "f.csv", drop_columns=["length"]))
    assert result.table["clip_id"].tolist() == [str(i) for i in range(6)]
    with pytest.raises(
        DataError, match=r"data.drop_columns: 'filename' is not one of the columns"
    ):
        load_source(table_spec(tmp_path, "f.csv"))
