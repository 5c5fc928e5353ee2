"""One error format across the project: real bad input through the real entry points, each
message naming the file, the dotted key, the value given and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main
from runner.errors import RegistryError, format_error
from runner.models import get_family, input_kind

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
