"""What MLflow tracking adds to a search: the same seeded search with tracking off and on.

Every run uses the same spec, data, folds and sampler seed, so it fits the same trials
(checked: family, parameters, state and CV score of every trial); the difference is the
child runs, their metrics and their per-trial plots (out-of-fold confusion matrix and
feature importance) logged to a SQLite store, exactly as ``audioml run`` logs them (the
child run opened when a trial starts, filled and ended when it ends).

Runs alternate off/on over ``--pairs`` pairs (the order inside each pair drawn at random
with ``--shuffle``) so that a drift in machine load hits both sides. The clock stops only
after ``Tracker.flush()``: the plots a background thread is still rendering count. Each run
reports wall time and process CPU time (all threads, plus waited-for children), and each
tracked run the thread CPU time spent inside the tracker's per-trial calls (child runs in
the foreground, plots on the background thread): a figure that the other jobs on a shared
machine disturb less than the difference of two totals.

    python -m benchmarks.bench_tracking --trials 20 --pairs 3
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import optuna

from benchmarks._table import table_spec, write_gtzan_like
from runner.config.spec import ExperimentSpec
from runner.errors import TrialFailed
from runner.search.objective import make_objective, make_pruner, make_sampler
from runner.session.pipeline import RunOptions, prepare
from runner.session.session import start_tracking

MODELS = ["logistic", "svm", "random_forest", "extra_trees", "lightgbm", "knn", "mlp"]
OUT = Path(__file__).resolve().parent / "RESULTS_tracking.md"


@dataclass
class Run:
    """One timed search."""

    tracking: bool
    wall: float
    cpu: float  # this process (every thread) plus waited-for children
    trials: list[tuple]  # (number, family+params, state, value) per trial
    own_cpu: dict[str, float] = field(default_factory=dict)  # tracking calls, thread CPU s


class Meter:
    """Thread CPU seconds spent inside the tracker's per-trial calls: the foreground ones
    (open and end a child run) and the background plot job, measured where they run."""

    def __init__(self, tracker) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        for name, label in [("start_trial", "child runs"), ("log_trial", "child runs"),
                            ("_finish_trial", "plots")]:  # fmt: skip
            setattr(tracker, name, self._timed(getattr(tracker, name), label))

    def _timed(self, call, label: str):
        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                with self._lock:
                    used = time.thread_time() - start
                    self.seconds[label] = self.seconds.get(label, 0.0) + used

        return timed

    def take(self) -> dict[str, float]:
        with self._lock:
            out, self.seconds = self.seconds, {}
        return out


def _cpu() -> float:
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def timed_search(spec: ExperimentSpec, p, trials: int, tracker, meter: Meter | None) -> Run:
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    on_start = observer = None
    if tracker is not None:

        def on_start(trial, record) -> None:
            record.run_id = tracker.start_trial(record)

        observer = tracker.log_trial
    objective = make_objective(spec, p.data, observer, on_start=on_start)
    wall0, cpu0 = time.perf_counter(), _cpu()
    study.optimize(objective, n_trials=trials, catch=(TrialFailed,))
    if tracker is not None:
        tracker.flush()  # plots still rendering on the background thread count
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    seen = [(t.number, sorted(t.params.items()), t.state.name, t.value) for t in study.trials]
    return Run(tracker is not None, wall, cpu, seen, meter.take() if meter else {})


def _pct(on: float, off: float) -> float:
    return 100 * (on / off - 1)


def report(runs: list[Run], args: argparse.Namespace, argv: list[str], extra: dict) -> str:
    pairs = [runs[i : i + 2] for i in range(0, len(runs), 2)]
    rows, wall_over, cpu_over, own = [], [], [], []
    for k, pair in enumerate(pairs, 1):
        off = next(r for r in pair if not r.tracking)
        on = next(r for r in pair if r.tracking)
        order = "off, on" if not pair[0].tracking else "on, off"
        w, c = _pct(on.wall, off.wall), _pct(on.cpu, off.cpu)
        wall_over.append(w)
        cpu_over.append(c)
        runs_s, plots_s = on.own_cpu.get("child runs", 0.0), on.own_cpu.get("plots", 0.0)
        own.append(100 * (runs_s + plots_s) / off.cpu)
        rows.append(
            f"| {k} | {order} | {off.wall:.1f} | {on.wall:.1f} | {w:+.1f}% "
            f"| {off.cpu:.1f} | {on.cpu:.1f} | {c:+.1f}% | {runs_s:.2f} | {plots_s:.2f} "
            f"| {own[-1]:.1f}% |"
        )
    same = all(r.trials == runs[0].trials for r in runs)
    states = {}
    for t in runs[0].trials:
        states[t[2].lower()] = states.get(t[2].lower(), 0) + 1
    med_w, med_c = statistics.median(wall_over), statistics.median(cpu_over)
    worst = max(med_w, med_c, statistics.median(own))
    verdict = "met" if worst <= 5 else "NOT met"
    head = [
        "| pair | order | off wall s | on wall s | wall overhead | off CPU s | on CPU s "
        "| CPU overhead | child runs CPU s | plots CPU s | tracking CPU / off CPU |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines = [
        "# Tracking overhead",
        "",
        f"Command: `python -m benchmarks.bench_tracking {' '.join(argv)}`",
        "",
        f"Machine: {platform.platform()}, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}; mlflow {version('mlflow')}, optuna {version('optuna')}, "
        f"scikit-learn {version('scikit-learn')}, lightgbm {version('lightgbm')}, "
        f"matplotlib {version('matplotlib')}. Load average before / after: "
        f"{extra['load_before']} / {extra['load_after']}.",
        "",
        f"Search: {args.trials} trials on a GTZAN-shaped table ({args.rows} x 57, 10 classes), "
        f"families {', '.join(MODELS)}, 3-fold CV, median pruner, seed 0; trial states "
        f"{', '.join(f'{n} {s}' for s, n in sorted(states.items()))}. Tracking on: SQLite "
        "store, a child run per trial (opened at its start, params, every metric, ended at "
        "its end), plots confusion_matrix and feature_importance per complete trial, "
        "rendered on the tracker's background thread; the clock stops after "
        "`Tracker.flush()`. CPU = `time.process_time()` (all threads) plus waited-for "
        "children; child runs / plots CPU: `time.thread_time()` inside `start_trial` + "
        "`log_trial` and inside the background plot job. Before the pairs, an untimed "
        "tracked warm-up of "
        f"{args.warmup} trials; the parent run (opened once per search) took "
        f"{extra['parent_s']:.2f} s and is not in the table.",
        "",
        *head,
        *rows,
        "",
        f"Median overhead over {len(pairs)} pairs: **wall {med_w:+.1f}%, CPU {med_c:+.1f}%**; "
        f"tracking's own CPU (thread CPU inside the tracker's per-trial calls, foreground and "
        f"plot thread) over the off run's CPU: median **{statistics.median(own):.1f}%** "
        f"(target <= 5%: {verdict}). Same trials (family, parameters, state, CV score) in "
        f"every run: {same}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=4, help="untimed tracked trials first")
    parser.add_argument("--shuffle", action="store_true", help="random order inside each pair")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtzan_like(root / "features.csv", rows=args.rows)
        spec = ExperimentSpec.model_validate(table_spec(root, models=MODELS, n_trials=args.trials))
        opts = RunOptions(progress=False, tracking_uri=f"sqlite:///{root}/mlflow.db")
        p = prepare(spec, opts)
        study = optuna.create_study(storage=p.storage, study_name="parent-holder")
        t0 = time.perf_counter()
        tracker = start_tracking(p, opts, study)
        parent_s = time.perf_counter() - t0
        meter = Meter(tracker)
        if args.warmup:
            timed_search(spec, p, args.warmup, tracker, meter)
        rng = random.Random(0)
        runs: list[Run] = []
        for k in range(args.pairs):
            order = [False, True]
            if args.shuffle:
                rng.shuffle(order)
            for tracked in order:
                run = timed_search(spec, p, args.trials, tracker if tracked else None, meter)
                runs.append(run)
                side = "on " if tracked else "off"
                print(f"pair {k + 1} {side}: wall {run.wall:.1f}s cpu {run.cpu:.1f}s", flush=True)
        tracker.end_parent()
    extra = {
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "parent_s": parent_s,
    }
    text = report(runs, args, argv, extra)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
