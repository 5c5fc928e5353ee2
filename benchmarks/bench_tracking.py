"""What MLflow tracking adds to a search: the same seeded search with tracking on and off.

Both runs use the same spec, data, folds and sampler seed, so they fit the same trials; the
difference is the child runs, their metrics and their per-trial plots (confusion matrix and
feature importance) logged to a SQLite store.

    python -m benchmarks.bench_tracking --trials 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks._table import table_spec, write_gtzan_like
from runner.errors import TrialFailed
from runner.pipeline import RunOptions, prepare
from runner.search import make_objective, make_pruner, make_sampler
from runner.session import start_tracking
from runner.spec import ExperimentSpec

MODELS = ["logistic", "svm", "random_forest", "extra_trees", "lightgbm", "knn", "mlp"]


def timed_search(spec: ExperimentSpec, p, trials: int, observer) -> tuple[float, list]:
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    start = time.perf_counter()
    study.optimize(make_objective(spec, p.data, observer), n_trials=trials, catch=(TrialFailed,))
    return time.perf_counter() - start, [t.params for t in study.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtzan_like(root / "features.csv", rows=args.rows)
        spec = ExperimentSpec.model_validate(table_spec(root, models=MODELS, n_trials=args.trials))
        opts = RunOptions(progress=False, tracking_uri=f"sqlite:///{root}/mlflow.db")
        p = prepare(spec, opts)
        study = optuna.create_study(storage=p.storage, study_name="parent-holder")
        tracker = start_tracking(p, opts, study)
        off, params_off = timed_search(spec, p, args.trials, None)
        on, params_on = timed_search(spec, p, args.trials, tracker.log_trial)
        tracker.end_parent()
    same = params_off == params_on
    print(f"trials={args.trials} rows={args.rows} plots={sorted(spec.tracking.plots)}")
    print(f"tracking off: {off:.1f}s  on: {on:.1f}s  overhead={100 * (on / off - 1):.1f}%")
    print(f"same trials in both runs: {same}")


if __name__ == "__main__":
    main()
