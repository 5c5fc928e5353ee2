"""A real Dask cluster for tests: `dask scheduler` and two `dask worker` processes on
127.0.0.1, started with Dask's own command-line programs, each in its own session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Cluster:
    scheduler_file: Path
    workers: dict[str, subprocess.Popen]
    address: str


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=log.parent, env=env, start_new_session=True,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@contextmanager
def dask_cluster(root: Path, workers: int = 2) -> Iterator[Cluster]:
    """A scheduler and ``workers`` workers (one thread, no nanny: a killed worker stays dead,
    as a lost machine does); everything is killed on exit."""
    import distributed

    sched_file = root / "scheduler.json"
    procs = [
        _spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                "--no-dashboard", "--scheduler-file", str(sched_file)], root / "scheduler.log")
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    named = {}
    for k in range(1, workers + 1):
        named[f"w{k}"] = _spawn(
            ["distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--name",
             f"w{k}", "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
            root / f"w{k}.log",
        )  # fmt: skip
    procs += named.values()
    try:
        address = json.loads(sched_file.read_text())["address"]
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield Cluster(sched_file, named, address)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
