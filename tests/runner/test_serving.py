"""Serving: the AudioModel pyfunc in process, and the real `mlflow models serve` over HTTP.

The server tests take the two models of ``_registered`` (trained once per session on a tiny
synthetic corpus: whole clips, and 1-s windows aggregated per clip), start `mlflow models
serve --env-manager local` on 127.0.0.1, and check that every input form, in both JSON
formats, gets exactly the answer of ``mlflow.pyfunc.load_model(...).predict`` on the same
input; and that bad payloads get a 400 with a clear message while the server keeps serving.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
from _audio_fixtures import write_tone
from _registered import SEGMENTED, WHOLE, Store
from mlflow.exceptions import MlflowException

from features import FeaturesSpec, SegmentsSpec, decode_audio, extract_signal
from runner.serving.model import AudioModel, Limits

MAX_BYTES = 1_000_000  # the servers' clip limit: the corpus clips are ~64 kB
HOST = "127.0.0.1"


# -- in-process unit tests on a hand-built model (fast) -------------------------------------
_FEATURES = {"sample_rate": 16000, "extractors": ["mfcc", "rms"], "mfcc": {"n_mfcc": 5}}


def _tone_bytes(tmp: Path, freq: float, seconds: float = 2.0, fmt: str = "wav") -> bytes:
    return write_tone(tmp / f"t{freq:.0f}.{fmt}", freq, seconds, 16000).read_bytes()


def _hand_model(tmp: Path, task: str, segments: dict, **limits: Any) -> AudioModel:
    """An AudioModel fitted on a few tones, without MLflow (setup() instead of load_context)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    fspec, sspec = FeaturesSpec.model_validate(_FEATURES), SegmentsSpec.model_validate(segments)
    freqs = [220.0, 240.0, 880.0, 900.0]
    rows = [extract_signal(decode_audio(_tone_bytes(tmp, f), 16000), 16000, fspec, sspec)[0]
            for f in freqs]  # fmt: skip
    X = pd.concat(rows).to_numpy()
    y = np.repeat(freqs, [len(r) for r in rows])
    model = AudioModel()
    if task == "regression":
        model.estimator = LinearRegression().fit(X, y)
    else:
        model.estimator = LogisticRegression(max_iter=500).fit(X, np.where(y > 500, "hi", "lo"))
    config = {
        "task": task,
        "classes": ["hi", "lo"] if task == "classification" else None,
        "columns": list(rows[0].columns),
        "input": "table",
        "aggregate": "mean_proba",
        "features": fspec.model_dump(mode="json"),
        "segments": sspec.model_dump(mode="json"),
    }
    model.setup(config, Limits(**limits))
    return model


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_regression_aggregates_windows_to_one_prediction_per_clip(tmp_path: Path) -> None:
    model = _hand_model(tmp_path, "regression", {"mode": "fixed", "length_s": 0.5})
    clips = [_b64(_tone_bytes(tmp_path, f, seconds=1.5)) for f in (230.0, 890.0)]
    out = model.predict(None, pd.DataFrame({"audio_base64": clips}))
    assert list(out.columns) == ["prediction"]
    assert len(out) == 2
    assert out["prediction"].iloc[0] < out["prediction"].iloc[1]


def test_mixed_rows_keep_their_order(tmp_path: Path) -> None:
    model = _hand_model(tmp_path, "classification", {"mode": "whole"})
    fspec, sspec = model.features, model.segments
    low = _tone_bytes(tmp_path, 230.0)
    feats = extract_signal(decode_audio(low, 16000), 16000, fspec, sspec)[0].iloc[0].to_dict()
    high = _b64(_tone_bytes(tmp_path, 890.0))
    out = model.predict(
        None, pd.DataFrame([{"audio_base64": high}, feats, {"audio_base64": high}])
    )
    assert list(out["label"]) == ["hi", "lo", "hi"]
    assert list(out.columns) == ["label", "proba_hi", "proba_lo"]
    np.testing.assert_allclose(out[["proba_hi", "proba_lo"]].sum(axis=1), 1.0)


