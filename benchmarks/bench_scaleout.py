"""Trials per minute with 1 and 2 processes on one study (PostgreSQL + an MLflow server).

Both configurations run the same spec on the same synthetic corpus and the same (pre-built)
feature cache, each on its own fresh Optuna database so neither resumes the other:

- 1 worker:  ``audioml run`` alone;
- 2 workers: ``audioml run`` plus one ``audioml worker``.

Search throughput is finished trials / (last trial end - first trial start), read from the
study; the wall time of the whole job (start-up, features, search, refit, registry) is
reported too. Writes benchmarks/RESULTS_scaleout.md. Needs Debian's ``postgresql`` package
(the PostgreSQL and MLflow servers are started and stopped here, as in the CI test).

    python benchmarks/bench_scaleout.py [--trials 32] [--clips 80]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "runner"))

from test_scaleout import mlflow_server, postgres_server  # noqa: E402

from runner.data.demo_data import synthesize_corpus  # noqa: E402
from runner.stores.lock import database_url  # noqa: E402

DEMO = REPO / "experiments" / "demo.yaml"
OUT = REPO / "benchmarks" / "RESULTS_scaleout.md"


def _spec_args(corpus: Path, trials: int) -> list[str]:
    sets = [
        f"data.root={corpus}",
        f"search.n_trials={trials}",
        "search.models=[logistic,random_forest,lightgbm]",
        "search.cv.folds=3",
        "search.pruner=none",
        # Random sampling keeps the mix of families and sizes alike in both rows (TPE adapts
        # to what it has seen, which differs with the number of workers).
        "search.sampler=random",
        "search.timeout_s=3600",
        "features.n_jobs=1",
        # One core per process: the rows compare processes, not each one's resource plan.
        "search.n_jobs=1",
    ]
    return [str(DEMO), "-q", *[x for s in sets for x in ("--set", s)]]


def _audioml(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed when the process is waited for
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT
    )


def _measure(n: int, spec: list[str], storage: str, tracking: str, cwd: Path) -> dict:
    """One configuration: ``n - 1`` workers, then the run; trials/min from the study."""
    started = time.perf_counter()
    procs = [
        _audioml(["worker", *spec, "--storage", storage], cwd, cwd / f"w{n}-{i}.log")
        for i in range(n - 1)
    ]
    run = ["run", *spec, "--storage", storage, "--tracking-uri", tracking]
    procs.append(_audioml(run, cwd, cwd / f"run{n}.log"))
    codes = [p.wait(timeout=3600) for p in procs]
    wall = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"{n} worker(s): exit codes {codes}; see logs in {cwd}")
    url = database_url(storage)
    (name,) = optuna.get_all_study_names(url)
    trials = [t for t in optuna.load_study(study_name=name, storage=url).trials]
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    minutes = span.total_seconds() / 60
    return {
        "workers": n,
        "trials": len(trials),
        "search_s": span.total_seconds(),
        "trials_per_min": len(trials) / minutes,
        "wall_s": wall,
        "processes": len({t.user_attrs.get("worker") for t in trials}),
    }


def _report(rows: list[dict], command: str, args: argparse.Namespace) -> str:
    base = rows[0]["trials_per_min"]
    lines = [
        "# Scale-out benchmark: trials per minute with 1 and 2 workers",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores "
        f"({platform.processor() or platform.platform()}), Python {platform.python_version()}, "
        f"optuna {metadata.version('optuna')}, mlflow {metadata.version('mlflow')}.",
        "",
        "Set-up: one local PostgreSQL (Debian package) holding the Optuna study (a fresh "
        "database per row), one `mlflow server` (PostgreSQL backend, proxied artifact store) on "
        "127.0.0.1; all processes on this one machine. Spec: experiments/demo.yaml on the "
        f"synthetic corpus ({args.clips} clips per class, 3 s), families logistic, "
        f"random_forest, lightgbm, random sampler, 3-fold CV, no pruning, {args.trials} trials; "
        "the feature cache is built once before both rows.",
        "",
        "| workers | processes that ran trials | trials | search span (s) | trials/min | "
        "speed-up | whole job wall (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['processes']} | {r['trials']} | {r['search_s']:.1f} | "
            f"{r['trials_per_min']:.1f} | {r['trials_per_min'] / base:.2f}x | "
            f"{r['wall_s']:.1f} |"
        )
    lines += [
        "",
        "trials/min = finished trials / (last trial end - first trial start), from the study. "
        "The whole-job wall time adds process start-up, loading the cached features, the "
        "final refit, test scoring, model logging and registration, which do not scale out.",
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--clips", type=int, default=80, help="clips per class")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="audioml-bench-") as tmp:
        cwd = Path(tmp)
        corpus = synthesize_corpus(cwd / "corpus", clips_per_class=args.clips, duration_s=3.0)
        spec = _spec_args(corpus, args.trials)
        subprocess.run([sys.executable, "-m", "runner", "features", *spec], cwd=cwd, check=True)
        with postgres_server(["optuna1", "optuna2", "mlflow"]) as pg:
            backend = f"{pg}/mlflow".replace("postgresql://", "postgresql+psycopg2://")
            with mlflow_server(backend, cwd / "artifacts") as tracking:
                rows = [_measure(n, spec, f"{pg}/optuna{n}", tracking, cwd) for n in (1, 2)]
    command = "python benchmarks/bench_scaleout.py " + " ".join(sys.argv[1:])
    OUT.write_text(_report(rows, command.strip(), args))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
