"""What folds side by side buy: the same seeded search on one core and with one trial at a
time on every core (``parallel_trials: 1``; the window of trials that ``auto`` adds on more
cores is measured by ``benchmarks.bench_scaling``).

Both runs fit exactly the same trials (the plan changes where folds run, not what the sampler
draws; the script checks it), on a GTZAN-shaped feature table with the families of
experiments/genre_features.yaml, so the wall-time ratio is the plan's alone.

    python -m benchmarks.bench_plan --trials 24
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks._table import table_spec, write_gtzan_like
from runner.config.spec import ExperimentSpec
from runner.errors import TrialFailed
from runner.search.objective import make_objective, make_pruner, make_sampler
from runner.search.plan import plan_resources
from runner.session.pipeline import RunOptions, prepare

MODELS = ["logistic", "svm", "knn", "random_forest", "extra_trees", "lightgbm", "mlp"]
OUT = Path(__file__).with_name("RESULTS_plan.md")


def _search(spec: ExperimentSpec, p, trials: int) -> tuple[float, float, list]:
    from threadpoolctl import threadpool_limits

    plan = plan_resources(spec.search.n_jobs, 1, spec.search.cv.folds)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    wall, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=plan.threads):  # as runner.session.session does
        study.optimize(make_objective(spec, p.data), n_trials=trials, catch=(TrialFailed,))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, [(t.params, t.value) for t in study.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtzan_like(root / "features.csv", rows=args.rows)
        results = {}
        for n_jobs in (1, "auto"):
            raw = table_spec(root, models=MODELS, n_trials=args.trials, n_jobs=n_jobs)
            raw["search"].update(pruner="none", cv={"folds": args.folds})
            spec = ExperimentSpec.model_validate(raw)
            p = prepare(spec, RunOptions(progress=False, tracking_uri=f"sqlite:///{root}/m.db"))
            plan = plan_resources(n_jobs, 1, args.folds)
            results[n_jobs] = _search(spec, p, args.trials)
            wall, cpu, _ = results[n_jobs]
            rows.append((f"n_jobs={n_jobs}", plan.describe(), wall, cpu))
    same = results[1][2] == results["auto"][2]
    speedup = results[1][0] / results["auto"][0]
    lines = [
        "# Resource plan: one core vs the default plan",
        "",
        f"Command: `python -m benchmarks.bench_plan --trials {args.trials} --rows {args.rows} "
        f"--folds {args.folds}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}",
        "",
        "| search | plan | wall s | CPU s |",
        "| --- | --- | ---: | ---: |",
        *(f"| {a} | {b} | {w:.1f} | {c:.1f} |" for a, b, w, c in rows),
        "",
        f"- Same trials and scores in both runs: {same}",
        f"- Wall-time speed-up of the plan: {speedup:.2f}x",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