def test_base64_with_line_breaks_is_accepted(tmp_path: Path) -> None:
    model = _hand_model(tmp_path, "classification", {"mode": "whole"})
    raw = _b64(_tone_bytes(tmp_path, 890.0))
    wrapped = "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    frame = pd.DataFrame({"audio_base64": [raw, wrapped]})
    out = model.predict(None, frame)
    assert out.iloc[0].equals(out.iloc[1])


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"max_bytes": 1000},
            r"row 0, column 'audio_base64': holds about \d+ bytes of audio; the limit is 1000 "
            r"bytes \(AUDIOML_MAX_AUDIO_BYTES\)",
        ),
        (
            {"max_seconds": 1.0},
            r"row 0, column 'audio_base64': holds 2 s of audio; the limit is 1 s "
            r"\(AUDIOML_MAX_AUDIO_SECONDS\)",
        ),
    ],
)
def test_clip_limits(tmp_path: Path, limits: dict, message: str) -> None:
    model = _hand_model(tmp_path, "classification", {"mode": "whole"}, **limits)
    frame = pd.DataFrame({"audio_base64": [_b64(_tone_bytes(tmp_path, 300.0))]})
    with pytest.raises(MlflowException, match=message) as info:
        model.predict(None, frame)
    assert info.value.get_http_status_code() == 400


def test_path_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_tone(root / "a.wav", 880.0, 1.0)
    (tmp_path / "secret.wav").write_bytes((root / "a.wav").read_bytes())
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    off = _hand_model(tmp_path, "classification", {"mode": "whole"})
    with pytest.raises(MlflowException, match="reading files on the server is off"):
        off.predict(None, pd.DataFrame({"path": ["a.wav"]}))
    on = _hand_model(tmp_path, "classification", {"mode": "whole"}, root=root.resolve())
    assert on.predict(None, pd.DataFrame({"path": ["a.wav"]}))["label"].tolist() == ["hi"]
    for bad in ("../secret.wav", str(tmp_path / "secret.wav"), "link.wav"):
        with pytest.raises(MlflowException, match="outside the allowed root"):
            on.predict(None, pd.DataFrame({"path": [bad]}))
    absent = r"row 0, column 'path': 'absent\.wav' names no file under the allowed root"
    with pytest.raises(MlflowException, match=absent):
        on.predict(None, pd.DataFrame({"path": ["absent.wav"]}))


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIOML_MAX_AUDIO_BYTES", "123")
    monkeypatch.setenv("AUDIOML_SERVE_ROOT", str(tmp_path))
    limits = Limits.from_env()
    assert limits.max_bytes == 123 and limits.root == tmp_path.resolve()
    monkeypatch.setenv("AUDIOML_SERVE_ROOT", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match=r"AUDIOML_SERVE_ROOT: '.*absent' must be a directory"):
        Limits.from_env()
    monkeypatch.delenv("AUDIOML_SERVE_ROOT")
    assert Limits.from_env().root is None, "files on the server are off by default"
    monkeypatch.setenv("AUDIOML_MAX_AUDIO_BYTES", "lots")
    with pytest.raises(ValueError, match=r"AUDIOML_MAX_AUDIO_BYTES: 'lots' must be an int > 0"):
        Limits.from_env()
    monkeypatch.setenv("AUDIOML_MAX_AUDIO_BYTES", "0")
    with pytest.raises(ValueError, match=r"AUDIOML_MAX_AUDIO_BYTES: '0' must be an int > 0"):
        Limits.from_env()


