"""`audioml predict`: DATA layouts, uncertainty, the served model's answer, resumption.

Fast tests use a hand-built AudioModel (no MLflow) or only the option checks. The slow ones
take the shared model of 1-s windows (``_registered``: aggregated per clip, trained on the
synthetic demo corpus), predict a folder of unseen clips with broken files among them,
compare with a real `mlflow models serve`, and SIGKILL a real `audioml predict` mid-extraction.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from _audio_fixtures import write_audio, write_tone
from _registered import DEMO, SEGMENTED, Store
from mlflow.tracking import MlflowClient
from test_serving import _hand_model, _start, _stop, _wait_ready

from features import build_table
from features.build import FLUSH_EVERY
from runner.cli import main
from runner.config.loading import load_spec
from runner.data.demo_data import synthesize_corpus
from runner.data.sources import load_source
from runner.errors import DataError
from runner.predict import least_certain, predict_table, uncertainty
from runner.predict.inputs import list_inputs
from runner.predict.model import LoadedModel

REPO = Path(__file__).resolve().parents[2]
NAME = SEGMENTED
URI = f"models:/{NAME}@champion"


# -- DATA layouts and uncertainty (fast) ----------------------------------------------------
def test_data_layouts(tmp_path: Path) -> None:
    for rel in ("a/x.wav", "a/b/y.flac", "z.mp3", ".hidden/h.wav", "a/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    folder = list_inputs(tmp_path)
    assert folder.clips["clip_id"].tolist() == ["a/b/y.flac", "a/x.wav", "z.mp3"]
    assert folder.clips["path"].iloc[0] == str(tmp_path / "a" / "b" / "y.flac")

    (tmp_path / "m.tsv").write_text("file\taccent\na/x.wav\tus\nz.mp3\tuk\na/x.wav\tus\n\tnone\n")
    manifest = list_inputs(tmp_path / "m.tsv", path_column="file")
    assert manifest.clips[["clip_id", "accent"]].values.tolist() == [["a/x.wav", "us"],
                                                                     ["z.mp3", "uk"]]  # fmt: skip
    assert manifest.duplicates == 1
    with pytest.raises(
        DataError, match=r"--path-column: 'path' is not one of the columns: file, accent"
    ):
        list_inputs(tmp_path / "m.tsv")

    (tmp_path / "labels.json").write_text(json.dumps({"a/x.wav": "music", "/abs/q.wav": "x"}))
    labels = list_inputs(tmp_path / "labels.json")
    assert labels.clips["clip_id"].tolist() == ["a/x.wav", "/abs/q.wav"]
    with pytest.raises(DataError, match="does not exist"):
        list_inputs(tmp_path / "absent")


def _odd_entries(folder: Path) -> dict[str, str]:
    """Entries named like audio that are not files to read; what skipped.csv says of each."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gone.wav").symlink_to(folder / "nowhere.wav")
    (folder / "loop.wav").symlink_to(folder / "loop.wav")
    os.mkfifo(folder / "pipe.wav")  # opening it would block until a writer comes
    (folder / "folder.wav").mkdir()
    return {"gone.wav": "broken symlink", "loop.wav": "symlink loop",
            "pipe.wav": "not a regular file (FIFO)", "folder.wav": "a folder"}  # fmt: skip


def test_entries_that_are_not_files_are_listed_with_a_reason(tmp_path: Path) -> None:
    odd = _odd_entries(tmp_path / "odd")
    write_tone(tmp_path / "odd" / "real.wav", 440.0, 0.1)
    folder = list_inputs(tmp_path / "odd")
    assert folder.clips["clip_id"].tolist() == ["real.wav"]
    reasons = dict(zip(folder.left_out["path"], folder.left_out["reason"], strict=True))
    assert sorted(reasons) == sorted(odd)
    assert all(reasons[name].startswith(why) for name, why in odd.items()), reasons
    (tmp_path / "m.csv").write_text("path\n" + "".join(f"odd/{n}\n" for n in [*odd, "x.wav"]))
    manifest = list_inputs(tmp_path / "m.csv")
    assert manifest.clips["clip_id"].tolist() == ["odd/x.wav"]  # missing: the engine says so
    assert sorted(manifest.left_out["path"]) == sorted(f"odd/{n}" for n in odd)


