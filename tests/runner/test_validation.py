"""Validation before work: what `audioml validate` (and every command, through load_spec)
refuses without decoding audio, and what `--check-data` finds in a source's listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from _audio_fixtures import make_folder_dataset

from runner.cli import main
from runner.config.checks import registry_name_problem
from runner.config.loading import load_spec
from runner.data.checks import min_units_per_class
from runner.data.sources import load_source
from runner.errors import SpecError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("..", "another path"),
        ("a//b", "'/'"),
        (" ", "empty"),
        ("genre-classifier", None),
        ("demo.v2_final", None),
    ],
)
def test_registry_names_as_mlflow_accepts_them(name: str, problem: str | None) -> None:
    found = registry_name_problem(name)
    assert found == problem if problem is None else problem in found


@pytest.mark.parametrize(("alias", "ok"), [("champion", True), ("v3", False), ("Latest", False)])
def test_registry_aliases(alias: str, ok: bool) -> None:
    sets = [f"register.alias={alias}", "data.root=x"]
    if ok:
        assert load_spec(DEMO, sets).register.alias == alias
    else:
        with pytest.raises(SpecError, match=r"demo\.yaml: register\.alias: .*reserved"):
            load_spec(DEMO, sets)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "name: many\ndata: {source: folder, root: data}\n"
        "features: {n_fft: 512, hop_length: 1024}\n"
        "search: {models: [svm], spaces: {svm: {C: [0, 1]}, lgbm: {}}}\n"
        "register: {model_name: a/b}\n",
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    keys = [line.removeprefix(f"{path}: ").split(":")[0] for line in lines]
    assert keys == [
        "search.spaces.svm.C",
        "search.spaces.lgbm",
        "register.model_name",
        "features.hop_length",
    ]


def test_a_narrowed_space_that_fits_is_accepted(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "name: fits\ndata: {source: folder, root: data}\n"
        "search: {models: [svm, keras_mlp], spaces: {svm: {C: [0.1, 10], kernel: rbf},"
        " keras_mlp: {epochs: [10, 50]}}}\n",
    )
    assert load_spec(path).search.spaces["svm"]["kernel"] == "rbf"


def test_min_units_per_class() -> None:
    assert min_units_per_class(5, 0.2) == 6  # five training folds and one test clip
    assert min_units_per_class(2, 0.25) == 3
    assert min_units_per_class(4, 0.5) == 8


def test_min_clips_per_class_drops_and_counts(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_folder_dataset(root / "a", ["x"], 8, seconds=0.1)
    for label, n in {"big": 8, "mid": 5, "tiny": 2}.items():
        make_folder_dataset(root, [label], n, seconds=0.1)
    sets = [f"data.root={root}", "search.cv.folds=3", "search.test_size=0.25"]
    kept = load_source(load_spec(DEMO, [*sets, "data.min_clips_per_class=3"]))
    # tiny has fewer than 3 clips; mid has 5 >= 3 but the folds need 3 + 1 = 4: kept.
    assert set(kept.clips["label"]) == {"a", "big", "mid"}
    assert kept.report["rare_class_dropped"] == 2 and kept.report["kept"] == 21
    floor = load_source(load_spec(DEMO, [*sets, "data.min_clips_per_class=6"]))
    assert set(floor.clips["label"]) == {"a", "big"}
    assert floor.report["rare_class_dropped"] == 7


def test_check_data_missing_files_and_empty_labels(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    make_folder_dataset(root / "audio", ["music", "speech"], 6, seconds=0.1)
    rows = ["path,label"]
    rows += [f"audio/{c}/{c}.{i:05d}.wav,{c}" for c in ("music", "speech") for i in range(6)]
    rows += [f"audio/gone/{i}.wav,music" for i in range(7)] + ["audio/music/x.wav,"]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    sets = ["--set", f"data.root={root}", "--set", "data.source=manifest"]
    sets += ["--set", "data.manifest=list.csv", "--set", "data.label_column=label"]
    sets += ["--set", "search.cv.folds=2"]
    assert main(["validate", str(DEMO), *sets]) == 0  # the listing is read only when asked
    assert main(["validate", "--check-data", str(DEMO), *sets]) == 2
    out = capsys.readouterr().out
    assert "7 of 19 listed audio files do not exist" in out
    assert "audio/gone/0.wav" in out and "audio/gone/5.wav" not in out  # the first five
    (root / "list.csv").write_text("\n".join(rows[:13] + rows[-1:]) + "\n")
    assert main(["validate", "--check-data", str(DEMO), *sets]) == 0
    assert "note: 1 rows with an empty label are dropped" in capsys.readouterr().out


def test_check_data_rare_classes_without_groups(tmp_path: Path, capsys) -> None:
    root = make_folder_dataset(tmp_path / "data", ["music", "speech"], 4, seconds=0.1)
    make_folder_dataset(root, ["noise"], 2, seconds=0.1)
    code = main(["validate", "--check-data", str(DEMO), "--set", f"data.root={root}"])
    assert code == 2
    out = capsys.readouterr().out
    # demo.yaml: 4 folds and a quarter held out need 5 clips per class
    assert "label: ['noise', 'music', 'speech'] must be classes with at least 5 clips" in out
    assert "('noise' has 2, 'music' has 4, 'speech' has 4)" in out
    assert "data.min_clips_per_class" in out


def _no_store(workdir: Path) -> bool:
    return not (workdir / "mlflow.db").exists() and not (workdir / "optuna.db").exists()


def test_cache_dir_that_cannot_be_created(workdir: Path, capsys) -> None:
    root = make_folder_dataset(workdir / "data", ["music", "speech"], 5, seconds=0.1)
    (workdir / "taken").write_text("a file where the cache's parent folder would be")
    sets = ["--set", f"data.root={root}", "--set", f"features.cache_dir={workdir}/taken/cache"]
    assert main(["run", str(DEMO), "-q", *sets]) == 2
    err = capsys.readouterr().err
    assert f"features.cache_dir: '{workdir}/taken/cache' cannot be created as a folder" in err
    assert "Traceback" not in err
    assert _no_store(workdir)


def test_labels_json_that_is_not_utf8(workdir: Path, capsys) -> None:
    root = make_folder_dataset(workdir / "data", ["music", "speech"], 5, seconds=0.1)
    (root / "labels.json").write_bytes('{"music/music.00000.wav": "música"}'.encode("latin-1"))
    sets = ["--set", f"data.root={root}", "--set", "data.source=labels_json"]
    sets += ["--set", "data.manifest=labels.json"]
    assert main(["validate", "--check-data", str(DEMO), *sets]) == 2
    assert "data.manifest: " in capsys.readouterr().out
    assert main(["run", str(DEMO), "-q", *sets]) == 2
    err = capsys.readouterr().err
    assert f"data.manifest: '{root / 'labels.json'}' must be UTF-8 text (byte 0xfa" in err
    assert _no_store(workdir)


def test_outside_root_only_with_its_own_key(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data", ["music", "speech"], 2, seconds=0.1)
    rows = [f"../data/{c}/{c}.{i:05d}.wav,{c}" for c in ("music", "speech") for i in range(2)]
    (tmp_path / "list.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    sets = [f"data.root={root}", "data.source=manifest", "data.manifest=../list.csv"]
    sets += ["data.label_column=label", "search.cv.folds=2"]
    with pytest.raises(SpecError, match=r"data.manifest: '\.\./list\.csv' is outside data\.root"):
        load_spec(DEMO, sets)
    allowed = load_spec(DEMO, [*sets, "data.allow_outside_root=true"])
    assert len(load_source(allowed).clips) == 4


def test_run_names_a_rare_class_as_check_data_does(workdir: Path, capsys) -> None:
    # A feature table: the same check as for audio (runner.data.dataset), without extraction.
    from _audio_fixtures import make_feature_table_csv

    table = make_feature_table_csv(workdir / "table.csv", 12, ["a", "b"])
    table.write_text(table.read_text().replace(",b\n", ",c\n", 1))  # one clip of class c
    sets = ["--set", f"data.root={workdir}", "--set", "data.source=feature_table"]
    sets += ["--set", "data.manifest=table.csv", "--set", "data.label_column=label"]
    sets += ["--set", "search.cv.folds=2"]
    assert main(["validate", "--check-data", str(DEMO), *sets]) == 2
    cause = capsys.readouterr().out.split(": ", 2)[2].strip()
    assert "'c' has 1" in cause
    assert main(["run", str(DEMO), "-q", *sets]) == 2
    err = capsys.readouterr().err
    assert cause.replace("\n", " ")[:120] in err.replace("\n", " ") and "Traceback" not in err
    assert "cannot cut a stratified" not in err and _no_store(workdir)


def test_run_names_a_manifest_of_missing_files_as_check_data_does(workdir: Path, capsys) -> None:
    root = workdir / "data"
    root.mkdir()
    rows = [f"gone/{i}.wav,{'ab'[i % 2]}" for i in range(8)]
    (root / "list.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    sets = ["--set", f"data.root={root}", "--set", "data.source=manifest"]
    sets += ["--set", "data.manifest=list.csv", "--set", "data.label_column=label"]
    sets += ["--set", "search.cv.folds=2"]
    assert main(["validate", "--check-data", str(DEMO), *sets]) == 2
    assert "8 of 8 listed audio files do not exist" in capsys.readouterr().out
    assert main(["run", str(DEMO), "-q", *sets]) == 2
    err = capsys.readouterr().err
    assert "8 of 8 listed audio files do not exist" in err and _no_store(workdir)
