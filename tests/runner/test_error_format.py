"""One error format across the project: real bad input through the real entry points, each
message naming the file, the dotted key, the value given and what is allowed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from test_serving import _b64, _hand_model, _tone_bytes

from features import FeaturesSpec, SegmentsSpec, build_table
from features.assemble import build_mel_table
from features.cache import FeatureStore
from runner.cli import main
from runner.errors import FeatureError, RegistryError, format_error
from runner.models import get_family, input_kind
from runner.serving.model import AudioModel, Limits

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"


def _validate(capsys: pytest.CaptureFixture, spec: Path, *sets: str) -> str:
    argv = ["validate", str(spec), *(a for s in sets for a in ("--set", s))]
    assert main(argv) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["search.sampler=tpee"],
            "search.sampler: 'tpee' is not one of tpe, random, cmaes, gp",
        ),
        (
            ["search.models=[lgbm]"],
            "search.models: 'lgbm' is not one of the model families of task "
            "'classification': catboost, decision_tree,",
        ),
        (["features.n_mels=4"], "features.n_mels: 4 must be an int >= 8"),
        (
            ["features.extractors=[loudness]"],
            "features.extractors: 'loudness' is not one of bandwidth, centroid,",
        ),
        (["search.n_jobs=0"], "search.n_jobs: 0 must be 'auto' or an int >= 1"),
        (
            ["features.windw=3"],
            "features.windw: 'windw' is not one of the keys of features: sample_rate,",
        ),
        (["search.n_trials"], "--set: 'search.n_trials' must be KEY=VALUE"),
    ],
    ids=["sampler", "family", "n_mels", "extractor", "union", "unknown-key", "bad-set"],
)
def test_validate_names_file_key_value_and_choices(
    capsys: pytest.CaptureFixture, sets: list[str], expected: str
) -> None:
    assert f"{DEMO}: {expected}" in _validate(capsys, DEMO, *sets)


def test_a_bad_spec_file_through_the_console_command(tmp_path: Path) -> None:
    spec = tmp_path / "genre.yaml"
    spec.write_text("name: genre\ndata: {source: folder, root: data}\nsegments: {mode: windows}\n")
    done = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(spec)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert f"{spec}: segments.mode: 'windows' is not one of whole, fixed, last" in text
    assert "Traceback" not in text


def test_a_registry_lookup_names_the_spec_key_that_selects_it() -> None:
    with pytest.raises(RegistryError) as info:
        get_family("lgbm")
    assert str(info.value).startswith("search.models: 'lgbm' is not one of ")
    assert "lightgbm" in str(info.value)


def test_format_error_shapes() -> None:
    assert format_error("a.b", "x", one_of=["y", "z"], file="f.yaml") == (
        "f.yaml: a.b: 'x' is not one of y, z"
    )
    assert format_error("a.b", True, must="an int") == "a.b: true must be an int"
    assert format_error("a", None, problem="is odd", hint="fix it") == "a: null is odd; fix it"
    assert format_error("name", "n" * 500, must="short").startswith("name: 'nnnn")
    assert len(format_error("name", "n" * 500, must="short")) < 100
    with pytest.raises(TypeError):
        format_error("a", 1)


def _check_data(capsys: pytest.CaptureFixture, spec: Path) -> str:
    assert main(["validate", "--check-data", str(spec)]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return text


def test_a_manifest_naming_a_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "train.csv").write_text("path,genre\na.wav,rock\nb.wav,jazz\n")
    spec = tmp_path / "genre.yaml"
    spec.write_text(
        "name: genre\n"
        f"data: {{source: manifest, root: {tmp_path}, manifest: train.csv, label_column: style}}\n"
    )
    text = _check_data(capsys, spec)
    expected = f"{tmp_path / 'train.csv'}: data.label_column: 'style' is not one of the columns: "
    assert expected + "path, genre" in text


def test_a_labels_json_with_a_bad_entry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text('{"a.wav": "music", "b.wav": ["speech", "music"]}')
    spec = tmp_path / "genre.yaml"
    spec.write_text(
        f"name: genre\ndata: {{source: labels_json, root: {tmp_path}, manifest: labels.json}}\n"
    )
    text = _check_data(capsys, spec)
    assert f"{labels}: b.wav: ['speech', 'music'] must be a label (a string, a number" in text
    labels.write_text('[{"path": "a.wav", "label": "music"}, "b.wav"]')
    text = _check_data(capsys, spec)
    assert f'{labels}: entry 1: \'b.wav\' must be an object {{"path": ..., "label": ...}}' in text


def test_an_unknown_input_kind() -> None:
    # The kind a served model's config names under "input" (a model logged by another version).
    with pytest.raises(RegistryError) as info:
        input_kind("spectrogram")
    assert str(info.value) == "input: 'spectrogram' is not one of table, image, image+table"


def test_predict_uncertain_by_nonsense(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["predict", "models:/genre@champion", str(tmp_path), "--out", str(tmp_path / "p.csv")]
    assert main([*argv, "--uncertain-by", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "--uncertain-by: 'nonsense' is not one of confidence, margin, entropy" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()


# -- the served model: a bad request names its row and column, what was sent, what is allowed
def _refusal(model: AudioModel, frame: pd.DataFrame) -> str:
    with pytest.raises(MlflowException) as info:
        model.predict(None, frame)
    assert info.value.get_http_status_code() == 400
    return info.value.message


def test_a_bad_request_to_the_served_model(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    model = _hand_model(tmp_path, "classification", {"mode": "whole"}, root=root.resolve())
    first, second, third = model.columns[:3]
    n = len(model.columns)
    features = dict.fromkeys(model.columns, 0.0)
    tone = _b64(_tone_bytes(tmp_path, 300.0))
    cases = [
        (
            {"audio_base64": [123]},
            "row 0, column 'audio_base64': 123 must be a string (an audio file, base64-encoded)",
        ),
        (
            {"audio_base64": [tone, "@@@"]},
            "row 1, column 'audio_base64': '@@@' is not valid base64",
        ),
        (
            {"audio_base64": [_b64(b"hello")]},
            "row 0, column 'audio_base64': not audio: format not recognised",
        ),
        (
            {"path": ["../secret.wav"]},
            "row 0, column 'path': '../secret.wav' is outside the allowed root",
        ),
        (
            {"path": ["absent.wav"]},
            "row 0, column 'path': 'absent.wav' names no file under the allowed root",
        ),
        (
            pd.DataFrame([features, {**features, first: "x"}]),
            f"row 1, column '{first}': 'x' must be a number",
        ),
        (
            pd.DataFrame([{**features, second: np.nan, third: np.inf}]),
            f"row 0, column '{second}': nan must be a finite number; 2 of this row's feature "
            "columns are missing, NaN or infinite",
        ),
        (
            pd.DataFrame(index=range(2)),
            "request: holds no rows or no known column; send audio_base64, path (when the "
            f"server allows it), or the model's {n} feature columns "
            f"({', '.join(model.columns[:5])}, ... ({n - 5} more)); unknown columns are ignored",
        ),
    ]
    for frame, expected in cases:
        assert _refusal(model, pd.DataFrame(frame)) == expected
    # A long value is shown by its start.
    message = _refusal(model, pd.DataFrame({"audio_base64": ["@" * 5000]}))
    assert message.startswith("row 0, column 'audio_base64': '@@@@")
    assert message.endswith("... is not valid base64") and len(message) < 120
    # The limits, and files off: what the request holds, the limit and its variable.
    model.setup(model.config, Limits(max_bytes=1000))
    assert _refusal(model, pd.DataFrame({"audio_base64": [tone]})) == (
        f"row 0, column 'audio_base64': holds about {len(tone) * 3 // 4} bytes of audio; the "
        "limit is 1000 bytes (AUDIOML_MAX_AUDIO_BYTES)"
    )
    assert _refusal(model, pd.DataFrame({"path": ["a.wav"]})) == (
        "row 0, column 'path': 'a.wav' cannot be read: reading files on the server is off; "
        "send audio_base64, or start the server with AUDIOML_SERVE_ROOT=DIR"
    )


# -- the feature engine: the clips table and the mel-image cache -----------------------------
def _clips(tmp_path: Path, ids: list[str]) -> pd.DataFrame:
    paths = [str(tmp_path / f"{i}.wav") for i in ids]
    return pd.DataFrame({"clip_id": ids, "path": paths, "label": "x", "group": None})


def _build(tmp_path: Path, clips: pd.DataFrame, **kwargs: object) -> str:
    spec = FeaturesSpec(extractors=["rms"])
    with pytest.raises(FeatureError) as info:
        build_table(
            clips, spec, SegmentsSpec(), cache_dir=tmp_path / "cache", progress=False, **kwargs
        )
    return str(info.value)


def test_a_clips_table_with_a_repeated_id_or_a_missing_column(tmp_path: Path) -> None:
    assert _build(tmp_path, _clips(tmp_path, ["a", "b", "a", "a"])) == (
        "clip_id: 'a' is listed more than once in the clips table; clip ids must be unique "
        "(rows repeating an earlier id: 2)"
    )
    assert _build(tmp_path, _clips(tmp_path, ["a"]), keep_columns=["accent"]) == (
        "clips table: lacks the column(s) accent; it needs clip_id, path, label, group, and "
        "the kept columns accent"
    )
    assert not (tmp_path / "cache").exists(), "refused before anything is written"


def test_mel_images_off_or_unreadable(tmp_path: Path) -> None:
    frame = pd.DataFrame({"clip_id": ["c1", "c1"]})
    off = FeatureStore(tmp_path / "cache", "key", ["f"], None)
    with pytest.raises(FeatureError) as info:
        build_mel_table(off, frame, {"c1": "abc"}, "digest", lambda clip_id: None)
    assert str(info.value) == (
        "features.mel_image: mel images are not enabled for this feature cache; "
        "set features.mel_image: true"
    )
    store = FeatureStore(tmp_path / "cache", "key", ["f"], 16)
    repaired: list[str] = []
    with pytest.raises(FeatureError) as info:
        build_mel_table(store, frame, {"c1": "abc"}, "digest", repaired.append)
    assert repaired == ["c1"], "extracted again once before giving up"
    assert str(info.value) == (
        "clip_id: 'c1' has cached mel images that cannot be read, even after extracting it "
        f"again; the file is {store.mel_file('abc')}"
    )


# -- stores, the session, search-space files: each refusal made for real ----------------


def test_a_damaged_study_store(tmp_path: Path) -> None:
    from runner.stores.checks import StoreError, check_study_store

    path = tmp_path / "optuna.db"
    path.write_bytes(b"backup of something else\n" * 40)
    with pytest.raises(StoreError) as info:
        check_study_store(f"sqlite:///{path}", "genre")
    assert str(info.value) == (
        f"Optuna storage: '{path}' is damaged: unreadable (file is not a database); "
        f"move it aside (mv '{path}' '{path}.damaged') and run again"
    )
    path.unlink()
    path.mkdir()
    with pytest.raises(StoreError) as info:
        check_study_store(f"sqlite:///{path}", "genre")
    assert str(info.value) == (
        f"Optuna storage: '{path}' is not a file; "
        f"move it aside (mv '{path}' '{path}.damaged') and run again"
    )


def test_a_half_migrated_tracking_store(tmp_path: Path) -> None:
    import sqlite3

    from runner.stores.checks import StoreError
    from runner.stores.tracking_store import open_tracking_store

    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as con:  # the copy a batch migration made, the original gone
        con.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
    con.close()
    with pytest.raises(StoreError) as info:
        open_tracking_store(f"sqlite:///{path}")
    assert str(info.value) == (
        f"MLflow tracking store: '{path}' is half-migrated: table 'experiments' is missing "
        "and '_alembic_tmp_experiments' holds its rows; restore it from a backup, or move it "
        f"aside (mv '{path}' '{path}.damaged') and run again (its runs are then lost)"
    )


def test_a_search_space_file_and_an_override_it_narrowed(tmp_path: Path) -> None:
    from runner.errors import SpecError
    from runner.models import MODELS, resolve_space

    (tmp_path / "svm.yaml").write_text("- C\n- gamma\n")
    with pytest.raises(SpecError) as info:
        resolve_space(MODELS["svm"], "classification", config_dir=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'svm.yaml'}: ['C', 'gamma'] must be a mapping of parameter names to ranges"
    )
    (tmp_path / "svm.yaml").write_text("C: [0.1, 10]\n")
    with pytest.raises(SpecError) as info:
        resolve_space(MODELS["svm"], "classification", {"C": [0.01, 10]}, config_dir=tmp_path)
    assert str(info.value) == (
        "search.spaces.svm.C: [0.01, 10] must be a float range [low, high] or a single value "
        f"within [0.1, 10.0], log scale; only narrowing is allowed, and {tmp_path / 'svm.yaml'} "
        "narrows C"
    )


_SMALL = [
    "-q",
    *("--set", "search.models=[logistic]"),
    *("--set", "search.cv.folds=2"),
    *("--set", "search.n_trials=2"),
    *("--set", "features.n_jobs=1"),
]


def _corpus(root: Path) -> Path:
    from tests.runner._audio_fixtures import make_folder_dataset

    return make_folder_dataset(root, ["music", "speech"], 4, seconds=0.5)


def test_a_corpus_left_with_one_class(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = _corpus(workdir / "corpus")
    for clip in (corpus / "speech").iterdir():
        clip.write_bytes(b"RIFF, then nothing a decoder reads" * 4)  # every speech clip skipped
    assert main(["run", str(DEMO), *_SMALL, "--set", f"data.root={corpus}"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "Traceback" not in err
    assert (
        f"{corpus}: label: ['music'] must be at least 2 classes for task 'classification' "
        f"(found in 4 clips); 4 clips were skipped (first: {corpus / 'speech'}"
    ) in err
    assert "; fix them or add clips of another class" in err
    assert not (workdir / "optuna.db").exists()


def test_finalize_of_a_study_never_started(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = _corpus(workdir / "corpus")
    assert main(["finalize", str(DEMO), *_SMALL, "--set", f"data.root={corpus}"]) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "Traceback" not in err
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    pattern = (
        rf"error: study: 'demo-[0-9a-f]{{10}}' is not in {re.escape(storage)}; "
        r"start it with `audioml run` on this spec"
    )
    assert re.search(pattern, err), err


def test_finalize_while_another_process_finalizes(
    workdir: Path, capsys: pytest.CaptureFixture
) -> None:
    from runner.config.loading import load_spec
    from runner.search.liveness import HOST
    from runner.session.pipeline import RunOptions, open_spec_study, prepare
    from runner.session.session import FINALIZING_ATTR, announce, start_tracking

    corpus = _corpus(workdir / "corpus")
    sets = [s for s in _SMALL[1:] if s != "--set"] + [f"data.root={corpus}"]
    p = prepare(load_spec(DEMO, sets), RunOptions(progress=False))
    study = open_spec_study(p)
    announce(study, 2, p.tracking_uri)
    parent = start_tracking(p, RunOptions(progress=False), study).parent_id
    # The claim of a live process that is not this one: the shell that started the tests.
    claim = {"run": parent, "host": HOST, "pid": os.getppid(), "start": None}
    study.set_user_attr(FINALIZING_ATTR, claim)
    assert main(["finalize", str(DEMO), *_SMALL, "--set", f"data.root={corpus}"]) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "Traceback" not in err
    assert (
        f"error: study: '{p.study_name}' run {parent} is being finalized by pid {os.getppid()} "
        f"on {HOST}; wait for it to register the model, or pass --force if that process is gone"
    ) in err
