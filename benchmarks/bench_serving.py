"""Benchmark the served model: 10-second clips posted to the real `mlflow models serve`.

Usage::

    python benchmarks/bench_serving.py --requests 50
    python benchmarks/bench_serving.py --requests 50 --spec experiments/demo.yaml \
        --spec experiments/genre.yaml

For each spec: trains and registers a small model on a synthesized corpus (2 logistic trials,
so the estimator is cheap and the figures are about serving), starts
``mlflow models serve --env-manager local`` on 127.0.0.1, posts ``--requests`` requests of one
WAV clip each (``audio_base64``, ``dataframe_records``) one at a time after a warm-up, and
reports p50/p95 latency and requests per second. Then, in process, on the same clips, times
``decode_audio`` + ``extract_signal`` against the full pyfunc ``predict`` to give the share of
time spent extracting features. Results are printed and written as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "runner"))

from test_serving import _stop as stop_server  # noqa: E402 - the tests' server shutdown

HOST = "127.0.0.1"
MODEL = "bench-serving"


@dataclass
class Figures:
    """What one spec measured."""

    spec: str
    sample_rate: int
    extractors: list[str]
    latencies: np.ndarray  # seconds, one per request
    wall: float  # seconds for all requests
    extract: np.ndarray  # seconds per clip, in process
    predict: np.ndarray  # seconds per clip, in process

    def row(self) -> dict[str, str]:
        p50, p95 = np.percentile(self.latencies, [50, 95])
        share = self.extract.sum() / self.predict.sum()
        return {
            "spec": self.spec,
            "features": f"{len(self.extractors)} extractors @ {self.sample_rate} Hz",
            "p50 ms": f"{p50 * 1000:.0f}",
            "p95 ms": f"{p95 * 1000:.0f}",
            "requests/s": f"{len(self.latencies) / self.wall:.2f}",
            "extract ms (in process, median)": f"{np.median(self.extract) * 1000:.0f}",
            "predict ms (in process, median)": f"{np.median(self.predict) * 1000:.0f}",
            "extraction share of predict": f"{share:.1%}",
            "extraction share of server p50": f"{np.median(self.extract) / p50:.1%}",
        }


def train(workdir: Path, spec: Path) -> None:
    """Register MODEL@champion in workdir/mlflow.db from a tiny synthesized corpus."""
    from runner.cli import main
    from runner.demo_data import synthesize_corpus

    corpus = synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=2.0)
    sets = [
        f"data.root={corpus}",
        "search.n_trials=2",
        "search.models=[logistic]",
        "search.cv.folds=2",
        "features.n_jobs=1",
        f"register.model_name={MODEL}",
    ]
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        uri = ["--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
        code = main(["run", str(spec), "-q", *uri, *[a for s in sets for a in ("--set", s)]])
    finally:
        os.chdir(cwd)
    if code != 0:
        raise SystemExit(f"training on {spec} failed with exit code {code}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{MODEL}@champion",
        "--env-manager",
        "local",
        "-h",
        HOST,
        "-p",
        str(port),
    ]
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise SystemExit("server not ready after 180 s")


def post_clips(url: str, bodies: list[str], n: int, warmup: int = 3) -> tuple[np.ndarray, float]:
    """Latency of ``n`` sequential requests (cycling over the clips) and their wall time."""
    session = requests.Session()
    for body in bodies[:warmup]:
        session.post(
            f"{url}/invocations", data=body, headers=_JSON, timeout=120
        ).raise_for_status()
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        resp = session.post(
            f"{url}/invocations", data=bodies[i % len(bodies)], headers=_JSON, timeout=120
        )
        resp.raise_for_status()
        latencies.append(time.perf_counter() - t0)
    return np.array(latencies), time.perf_counter() - start


_JSON = {"Content-Type": "application/json"}


def in_process(workdir: Path, clips: list[Path]) -> tuple[np.ndarray, np.ndarray, object]:
    """Per clip: decode + extract_signal alone, and the full pyfunc predict."""
    from features import decode_audio, extract_signal

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    inner = model.unwrap_python_model()
    rate = inner.features.sample_rate
    extract, predict = [], []
    for clip in clips:
        data = clip.read_bytes()
        frame = pd.DataFrame({"audio_base64": [base64.b64encode(data).decode()]})
        model.predict(frame)  # warm caches so both timings see the same state
        t0 = time.perf_counter()
        extract_signal(decode_audio(data, rate), rate, inner.features, inner.segments)
        extract.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.predict(frame)
        predict.append(time.perf_counter() - t0)
    return np.array(extract), np.array(predict), inner


def _request(clip: Path) -> str:
    row = {"audio_base64": base64.b64encode(clip.read_bytes()).decode()}
    return json.dumps({"dataframe_records": [row]})


def run_spec(spec: Path, n: int, clip_seconds: float) -> Figures:
    from runner.demo_data import synthesize_corpus

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        train(workdir, spec)
        long = synthesize_corpus(workdir / "long", clips_per_class=5, duration_s=clip_seconds)
        clips = sorted(long.rglob("*.wav"))
        bodies = [_request(c) for c in clips]
        proc, url = start_server(workdir)
        try:
            latencies, wall = post_clips(url, bodies, n)
        finally:
            stop_server(proc)
        extract, predict, inner = in_process(workdir, clips)
        return Figures(
            spec=str(spec.relative_to(REPO) if spec.is_relative_to(REPO) else spec),
            sample_rate=inner.features.sample_rate,
            extractors=list(inner.features.extractors),
            latencies=latencies,
            wall=wall,
            extract=extract,
            predict=predict,
        )


def markdown(figures: list[Figures], argv: list[str], n: int, clip_seconds: float) -> str:
    table = pd.DataFrame([f.row() for f in figures])
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = "".join("| " + " | ".join(r) + " |\n" for r in table.astype(str).to_numpy())
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `python benchmarks/bench_serving.py {' '.join(argv)}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, mlflow {mlflow.__version__}; server "
        "`mlflow models serve --env-manager local` (1 uvicorn worker) on 127.0.0.1.",
        "",
        f"Each request: one {clip_seconds:g}-s mono 16-bit WAV clip at 16 kHz as `audio_base64` "
        f"in `dataframe_records`; {n} sequential requests after 3 warm-up requests, cycling over "
        "10 synthesized clips (5 music, 5 speech). Model: logistic regression (2 trials), so "
        "the estimator costs almost nothing and the figures are decode + features + HTTP/JSON.",
        "",
        "Extraction share of predict: `decode_audio` + `extract_signal` time over the full "
        "in-process pyfunc `predict` time, summed over the same clips (one timing each, after "
        "a warm-up predict). Share of server p50: the median extraction time over the "
        "server's p50 latency (the rest is base64/JSON, schema enforcement and HTTP).",
        "",
        header + body,
    ]
    for f in figures:
        lines.append(f"- {f.spec}: extractors {', '.join(f.extractors)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--spec", type=Path, action="append", help="repeatable (default demo)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS_serving.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    specs = [s.resolve() for s in (args.spec or [REPO / "experiments" / "demo.yaml"])]
    figures = [run_spec(s, args.requests, args.clip_seconds) for s in specs]
    text = markdown(figures, argv, args.requests, args.clip_seconds)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
