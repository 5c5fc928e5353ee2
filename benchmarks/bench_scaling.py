"""How the runner fills a big machine: the feature pool at 1-16 workers, the search plan on
every core against one core with the same trials, and a Keras CNN fit on CPU and GPU.

    python -m benchmarks.bench_scaling --workers 1 2 4 8 16 --clips 96 --trials 48 --keras

* **Feature pool.** ``features.build_table`` on ``--clips`` synthesized clips of
  ``--seconds`` s (the genre benchmark's clips and default genre set), a cold cache each time,
  with 1, 2, 4, ... workers. Efficiency = the 1-worker wall time / (workers x wall time).
  CPU s is the whole machine's busy time (run it on an idle machine); the CPU time each
  extra worker adds is its start-up (imports, numba's compiled caches, the test extraction)
  plus contention.
* **Search plan.** The plan benchmark's table and families (``benchmarks.bench_plan``), no
  pruner: the ``auto`` plan (a window of trials side by side on shared fold slots) with the
  folds fitted in threads and in worker processes (``search.fold_workers``), then
  ``n_jobs=1`` replaying exactly the first run's trials (their parameters enqueued in
  order). Equal digests of (params, score) show the same trials and scores. Busy cores =
  the machine's CPU s / wall s.
* **Keras on a GPU** (``--keras``): the keras_cnn family fitting 500 mel images (64 x 128)
  for 5 epochs, in a fresh process each, with ``JAX_PLATFORMS=cpu`` and then on the default
  device; the first fit includes XLA's compilation, the second is warm.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks._table import table_spec, write_gtzan_like
from benchmarks._timeline import Timeline
from benchmarks.bench_plan import MODELS
from runner.config.spec import ExperimentSpec
from runner.search.budget import run_budget
from runner.search.objective import make_objective, make_pruner, make_sampler, resource_plan
from runner.search.plan import available_cores
from runner.session.pipeline import RunOptions, prepare

OUT = Path(__file__).with_name("RESULTS_scaling.md")


def _cpu() -> float:
    """Busy CPU seconds of the whole machine (``/proc/stat``): the feature pool's workers are
    children of a fork server, not of this process, so this process's own counters miss
    them. Meaningful on an otherwise idle machine."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def feature_pool(workers: list[int], clips: int, seconds: float) -> list[str]:
    from benchmarks.bench_features import FEATURES, synthesize
    from features import SegmentsSpec, build_table

    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        table = synthesize(Path(tmp) / "clips", clips, seconds)
        # Imports and numba's compiled caches, once in this process (the 1-worker build runs
        # here); each worker process of a larger pool pays its own start-up, which is measured.
        build_table(table.head(1), FEATURES, SegmentsSpec(), cache_dir=Path(tmp) / "warm",
                    n_jobs=1, progress=False)  # fmt: skip
        for n in workers:
            cache = Path(tmp) / f"cache{n}"
            wall, cpu = time.perf_counter(), _cpu()
            build_table(table, FEATURES, SegmentsSpec(), cache_dir=cache, n_jobs=n, progress=False)
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            base = base or (wall, cpu)
            eff = base[0] / (n * wall)
            rows.append(f"| {n} | {wall:.1f} | {base[0] / wall:.2f}x | {eff:.2f} | {cpu:.1f} |")
    return [
        f"## Feature pool: {clips} clips of {seconds:g} s, default genre set, cold cache",
        "",
        "| workers | wall s | speed-up | efficiency | CPU s |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def _spec(
    root: Path, trials: int, n_jobs: int | str, folds: int, how: str, window: int | str = "auto"
) -> ExperimentSpec:
    raw = table_spec(root, models=MODELS, n_trials=trials, n_jobs=n_jobs)
    raw["search"].update(pruner="none", cv={"folds": folds}, warm_start=False, fold_workers=how,
                         parallel_trials=window)  # fmt: skip
    return ExperimentSpec.model_validate(raw)


def _search(
    spec: ExperimentSpec, root: Path, trials: int, replay: list | None = None, trace: bool = False
):
    from threadpoolctl import threadpool_limits

    p = prepare(spec, RunOptions(progress=False, tracking_uri=f"sqlite:///{root}/m.db"))
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    for params in replay or ():
        study.enqueue_trial(params)
    plan = resource_plan(spec)
    timeline = Timeline()
    wall, cpu = time.perf_counter(), _cpu()
    traced = timeline.installed() if trace else contextlib.nullcontext()
    with threadpool_limits(limits=plan.threads), traced:  # as the session sets them
        objective = make_objective(spec, p.data)
        run_budget(study, objective, n_trials=trials, deadline=None, n_jobs=plan.trials)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    if objective.procs is not None:
        objective.procs.close()
    done = [(t.params, round(t.value, 9)) for t in study.trials if t.state.is_finished()]
    notes = timeline.breakdown(wall, plan.slots, plan.trials) if trace else []
    return plan, wall, cpu, done, notes


def _digest(done: list) -> str:
    return hashlib.sha256(json.dumps(done, sort_keys=True).encode()).hexdigest()[:12]


