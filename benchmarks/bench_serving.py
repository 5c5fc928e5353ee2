"""Benchmark the served model: 10-second clips posted to the real `mlflow models serve`.

Usage::

    python benchmarks/bench_serving.py --spec experiments/demo.yaml \
        --spec experiments/genre.yaml

For each spec: trains and registers a small model on a synthesized corpus (2 logistic trials,
so the estimator is cheap and the figures are about serving). Then, for each ``--workers``
count (default 1 and 2), starts ``mlflow models serve --env-manager local --workers N`` on
127.0.0.1, warms every worker up and, for each ``--clients`` count (default 1, 4 and 16),
lets that many client threads post ``--requests`` requests in all (one WAV clip each,
``audio_base64`` in ``dataframe_records``, a ``--timeout`` per request and a deadline per
cell), reporting p50/p95/p99 latency, requests per second and the server's CPU seconds.
The server's process group is killed at the end of each workers count. Then, in process, on
the same clips, times ``decode_audio`` + ``extract_signal`` against the full pyfunc
``predict`` to give the share of time spent extracting features. Results are printed and
written as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
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
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    """One (clients x workers) measurement."""

    workers: int
    clients: int
    latencies: np.ndarray  # seconds, one per answered request
    wall: float  # seconds from the first request to the last answer
    errors: int  # non-200 answers, timeouts, refused connections
    server_cpu: float  # CPU seconds of the server's processes during the cell

    def row(self) -> dict[str, str]:
        p50, p95, p99 = np.percentile(self.latencies, [50, 95, 99]) * 1000
        return {
            "workers": str(self.workers),
            "clients": str(self.clients),
            "requests": str(len(self.latencies)),
            "errors": str(self.errors),
            "p50 ms": f"{p50:.0f}",
            "p95 ms": f"{p95:.0f}",
            "p99 ms": f"{p99:.0f}",
            "requests/s": f"{len(self.latencies) / self.wall:.1f}",
            "server CPU s per request": f"{self.server_cpu / len(self.latencies):.3f}",
        }


@dataclass
class Figures:
    """What one spec measured."""

    spec: str
    sample_rate: int
    extractors: list[str]
    extract: np.ndarray  # seconds per clip, in process
    predict: np.ndarray  # seconds per clip, in process
    cells: list[Cell] = field(default_factory=list)
    processes: dict[int, int] = field(default_factory=dict)  # workers -> server processes

    def row(self) -> dict[str, str]:
        single = next(c for c in self.cells if c.clients == 1 and c.workers == 1)
        p50 = np.percentile(single.latencies, 50)
        share = self.extract.sum() / self.predict.sum()
        return {
            "spec": self.spec,
            "features": f"{len(self.extractors)} extractors @ {self.sample_rate} Hz",
            "server p50 ms (1 client, 1 worker)": f"{p50 * 1000:.0f}",
            "extract ms (in process, median)": f"{np.median(self.extract) * 1000:.0f}",
            "predict ms (in process, median)": f"{np.median(self.predict) * 1000:.0f}",
            "extraction share of predict": f"{share:.1%}",
            "extraction share of server p50": f"{np.median(self.extract) / p50:.1%}",
        }


def train(workdir: Path, spec: Path) -> None:
    """Register MODEL@champion in workdir/mlflow.db from a tiny synthesized corpus."""
    from runner.cli import main
    from runner.data.demo_data import synthesize_corpus

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


def session_processes(sid: int) -> dict[int, float]:
    """pid -> CPU seconds (user + system) of every live process in session ``sid``."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6: the session id
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def start_server(workdir: Path, workers: int, timeout: int) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve --workers N`` in a session of its own; returns once every worker
    has started its application (uvicorn logs one line per worker)."""
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
        "--workers",
        str(workers),
        "--timeout",
        str(timeout),
    ]
    log_path = workdir / f"server-{workers}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
        started = log_path.read_text(errors="replace").count("Application startup complete")
        try:
            if started >= workers and requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise SystemExit(f"server with {workers} workers not ready after 180 s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group; uvicorn's workers outlive the mlflow CLI by a
    moment, so wait for the session to empty (SIGKILL it after 15 s)."""
    stop_server(proc)
    for sig in (None, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 15
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not session_processes(proc.pid):
            return
    raise SystemExit(f"server processes of session {proc.pid} still alive")


_JSON = {"Content-Type": "application/json"}


class Clients:
    """``n`` client threads posting ``total`` requests in all (cycling over the clips), each
    on its own keep-alive connection, released together; none sends after the deadline."""

    def __init__(self, url: str, bodies: list[str], n: int, total: int, timeout: float) -> None:
        self.url, self.bodies, self.timeout = url, bodies, timeout
        self.share = [total // n + (k < total % n) for k in range(n)]
        self.latencies: list[list[float]] = [[] for _ in range(n)]
        self.errors = [0] * n
        self.deadline = 0.0
        self._go = threading.Barrier(n + 1)
        self._threads = [threading.Thread(target=self._client, args=(k,), daemon=True)
                         for k in range(n)]  # fmt: skip
        for t in self._threads:
            t.start()  # each waits at the barrier, its session made

    def _client(self, k: int) -> None:
        session = requests.Session()
        self._go.wait()
        for i in range(self.share[k]):
            if time.perf_counter() > self.deadline:
                self.errors[k] += self.share[k] - i  # not sent: the cell ran out of time
                return
            body = self.bodies[(k * 7 + i) % len(self.bodies)]
            t0 = time.perf_counter()
            try:
                resp = session.post(f"{self.url}/invocations", data=body, headers=_JSON,
                                    timeout=self.timeout)  # fmt: skip
                ok = resp.status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.latencies[k].append(time.perf_counter() - t0)
            else:
                self.errors[k] += 1

    def run(self, deadline_s: float) -> float:
        """Release the clients, wait for them; the wall time from release to last answer."""
        start = time.perf_counter()
        self.deadline = start + deadline_s
        self._go.wait()
        for t in self._threads:
            t.join(deadline_s + self.timeout + 5)
        return time.perf_counter() - start

    def answered(self) -> np.ndarray:
        return np.array([x for per in self.latencies for x in per])


def run_cell(
    proc: subprocess.Popen, url: str, bodies: list[str], workers: int, clients: int,
    args: argparse.Namespace,
) -> Cell:  # fmt: skip
    load = Clients(url, bodies, clients, args.requests, args.timeout)
    cpu0 = sum(session_processes(proc.pid).values())
    wall = load.run(args.cell_deadline)
    cpu = sum(session_processes(proc.pid).values()) - cpu0
    answered = load.answered()
    if not len(answered):
        raise SystemExit(f"no answer with {clients} clients, {workers} workers")
    return Cell(workers, clients, answered, wall, sum(load.errors), cpu)


def warm_up(url: str, bodies: list[str], workers: int, timeout: float) -> None:
    """Enough concurrent requests that every worker has answered a few (caches warm)."""
    load = Clients(url, bodies, 2 * workers, 6 * workers, timeout)
    load.run(120)
    if sum(load.errors):
        raise SystemExit(f"{sum(load.errors)} warm-up requests failed")


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


def run_spec(spec: Path, args: argparse.Namespace) -> Figures:
    from runner.data.demo_data import synthesize_corpus

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        train(workdir, spec)
        long = synthesize_corpus(workdir / "long", clips_per_class=5, duration_s=args.clip_seconds)
        clips = sorted(long.rglob("*.wav"))
        bodies = [_request(c) for c in clips]
        cells, processes = [], {}
        for workers in args.workers:
            proc, url = start_server(workdir, workers, int(args.timeout))
            try:
                pids = session_processes(proc.pid)
                processes[workers] = len(pids)
                for pid in pids:  # what each process is, for the results' description
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    print(f"workers={workers} pid {pid}: {cmd.decode(errors='replace')[:160]}")
                warm_up(url, bodies, workers, args.timeout)
                for clients in args.clients:
                    cell = run_cell(proc, url, bodies, workers, clients, args)
                    cells.append(cell)
                    print(cell.row(), flush=True)
            finally:
                stop(proc)
        extract, predict, inner = in_process(workdir, clips)
        return Figures(
            spec=str(spec.relative_to(REPO) if spec.is_relative_to(REPO) else spec),
            sample_rate=inner.features.sample_rate,
            extractors=list(inner.features.extractors),
            extract=extract,
            predict=predict,
            cells=cells,
            processes=processes,
        )


def _table(rows: list[dict[str, str]]) -> str:
    table = pd.DataFrame(rows)
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    return header + "".join("| " + " | ".join(r) + " |\n" for r in table.astype(str).to_numpy())


def markdown(figures: list[Figures], argv: list[str], args: argparse.Namespace) -> str:
    procs = "; ".join(
        f"--workers {w}: {n} processes" for w, n in sorted(figures[0].processes.items())
    )
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `python benchmarks/bench_serving.py {' '.join(argv)}`",
        "",
        f"Machine: {platform.platform()}, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}, mlflow {mlflow.__version__}. Load average at the end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. The client threads run on the "
        "same cores as the server.",
        "",
        "Server: `mlflow models serve -m models:/bench-serving@champion --env-manager local "
        "-h 127.0.0.1 --workers N`. In this MLflow version the mlflow CLI runs `uvicorn "
        "--workers N mlflow.pyfunc.scoring_server.app:app` as a child (no gunicorn): with "
        "N = 1 one uvicorn process, with N > 1 a supervisor, "
        "multiprocessing's resource tracker and N spawned worker processes sharing the "
        "socket, each loading the model itself; "
        "inside a worker `/invocations` runs `predict` via `asyncio.to_thread`, so "
        "even one worker overlaps concurrent requests on threads (the GIL serialises their "
        f"Python parts). Processes in the server's session (the mlflow CLI included): {procs}.",
        "",
        f"Each request: one {args.clip_seconds:g}-s mono 16-bit WAV clip at 16 kHz as "
        "`audio_base64` in `dataframe_records`, cycling over 10 synthesized clips (5 music, "
        f"5 speech). Per cell: {args.requests} requests in all, split over the client threads "
        "(each with its own keep-alive connection, all released together), after a warm-up "
        f"of 6 requests per worker; {args.timeout:g}-s timeout per request, "
        f"{args.cell_deadline:g}-s deadline per cell. Model: logistic regression (2 trials), "
        "so the estimator costs almost nothing and the figures are decode + features + "
        "HTTP/JSON. Server CPU: user + system seconds of every process in the server's "
        "session over the cell, per answered request.",
        "",
    ]
    for f in figures:
        lines += [f"## {f.spec} ({len(f.extractors)} extractors @ {f.sample_rate} Hz)", ""]
        lines += [_table([c.row() for c in f.cells]), ""]
    lines += [
        "## Where a request's time goes (in process)",
        "",
        "Extraction share of predict: `decode_audio` + `extract_signal` time over the full "
        "in-process pyfunc `predict` time, summed over the same clips (one timing each, after "
        "a warm-up predict). Share of server p50: the median extraction time over the "
        "server's p50 latency with 1 client and 1 worker (the rest is base64/JSON, schema "
        "enforcement and HTTP).",
        "",
        _table([f.row() for f in figures]),
    ]
    for f in figures:
        lines.append(f"- {f.spec}: extractors {', '.join(f.extractors)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=160, help="per (clients x workers)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--cell-deadline", type=float, default=120.0, help="seconds per cell")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--spec", type=Path, action="append", help="repeatable (default demo)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS_serving.md")
    args = parser.parse_args(argv)
    if 1 not in args.clients or 1 not in args.workers:
        parser.error("--clients and --workers must include 1 (the extraction share uses it)")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    specs = [s.resolve() for s in (args.spec or [REPO / "experiments" / "demo.yaml"])]
    figures = [run_spec(s, args) for s in specs]
    text = markdown(figures, argv, args)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
