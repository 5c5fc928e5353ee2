"""An ONNX embedding end to end: refused at validate, searched, registered, served, predicted.

One run of the demo spec on a tiny synthetic corpus with ``features.extractors: [rms,
embedding]`` (a tiny model built with ``onnx.helper``) and the feature-group search on; then
the model file is deleted, and the registered model must still answer through a real
``mlflow models serve`` (the helpers of test_serving.py) and through ``audioml predict``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from _onnx_fixtures import conv_embedder, wrong_signature
from mlflow.tracking import MlflowClient
from test_serving import HOST, Store, _start, _stop, _wait_ready

from runner.cli import main
from runner.data.demo_data import synthesize_corpus

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
NAME = "embedding-e2e"
MODEL = "models/tiny.onnx"  # relative: resolved against the working directory
EMBEDDING = ["features.embedding.window_s=0.5", "features.embedding.hop_s=0.25",
             "features.extractors=[rms,embedding]"]  # fmt: skip
# A meta-path finder that makes onnxruntime absent, as on a machine without the extra.
HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnxruntime":
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
"""


def _args(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, str]]:
    """The registered model of one run, with its ONNX file deleted afterwards; and its hash."""
    root = tmp_path_factory.mktemp("embedding")
    corpus = synthesize_corpus(root / "corpus", clips_per_class=8, duration_s=2.0)
    (root / "models").mkdir()
    sha = hashlib.sha256(conv_embedder(root / MODEL, dim=8).read_bytes()).hexdigest()
    sets = [*EMBEDDING, f"features.embedding.model={MODEL}", "search.n_trials=3",
            "search.models=[logistic]", "search.cv.folds=2", "search.feature_groups=true",
            "features.n_jobs=1", f"data.root={corpus}", f"register.model_name={NAME}"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["run", str(DEMO), "-q", *_args(*sets)]) == 0
    (root / MODEL).unlink()  # serving and predict must need nothing but the registered model
    yield Store(root, corpus), sha


def _validate(spec_dir: Path, model: str, *, python: str = "") -> tuple[int, str]:
    """``audioml validate`` of the demo spec with ``model``, in a subprocess; code, output."""
    code = python + (
        "from runner.cli import main\n"
        f"raise SystemExit(main(['validate', {str(DEMO)!r}, "
        f"*{_args(*EMBEDDING, f'features.embedding.model={model}')!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=spec_dir, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_validate_refuses_a_bad_model_a_missing_file_and_a_missing_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    wrong_signature(tmp_path / "loudness.onnx")
    conv_embedder(tmp_path / "good.onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        for model in ("loudness.onnx", "absent.onnx"):
            capsys.readouterr()
            args = _args(*EMBEDDING, f"features.embedding.model={model}")
            assert main(["validate", str(DEMO), *args]) == 2
            out = " ".join(capsys.readouterr().out.split())
            assert "features.embedding.model" in out and "Traceback" not in out
            if model == "loudness.onnx":
                assert "'loudness' tensor(float) [batch]" in out and "[batch, dim]" in out
            else:
                assert f"no file at {tmp_path / model}" in out
        good = _args(*EMBEDDING, "features.embedding.model=good.onnx")
        assert main(["validate", str(DEMO), *good]) == 0
    code, out = _validate(tmp_path, "good.onnx", python=HIDE)  # a real import failure
    assert code == 2, out
    assert "features.extractors" in out and "onnxruntime" in out and "Traceback" not in out
    assert 'pip install "audioml[embeddings]"' in out


@pytest.mark.slow
def test_trials_switch_the_embedding_group_and_the_run_logs_the_model(
    store: tuple[Store, str],
) -> None:
    st, sha = store
    client = MlflowClient(st.uri)
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    parent = next(r for r in runs if "features.extractors" in r.data.params)
    params = parent.data.params
    assert params["features.embedding.model_sha256"] == sha
    assert params["features.embedding.model_name"] == "tiny.onnx"
    assert params["features.embedding.model_signature"] == (
        "input 'waveform' float [batch, samples] -> output 'embedding' float [batch, 8]"
    )
    groups = [r.data.params["feature_groups"] for r in runs if "feature_groups" in r.data.params]
    assert groups and any("embedding" in g.split(",") for g in groups)
    local = Path(st.model_path(NAME).removeprefix("file://"))
    assert (local / "artifacts" / "tiny.onnx").read_bytes()  # packaged with the model
    requirements = (local / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements


@pytest.mark.slow
def test_served_and_predicted_without_the_model_file(
    store: tuple[Store, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    st, _ = store
    assert not (st.root / MODEL).exists()
    clips = sorted(st.corpus.rglob("*.wav"))
    proc, url, log = _start(st, NAME, {})
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)  # a folder without the model file: predict through the CLI
            out = tmp_path / "predictions.csv"
            args = ["predict", f"models:/{NAME}@champion", str(st.corpus), "--out", str(out)]
            assert main([*args, "--tracking-uri", st.uri, "-q"]) == 0
        predicted = pd.read_csv(out).set_index("path")
        assert len(predicted) == len(clips)
        _wait_ready(proc, url, log)
        b64 = [base64.b64encode(p.read_bytes()).decode() for p in clips[:: len(clips) // 4]]
        import requests

        resp = requests.post(
            f"{url}/invocations", json={"dataframe_split": {"columns": ["audio_base64"],
            "data": [[b] for b in b64]}}, timeout=60,
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        served = pd.DataFrame(resp.json()["predictions"])
    finally:
        _stop(proc)
    local = mlflow.pyfunc.load_model(st.model_path(NAME))
    expected = local.predict(pd.DataFrame({"audio_base64": b64}))
    assert served["label"].tolist() == expected["label"].tolist()
    proba = [c for c in expected.columns if c.startswith("proba_")]
    np.testing.assert_allclose(served[proba].to_numpy(), expected[proba].to_numpy(), rtol=1e-9)
    rel = [str(p.relative_to(st.corpus)) for p in clips[:: len(clips) // 4]]
    assert predicted.loc[rel, "label"].tolist() == expected["label"].tolist()
    assert HOST in url
