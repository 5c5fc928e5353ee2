"""Scale-out end to end: `audioml run` and two `audioml worker` processes on one spec, against
a real PostgreSQL (Debian's package, started here) and a real `mlflow server` on 127.0.0.1.

The service helpers are plain context managers so that benchmarks/bench_scaleout.py can use
them too.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from runner.data.demo_data import synthesize_corpus
from runner.stores.lock import database_url

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
SMALL = [
    "--set",
    "search.n_trials=8",
    "--set",
    "search.models=[logistic,random_forest]",
    "--set",
    "search.cv.folds=2",
    "--set",
    "features.n_jobs=1",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` OS user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(databases: list[str]) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1; yields ``postgresql://...:port``."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError("initdb/pg_ctl not found: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="audioml-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    run = lambda cmd: subprocess.run(_as_postgres(cmd), check=True, capture_output=True, cwd=root)  # noqa: E731
    run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"])
    url = f"postgresql://postgres@127.0.0.1:{port}"
    try:
        import psycopg2

        conn = psycopg2.connect(f"{url}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in databases:
                cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        yield url
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "stop"]
        subprocess.run(_as_postgres(stop), check=False, capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """`mlflow server` with a SQL backend and a proxied artifact store; yields its URL."""
    port = free_port()
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", str(artifacts), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not come up; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own worker processes too
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    if not pg_bin("initdb"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI: PostgreSQL (initdb) is missing; .ci/run installs it")
        pytest.skip("PostgreSQL's initdb not found (apt-get install -y postgresql)")
    with postgres_server(["optuna", "mlflow"]) as url:
        yield url


def _audioml(*args: str, cwd: Path) -> subprocess.Popen:
    log = open(cwd / f"{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )


def _wait(procs: list[subprocess.Popen], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(-9)
    return codes


def _logs(workdir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in workdir.glob("*.log"))


def _one_parent_with_a_child_per_trial(client: MlflowClient, n_trials: int) -> str:
    exp = client.get_experiment_by_name("demo")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "trial_number" in r.data.tags]  # not the ensemble run
    assert len(parents) == 1
    parent = parents[0].info.run_id
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent}
    per_trial = Counter(int(c.data.tags["trial_number"]) for c in children)
    assert per_trial == Counter(range(n_trials)), "exactly one child run per trial"
    return parent


@pytest.mark.slow
@pytest.mark.postgres
def test_run_and_two_workers_share_one_study(workdir: Path, postgres: str) -> None:
    synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=2.0)
    storage = f"{postgres}/optuna"
    # MLflow's server picks the psycopg (v3) driver for a bare postgresql:// URL; name psycopg2.
    backend = f"{postgres}/mlflow".replace("postgresql://", "postgresql+psycopg2://")
    with mlflow_server(backend, workdir / "artifacts") as tracking:
        common = [str(DEMO), "-q", "--set", f"data.root={workdir / 'corpus'}", *SMALL]
        # Workers start first (they wait for the run) and find the tracking server from
        # the study; they build the feature table concurrently with the run, same cache.
        procs = [_audioml("worker", *common, "--storage", storage, cwd=workdir) for _ in "ab"]
        procs.append(
            _audioml("run", *common, "--storage", storage, "--tracking-uri", tracking, cwd=workdir)
        )
        assert _wait(procs, timeout_s=180) == [0, 0, 0], _logs(workdir)

        url = database_url(storage)
        (name,) = optuna.get_all_study_names(url)
        study = optuna.load_study(study_name=name, storage=url)
        numbers = [t.number for t in study.trials]
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) == len(study.trials) == 8, "finished trials == budget, no extra"
        assert sorted(numbers) == list(range(8)), "no trial number repeats"
        assert len({t.user_attrs["worker"] for t in study.trials}) >= 2, _logs(workdir)

        client = MlflowClient(tracking)
        parent = _one_parent_with_a_child_per_trial(client, n_trials=8)
        assert study.user_attrs["finalized_run_id"] == parent
        assert len(client.search_model_versions("name='demo-audio-classifier'")) == 1

        # A late `audioml finalize` is a no-op on a finalized study.
        late = _audioml("finalize", *common, "--storage", storage, cwd=workdir)
        assert _wait([late], timeout_s=120) == [0], _logs(workdir)
        assert len(client.search_model_versions("name='demo-audio-classifier'")) == 1


def _build(args: tuple[str, str]) -> tuple[str, dict]:
    from runner.config.loading import load_spec
    from runner.data.dataset import prepare_dataset

    corpus, cache = args
    overrides = [f"data.root={corpus}", f"features.cache_dir={cache}", "features.n_jobs=1"]
    ds = prepare_dataset(load_spec(DEMO, overrides), progress=False)
    return ds.digest, dict(ds.stats)


@pytest.mark.slow
def test_concurrent_builders_share_one_feature_cache(workdir: Path) -> None:
    """Two processes build the same table into one (shared) cache at once: same table, and
    a later build finds every clip cached."""
    corpus = synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=2.0)
    job = (str(corpus), str(workdir / "shared-cache"))
    # Not fork: this test process may already run JAX's threads (keras tests ran before).
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("forkserver")) as pool:
        (d1, s1), (d2, _) = pool.map(_build, [job, job])
    assert d1 == d2
    digest, stats = _build(job)
    assert digest == d1
    assert stats["cache_misses"] == 0 and stats["cache_hits"] == stats["clips"] == s1["clips"]