# -- registered models and real servers (slow) ----------------------------------------------
@dataclass
class Server:
    """One `mlflow models serve` process on 127.0.0.1 and its in-process twin."""

    url: str
    proc: subprocess.Popen
    local: Any  # mlflow.pyfunc.PyFuncModel loaded with the server's environment

    def post(self, body: str | dict, timeout: float = 60.0) -> tuple[int, dict]:
        data = body if isinstance(body, str) else json.dumps(body)
        resp = requests.post(
            f"{self.url}/invocations",
            data=data.encode(),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        return resp.status_code, resp.json()


@pytest.fixture(scope="module")
def store(registered: Store) -> Store:
    return registered


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(store: Store, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    log = store.root / f"{name}.log"
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
           "--env-manager", "local", "-h", HOST, "-p", str(port)]  # fmt: skip
    inherited = {k: v for k, v in os.environ.items() if k != "AUDIOML_SERVE_ROOT"}
    full_env = {**inherited, "MLFLOW_TRACKING_URI": store.uri, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, f"http://{HOST}:{port}", log


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    # The server runs uvicorn in a child process: end the whole session we started.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def servers(store: Store) -> Iterator[dict[str, Server]]:
    """Both servers, started together: the whole-clip one with files off (the default)."""
    envs = {
        WHOLE: {"AUDIOML_MAX_AUDIO_BYTES": str(MAX_BYTES)},
        SEGMENTED: {"AUDIOML_MAX_AUDIO_BYTES": str(MAX_BYTES),
                    "AUDIOML_SERVE_ROOT": str(store.corpus)},
    }  # fmt: skip
    started = {name: _start(store, name, env) for name, env in envs.items()}
    try:
        out = {}
        for name, (proc, url, log) in started.items():
            _wait_ready(proc, url, log)
            with pytest.MonkeyPatch.context() as mp:  # the in-process twin sees the same env
                mp.delenv("AUDIOML_SERVE_ROOT", raising=False)
                for key, value in envs[name].items():
                    mp.setenv(key, value)
                local = mlflow.pyfunc.load_model(store.model_path(name))
            out[name] = Server(url, proc, local)
        yield out
    finally:
        for proc, _, _ in started.values():
            _stop(proc)


def _split(frame: pd.DataFrame) -> dict:
    # Values as Python objects so floats keep full precision in JSON (to_json rounds).
    data = frame.astype(object).to_numpy().tolist()
    return {"dataframe_split": {"columns": list(frame.columns), "data": data}}


def _records(frame: pd.DataFrame) -> dict:
    rows = [{k: v for k, v in row.items() if not _missing(v)} for row in frame.to_dict("records")]
    return {"dataframe_records": rows}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _assert_same(server: Server, frame: pd.DataFrame) -> pd.DataFrame:
    """Post ``frame`` in both JSON formats; each answer equals the in-process prediction."""
    expected = server.local.predict(frame)
    for body in (_split(frame), _records(frame)):
        status, payload = server.post(body)
        assert status == 200, payload
        got = pd.DataFrame(payload["predictions"])
        assert list(got.columns) == list(expected.columns)
        assert got["label"].tolist() == expected["label"].tolist()
        proba = [c for c in expected.columns if c.startswith("proba_")]
        np.testing.assert_allclose(got[proba], expected[proba], rtol=1e-12, atol=1e-15)
    return expected


def _encode(path: Path, fmt: str) -> bytes:
    y, sr = sf.read(path)
    buf = io.BytesIO()
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}
    sf.write(buf, y, sr, format=fmt.upper(), subtype=subtype[fmt])
    return buf.getvalue()


def _clips(store: Store) -> list[Path]:
    return [store.corpus / "music" / "music_000.wav", store.corpus / "speech" / "speech_001.wav"]


@pytest.mark.slow
def test_audio_in_every_format(store: Store, servers: dict[str, Server]) -> None:
    clips = _clips(store)
    rows = [_b64(_encode(clip, fmt)) for fmt in ("wav", "flac", "ogg", "mp3") for clip in clips]
    out = _assert_same(servers[WHOLE], pd.DataFrame({"audio_base64": rows}))
    assert out["label"].tolist()[:2] == ["music", "speech"]


@pytest.mark.slow
def test_feature_columns_give_the_audio_answer(store: Store, servers: dict[str, Server]) -> None:
    server = servers[WHOLE]
    model = server.local.unwrap_python_model()
    clips = _clips(store)
    tables = [extract_signal(decode_audio(c, 16000), 16000, model.features, model.segments)[0]
              for c in clips]  # fmt: skip
    by_features = _assert_same(server, pd.concat(tables, ignore_index=True)[model.columns])
    audio = pd.DataFrame({"audio_base64": [_b64(c.read_bytes()) for c in clips]})
    pd.testing.assert_frame_equal(by_features, server.local.predict(audio))
    mixed = pd.concat([audio.iloc[:1], tables[1][model.columns]], ignore_index=True)
    _assert_same(server, mixed)


@pytest.mark.slow
def test_integer_feature_values_are_numbers(store: Store, servers: dict[str, Server]) -> None:
    """JSON clients send 3 for 3.0: integer feature columns get the float columns' answer."""
    server = servers[WHOLE]
    model = server.local.unwrap_python_model()
    clip = decode_audio(_clips(store)[0], 16000)
    row = extract_signal(clip, 16000, model.features, model.segments)[0][model.columns]
    as_int = row.round().astype("int64")
    by_int = _assert_same(server, as_int)
    pd.testing.assert_frame_equal(by_int, server.local.predict(as_int.astype(float)))


@pytest.mark.slow
def test_segmented_model_answers_once_per_clip(store: Store, servers: dict[str, Server]) -> None:
    server = servers[SEGMENTED]
    model = server.local.unwrap_python_model()
    clips = _clips(store)
    windows = extract_signal(decode_audio(clips[0], 16000), 16000, model.features, model.segments)
    assert len(windows[0]) == 2, "a 2-s clip is two 1-s windows"
    frame = pd.DataFrame({"audio_base64": [_b64(c.read_bytes()) for c in clips]})
    out = _assert_same(server, frame)
    assert len(out) == len(clips)
    assert out["label"].tolist() == ["music", "speech"]


@pytest.mark.slow
def test_path_under_the_allowed_root(store: Store, servers: dict[str, Server]) -> None:
    server = servers[SEGMENTED]
    rel = [str(c.relative_to(store.corpus)) for c in _clips(store)]
    by_path = _assert_same(server, pd.DataFrame({"path": rel}))
    audio = pd.DataFrame({"audio_base64": [_b64(c.read_bytes()) for c in _clips(store)]})
    pd.testing.assert_frame_equal(by_path, server.local.predict(audio))
    for bad in ("../mlflow.db", str(store.root / "mlflow.db"), "/etc/passwd"):
        status, payload = server.post(_records(pd.DataFrame({"path": [bad]})))
        assert status == 400
        assert "outside the allowed root" in payload["message"]


@pytest.mark.slow
def test_path_is_refused_by_default(store: Store, servers: dict[str, Server]) -> None:
    status, payload = servers[WHOLE].post({"dataframe_records": [{"path": "music/music_000.wav"}]})
    assert status == 400
    assert "reading files on the server is off" in payload["message"]


def _wav(y: np.ndarray, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _bad_payloads(store: Store, columns: list[str]) -> list[tuple[str, str | dict, str]]:
    """(what, request body, a piece of the expected message)."""
    wav = _clips(store)[0].read_bytes()
    half = {c: 0.0 for c in columns[: len(columns) // 2]}
    return [
        ("not audio", _records(pd.DataFrame({"audio_base64": [_b64(b"hello")]})),
         "row 0, column 'audio_base64': not audio"),
        ("empty audio", {"dataframe_records": [{"audio_base64": ""}]}, "no audio"),
        ("not base64", {"dataframe_records": [{"audio_base64": "@@@"}]},
         "row 0, column 'audio_base64': '@@@' is not valid base64"),
        ("too large", {"dataframe_records": [{"audio_base64": _b64(b"\0" * (MAX_BYTES + 10))}]},
         f"bytes of audio; the limit is {MAX_BYTES} bytes (AUDIOML_MAX_AUDIO_BYTES)"),
        ("truncated", {"dataframe_records": [{"audio_base64": _b64(wav[:2000])}]}, "truncated"),
        ("silence", {"dataframe_records": [{"audio_base64": _b64(_wav(np.zeros(16000)))}]},
         "silence"),
        ("too short", {"dataframe_records": [{"audio_base64": _b64(_wav(np.ones(100) / 2))}]},
         "shorter than one frame"),
        ("missing columns", {"dataframe_records": [half]}, "feature columns are missing"),
        ("wrong columns", {"dataframe_records": [{"tempo_bpm": 120.0}]},
         "request: holds no rows or no known column; send audio_base64"),
        ("text features", {"dataframe_records": [dict.fromkeys(columns, "x")]},
         f"row 0, column '{columns[0]}': 'x' must be a number"),
        ("no rows", {"dataframe_split": {"columns": ["audio_base64"], "data": []}}, ""),
        ("not json", '{"dataframe_records": [', "JSON"),
        ("no dataframe key", {"rows": [1]}, "dataframe_split"),
    ]  # fmt: skip


@pytest.mark.slow
def test_bad_payloads_get_400_and_the_server_keeps_serving(
    store: Store, servers: dict[str, Server]
) -> None:
    server = servers[WHOLE]
    columns = server.local.unwrap_python_model().columns
    good = {"dataframe_records": [{"audio_base64": _b64(_clips(store)[0].read_bytes())}]}
    for what, body, message in _bad_payloads(store, columns):
        status, payload = server.post(body)
        assert status == 400, (what, payload)
        assert message in payload["message"], (what, payload["message"][:500])
        status, payload = server.post(good)
        assert status == 200, (what, payload)
        assert payload["predictions"][0]["label"] == "music"


@pytest.mark.slow
def test_mlflow_models_predict_reads_a_csv_of_base64_audio(
    store: Store, servers: dict[str, Server], tmp_path: Path
) -> None:
    frame = pd.DataFrame({"audio_base64": [_b64(c.read_bytes()) for c in _clips(store)]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    cmd = [sys.executable, "-m", "mlflow", "models", "predict", "-m", f"models:/{WHOLE}@champion",
           "-i", str(tmp_path / "in.csv"), "-t", "csv", "-o", str(tmp_path / "out.json"),
           "--env-manager", "local"]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.DataFrame(json.loads((tmp_path / "out.json").read_text())["predictions"])
    expected = servers[WHOLE].local.predict(frame)
    assert got["label"].tolist() == expected["label"].tolist() == ["music", "speech"]
    np.testing.assert_allclose(got["proba_music"], expected["proba_music"], rtol=1e-12)
