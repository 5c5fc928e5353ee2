"""Request limits of the served model, and a seeded request fuzzer against the real server.

Every malformed or oversize request must get a 4xx naming the problem (never a 5xx), and the
good request sent right after it must still get its 200.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from _registered import WHOLE, Store
from mlflow.exceptions import MlflowException
from test_serving import _start, _stop, _wait_ready

from runner.serving.limits import Limits

LIMITS = {
    "AUDIOML_MAX_AUDIO_BYTES": "300000",
    "AUDIOML_MAX_AUDIO_SECONDS": "4",
    "AUDIOML_MAX_REQUEST_ROWS": "6",
    "AUDIOML_MAX_REQUEST_BYTES": "500000",
}
N_CASES = 60


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_limits_from_env_and_request_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LIMITS.items():
        monkeypatch.setenv(key, value)
    limits = Limits.from_env()
    assert (limits.max_rows, limits.max_request_bytes) == (6, 500000)
    assert (limits.max_bytes, limits.max_seconds) == (300000, 4.0)
    limits.check_request(pd.DataFrame({"audio_base64": [_b64(b"x" * 1000)] * 6}))
    with pytest.raises(MlflowException, match="limit is 6 rows per request") as rows:
        limits.check_request(pd.DataFrame({"x": range(7)}))
    assert rows.value.message == (
        "request: has 7 rows; the limit is 6 rows per request (AUDIOML_MAX_REQUEST_ROWS)"
    )
    assert rows.value.get_http_status_code() == 400
    big = pd.DataFrame({"audio_base64": [_b64(b"x" * 200_000)] * 3, "other": [1, None, 2]})
    with pytest.raises(MlflowException, match="limit is 500000 bytes per request") as size:
        limits.check_request(big)
    assert size.value.message.startswith("request: carries about 600003 bytes of audio; ")
    for value in ("lots", "0", "-3"):
        monkeypatch.setenv("AUDIOML_MAX_REQUEST_ROWS", value)
        with pytest.raises(ValueError, match="AUDIOML_MAX_REQUEST_ROWS"):
            Limits.from_env()


# -- the real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(registered: Store) -> Iterator[tuple[str, Store]]:
    """The shared whole-clip model served with this module's tight limits."""
    proc, url, log = _start(registered, WHOLE, LIMITS)
    try:
        _wait_ready(proc, url, log)
        yield url, registered
    finally:
        _stop(proc)


def _post(url: str, body: bytes, content_type: str = "application/json") -> requests.Response:
    return requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=60
    )


def _records(*rows: dict) -> bytes:
    return json.dumps({"dataframe_records": list(rows)}).encode()


Case = tuple[str, Callable[[np.random.Generator], bytes]]
_NOT_FRAMES = ('"x"', "1", "[]", "{}", '{"foo": 1}', '{"dataframe_split": 3}', "null")


def _cases(clip: bytes, long_clip: bytes) -> list[Case]:
    """Named generators of bad request bodies (each draws from the seeded rng)."""

    def audio(data: bytes) -> bytes:
        return _records({"audio_base64": _b64(data)})

    def cut(data: bytes, r: np.random.Generator, most: int) -> bytes:
        return data[: int(r.integers(1, most))]

    split = {"dataframe_split": {"columns": ["audio_base64"], "data": [[1, 2]]}}
    return [
        ("random bytes", lambda r: r.bytes(int(r.integers(1, 4000)))),
        ("truncated JSON", lambda r: cut(audio(clip), r, 200)),
        ("not a frame", lambda r: _NOT_FRAMES[int(r.integers(len(_NOT_FRAMES)))].encode()),
        ("truncated audio", lambda r: audio(cut(clip, r, len(clip) - 1))),
        ("random audio bytes", lambda r: audio(r.bytes(int(r.integers(1, 20000))))),
        ("header only", lambda r: audio(clip[:44])),
        ("bad base64", lambda r: _records({"audio_base64": "%%" + _b64(clip)[:100]})),
        ("number as audio", lambda r: _records({"audio_base64": int(r.integers(0, 1000))})),
        ("wrong columns", lambda r: _records({"x": float(r.normal()), "y": "z"})),
        ("empty records", lambda r: _records()),
        ("feature strings", lambda r: _records({"mfcc_mean_0": "loud"})),
        ("path without root", lambda r: _records({"path": "music/music_000.wav"})),
        ("too many rows", lambda r: _records(*[{"audio_base64": _b64(clip)}] * 7)),
        ("request too large", lambda r: _records(*[{"audio_base64": _b64(r.bytes(200_000))}] * 3)),
        ("clip too large", lambda r: audio(r.bytes(310_000))),
        ("clip too long", lambda r: audio(long_clip)),
        ("split, wrong shape", lambda r: json.dumps(split).encode()),
    ]


@pytest.mark.slow
def test_request_fuzzer_only_4xx_and_the_server_keeps_serving(server) -> None:
    url, store = server
    clip = (store.corpus / "music" / "music_000.wav").read_bytes()
    long_clip = _long_clip(store.root)
    good = _records({"audio_base64": _b64(clip)})
    ok = _post(url, good)
    assert ok.status_code == 200, ok.text
    expected = ok.json()
    rng = np.random.default_rng(12)
    cases = _cases(clip, long_clip)
    seen: dict[str, set[int]] = {}
    started = time.monotonic()
    for i in range(N_CASES):
        name, make = (
            cases[i % len(cases)] if i < len(cases) else cases[int(rng.integers(len(cases)))]
        )
        body = make(rng)
        bad = _post(url, body)
        assert 400 <= bad.status_code < 500, f"{name}: {bad.status_code} {bad.text[:500]}"
        assert bad.text.strip(), f"{name}: an empty error"
        seen.setdefault(name, set()).add(bad.status_code)
        after = _post(url, good)
        assert after.status_code == 200 and after.json() == expected, f"after {name}: {after.text}"
    assert time.monotonic() - started < 300
    assert set(seen) == {name for name, _ in cases}
    # The limits say which limit was hit.
    messages = {
        "too many rows": "AUDIOML_MAX_REQUEST_ROWS",
        "request too large": "AUDIOML_MAX_REQUEST_BYTES",
        "clip too long": "AUDIOML_MAX_AUDIO_SECONDS",
        "clip too large": "the limit is 300000 bytes (AUDIOML_MAX_AUDIO_BYTES)",
    }
    for name, needle in messages.items():
        make = dict(cases)[name]
        answer = _post(url, make(rng))
        assert answer.status_code == 400 and needle in answer.json()["message"], answer.text
    assert _post(url, b"{}", "text/plain").status_code == 415


def _long_clip(folder: Path) -> bytes:
    """A 5-s tone: over the 4-s limit, well under the byte limits."""
    import soundfile as sf

    t = np.arange(5 * 8000) / 8000
    path = folder / "long.wav"
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 8000, subtype="PCM_16")
    return path.read_bytes()