def test_unwritable_out_is_refused_before_any_work(workdir: Path, capsys) -> None:
    write_tone(workdir / "data" / "a.wav", 440.0)
    (workdir / "file").write_text("a file where --out's folder would be")
    base = ["predict", "models:/absent@champion", "data", "-q"]
    assert main([*base, "--out", "file/p.csv"]) == 2
    err = capsys.readouterr().err
    assert f"--out: '{workdir / 'file' / 'p.csv'}' cannot be written in" in err
    assert "cannot load" not in err  # refused before the model, so before extraction
    assert main([*base, "--out", "data"]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    assert main([*base, "--out", "p.csv", "--uncertain", "2", "--labels-out", "file/u.json"]) == 2
    assert "--labels-out" in capsys.readouterr().err
    assert main([*base, "--out", "p.csv", "--cache-dir", "file/cache"]) == 2
    assert "--cache-dir: 'file/cache' cannot be created as a folder" in capsys.readouterr().err
    assert not (workdir / ".audioml-cache").exists()


def test_uncertainty_columns_and_ranking() -> None:
    proba = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    u = uncertainty(proba)
    np.testing.assert_allclose(u["confidence"], [0.5, 1.0, 0.5, 0.6])
    np.testing.assert_allclose(u["margin"], [0.0, 1.0, 0.2, 0.3])
    np.testing.assert_allclose(u["entropy"][:2], [np.log(2), 0.0])
    frame = pd.DataFrame({"path": list("abcd"), **u})
    assert least_certain(frame, 2)["path"].tolist() == ["a", "c"]  # ties keep DATA order
    assert least_certain(frame, 2, by="margin")["path"].tolist() == ["a", "c"]
    assert least_certain(frame, 1, by="entropy")["path"].tolist() == ["c"]


def test_bad_options_and_models_exit_2_without_a_run(workdir: Path, capsys) -> None:
    write_tone(workdir / "data" / "a.wav", 440.0)
    base = ["predict", "models:/absent@champion", "data", "--out", "p.csv", "-q"]
    assert main([*base, "--uncertain", "5"]) == 2
    assert "--labels-out" in capsys.readouterr().err
    assert main(base) == 2
    assert "cannot load 'models:/absent@champion'" in capsys.readouterr().err
    assert main(["predict", "absent.yaml", "data", "--out", "p.csv"]) == 2
    assert not (workdir / "p.csv").exists()


@pytest.mark.parametrize("segments", [{"mode": "whole"}, {"mode": "fixed", "length_s": 0.5}])
def test_predict_table_is_the_served_answer(tmp_path: Path, segments: dict) -> None:
    """Features from the cache through predict_table == the pyfunc on base64 of the files."""
    model = _hand_model(tmp_path, "classification", segments)
    paths = [write_tone(tmp_path / "d" / f"{f:.0f}.wav", f, 1.5) for f in (230.0, 500.0, 890.0)]
    data = list_inputs(tmp_path / "d")
    for _ in range(2):  # cold, then from the cache
        table = build_table(data.clips, model.features, model.segments,
                            cache_dir=tmp_path / "cache", progress=False)  # fmt: skip
        got = predict_table(LoadedModel("hand", model), table.frame, data.clips)
    b64 = [base64.b64encode(p.read_bytes()).decode() for p in paths]
    served = model.predict(None, pd.DataFrame({"audio_base64": b64}))
    assert table.stats["extracted"] == 0
    assert got["path"].tolist() == ["230.wav", "500.wav", "890.wav"]
    pd.testing.assert_frame_equal(got[served.columns], served)
    np.testing.assert_allclose(got["confidence"], served.iloc[:, 1:].max(axis=1))


# -- a registered model (slow) ----------------------------------------------------------------
@pytest.fixture(scope="module")
def store(registered: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The shared model of 1-s windows, and a folder of unseen clips with broken files."""
    root = tmp_path_factory.mktemp("predict")
    unseen = synthesize_corpus(root / "unseen", clips_per_class=6, duration_s=2.0, seed=99)
    good = (unseen / "music" / "music_000.wav").read_bytes()
    (unseen / "broken").mkdir()
    (unseen / "broken" / "empty.wav").write_bytes(b"")
    (unseen / "broken" / "truncated.wav").write_bytes(good[:3000])
    (unseen / "broken" / "text.wav").write_text("not audio at all")
    _odd_entries(unseen / "odd")
    return Store(root, unseen, db=Path(registered.uri.removeprefix("sqlite:///")))


def _predict_here(store: Store, capsys: pytest.CaptureFixture, *args: str) -> str:
    """Run `audioml predict` in this process from the store's folder; its stdout."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store.root)
        assert main(["predict", *args, "--tracking-uri", store.uri, "-q"]) == 0
    return capsys.readouterr().out


def _predict(store: Store, *args: str) -> str:
    """Run `audioml predict` in a subprocess from the store's folder; its stdout."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "predict", *args, "-q"],
        cwd=store.root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _counts(stdout: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stdout.splitlines()[0])}


@pytest.mark.slow
def test_predict_a_folder_end_to_end(store: Store, capsys: pytest.CaptureFixture) -> None:
    out, relabel = store.root / "pred.csv", store.corpus / "relabel.json"
    args = [str(store.corpus), "--out", str(out)]
    stdout = _predict_here(store, capsys, URI, *args, "--uncertain", "4",
                           "--labels-out", str(relabel), "--log")  # fmt: skip
    pred = pd.read_csv(out)
    assert len(pred) == 12 and not pred["path"].str.startswith("broken").any()
    proba = pred[["proba_music", "proba_speech"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pred["confidence"], proba.max(axis=1))
    skipped = pd.read_csv(store.root / "pred.skipped.csv")
    assert sorted(skipped["path"]) == ["broken/empty.wav", "broken/text.wav",
                                       "broken/truncated.wav", "odd/folder.wav", "odd/gone.wav",
                                       "odd/loop.wav", "odd/pipe.wav"]  # fmt: skip
    assert skipped["reason"].str.len().min() > 5

    # The uncertain subset is the lowest-confidence rows, as a labels_json source reads it.
    relabelled = json.loads(relabel.read_text())
    lowest = pred.sort_values("confidence", kind="stable").head(4)
    assert relabelled == dict(zip(lowest["path"], lowest["label"], strict=True))
    spec = load_spec(DEMO, ["data.source=labels_json", "data.manifest=relabel.json",
                            f"data.root={store.corpus}"])  # fmt: skip
    clips = load_source(spec).clips
    assert sorted(clips["clip_id"]) == sorted(relabelled)
    assert all(Path(p).is_file() for p in clips["path"])

    # --log: one finished run with the files, the summary and the version it used.
    client = MlflowClient(store.uri)
    runs = client.search_runs([client.get_experiment_by_name(f"{NAME}-predictions").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    version = client.get_model_version_by_alias(NAME, "champion")
    assert runs[0].data.tags["audioml.model_version"] == str(version.version)
    assert runs[0].data.tags["audioml.model_run_id"] == version.run_id
    assert runs[0].data.metrics["predicted"] == 12 and runs[0].data.metrics["skipped"] == 7
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"pred.csv", "pred.skipped.csv", "relabel.json", "summary.json"} <= names
    assert f"logged run {runs[0].info.run_id}" in stdout

    # A second run (MODEL given as the spec) extracts nothing and writes the same predictions.
    assert _counts(stdout)["extracted"] == 12
    spec_model = [str(DEMO), "--set", f"register.model_name={NAME}"]
    again = _counts(_predict_here(store, capsys, *spec_model, *args))
    assert again["extracted"] == 0 and again["cache_hits"] == 15
    pd.testing.assert_frame_equal(pd.read_csv(out), pred)


@pytest.mark.slow
def test_predict_on_a_dask_cluster_writes_the_local_predictions(
    store: Store, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """`audioml predict MODEL DATA --executor dask`: the clips are extracted on a real Dask
    scheduler and workers, and the CSVs equal the local ones."""
    pytest.importorskip("distributed")
    from tests._dask_cluster import dask_cluster

    outs = {}
    with dask_cluster(tmp_path) as cluster:
        for executor in ("local", "dask"):
            out = tmp_path / f"{executor}.csv"
            flags = ["--executor", executor, "--scheduler", cluster.address]
            stdout = _predict_here(store, capsys, URI, str(store.corpus), "--out", str(out),
                                   "--cache-dir", str(tmp_path / executor), *flags)  # fmt: skip
            assert _counts(stdout)["extracted"] == 12, stdout
            outs[executor] = out
    pd.testing.assert_frame_equal(pd.read_csv(outs["dask"]), pd.read_csv(outs["local"]))
    skipped = [pd.read_csv(tmp_path / f"{e}.skipped.csv") for e in ("local", "dask")]
    pd.testing.assert_frame_equal(*skipped)
    assert len(skipped[0]) == 7


@pytest.mark.slow
def test_served_model_gives_the_predict_answer(
    store: Store, capsys: pytest.CaptureFixture
) -> None:
    out = store.root / "served.csv"
    _predict_here(store, capsys, URI, str(store.corpus / "music"), "--out", str(out))
    pred = pd.read_csv(out)
    proc, url, log = _start(store, NAME, {})
    try:
        _wait_ready(proc, url, log)
        files = [store.corpus / "music" / p for p in pred["path"]]
        rows = [{"audio_base64": base64.b64encode(f.read_bytes()).decode()} for f in files]
        resp = requests.post(f"{url}/invocations", json={"dataframe_records": rows}, timeout=120)
    finally:
        _stop(proc)
    assert resp.status_code == 200, resp.text
    served = pd.DataFrame(resp.json()["predictions"])
    assert served["label"].tolist() == pred["label"].tolist()
    proba = ["proba_music", "proba_speech"]
    # The same arithmetic on the same features; only BLAS batching may move the last bit.
    np.testing.assert_allclose(served[proba], pred[proba], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_killed_predict_resumes_from_the_cache(store: Store) -> None:
    """SIGKILL a real run after its first cache flush; the rerun extracts only the rest."""
    data = store.root / "many"
    rng = np.random.default_rng(3)
    n = FLUSH_EVERY + 200
    for i in range(n):  # distinct bytes per clip: the cache is keyed by content
        y = 0.4 * np.sin(2 * np.pi * rng.uniform(150, 900) * np.arange(16000) / 16000)
        write_audio(data / f"c{i:04d}.wav", y + 0.05 * rng.standard_normal(16000), 16000)
    out = store.root / "many.csv"
    args = [URI, str(data), "--out", str(out), "--n-jobs", "1", "--cache-dir", "kill-cache"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "predict", *args, "-q"], cwd=store.root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    packs = store.root / "kill-cache"
    deadline = time.monotonic() + 300

    def flushed() -> bool:  # a pack in place (not the hidden temporary file before it)
        return any(not p.name.startswith(".") for p in packs.glob("*/*/packs/*.parquet"))

    while not flushed() and time.monotonic() < deadline:
        assert proc.poll() is None, "predict ended before its first cache flush"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists(), "a killed run leaves no predictions file"
    counts = _counts(_predict(store, *args))
    assert counts["cache_hits"] >= FLUSH_EVERY
    assert counts["extracted"] == n - counts["cache_hits"] > 0
    assert len(pd.read_csv(out)) == n