def search_plan(
    trials: int, rows: int, folds: int, modes: list[str], trace: bool = False
) -> list[str]:
    """``modes``: ``threads`` / ``processes`` (auto plan, folds in threads or in worker
    processes; ``processes:16`` sets ``search.parallel_trials`` to 16), ``replay`` (n_jobs=1
    replaying the first mode's trials). ``trace``: where each run's wall time went."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtzan_like(root / "features.csv", rows=rows)
        for mode in modes:
            if mode == "replay":
                first = runs[next(iter(runs))][3]
                spec = _spec(root, trials, 1, folds, "threads")
                runs[mode] = _search(spec, root, trials, [params for params, _ in first], trace)
            else:
                how, _, window = mode.partition(":")
                spec = _spec(root, trials, "auto", folds, how, int(window) if window else "auto")
                runs[mode] = _search(spec, root, trials, trace=trace)
            _, wall, cpu, done, notes = runs[mode]
            print(f"{mode}: {wall:.1f} s wall, {cpu:.1f} CPU s, {_digest(done)}", *notes,
                  sep="\n", flush=True)  # fmt: skip
    out = [
        f"## Search plan: {trials} trials, {rows} rows, {folds} folds, no pruner",
        "",
        "| search | plan | wall s | CPU s (machine) | busy cores | trials digest |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for mode, (plan, wall, cpu, done, _) in runs.items():
        name = "n_jobs=1 (replay)" if mode == "replay" else _name(mode)
        out.append(f"| {name} | {plan.describe()} | {wall:.1f} | {cpu:.1f} | "
                   f"{cpu / wall:.1f} | {_digest(done)} |")  # fmt: skip
    out.append("")
    if "replay" in runs:
        base = runs["replay"][1]
        for mode, (plan, wall, cpu, *_) in runs.items():
            if mode != "replay":
                busy = cpu / wall / plan.cores
                out.append(f"- {_name(mode)}: {base / wall:.2f}x over n_jobs=1; "
                           f"busy fraction {busy:.2f} of {plan.cores} cores")  # fmt: skip
    for mode, (*_, notes) in runs.items():
        if notes:
            out += ["", f"Where the wall time of {_name(mode)} went:", "", *notes]
    return out


def _name(mode: str) -> str:
    if mode == "replay":
        return "n_jobs=1 (replay)"
    how, _, window = mode.partition(":")
    return f"auto, folds in {how}" + (f", {window} trials at a time" if window else "")


def _keras_child() -> None:
    import numpy as np

    from runner.models._device import keras_device
    from runner.models._keras_cnn_estimator import KerasCNNClassifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    X = (rng.normal(0, 1, (500, 64, 128)) + y[:, None, None] * 0.3).astype(np.float32)
    times = []
    for _ in range(2):
        model = KerasCNNClassifier(epochs=5, patience=5, random_state=0)
        start = time.perf_counter()
        model.fit(X, y.astype(str))
        times.append(time.perf_counter() - start)
    print(json.dumps({"device": keras_device(), "first_s": times[0], "warm_s": times[1]}))


def keras_fit() -> list[str]:
    out = ["## Keras CNN: 500 mel images (64 x 128), 5 epochs", "",
           "| device | first fit s | warm fit s |", "| --- | ---: | ---: |"]  # fmt: skip
    for env in ({"JAX_PLATFORMS": "cpu"}, {}):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_scaling", "--keras-child"],
            env={**os.environ, "KERAS_BACKEND": "jax", **env}, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            out.append(f"| {env or 'default'} | failed: {proc.stderr.strip()[-300:]} | |")
            continue
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append(f"| {got['device']} | {got['first_s']:.1f} | {got['warm_s']:.1f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--trials", type=int, default=0, help="search plan trials (0: skip)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--plan-modes", nargs="+", default=["threads", "processes", "replay"])
    parser.add_argument("--trace", action="store_true", help="where each search's time went")
    parser.add_argument("--keras", action="store_true")
    parser.add_argument("--keras-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.keras_child:
        return _keras_child()
    command = "python -m benchmarks.bench_scaling " + " ".join(argv or sys.argv[1:])
    lines = ["# Filling a big machine", "", f"Command: `{command.strip()}`", "",
             f"Machine: {platform.machine()}, {available_cores()} cores, Python "
             f"{platform.python_version()}, optuna {optuna.__version__}", ""]  # fmt: skip
    parts = {
        "plan": lambda: (
            search_plan(args.trials, args.rows, args.folds, args.plan_modes, args.trace)
            if args.trials
            else []
        ),
        "keras": lambda: keras_fit() if args.keras else [],
        "features": lambda: feature_pool(args.workers, args.clips, args.seconds),
    }
    for name in ("plan", "keras", "features"):  # the search first: the figure that matters most
        part = parts[name]() if name != "features" or args.workers else []
        lines += [*part, ""] if part else []
        print("\n".join(part), flush=True)
        args.out.write_text("\n".join(lines))  # what finished survives a cut-off run


if __name__ == "__main__":
    main()
