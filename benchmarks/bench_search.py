"""The search against the method of typical audio notebooks.

Baseline: scikit-learn GridSearchCV over a random forest grid and a gradient boosting grid,
3-fold stratified CV, on the training split of a GTZAN-shaped feature table. Ours: the
runner's Optuna study (TPE, median pruner, several families) on the same training split and
the same 3 folds, given 40% of the grid's wall time (the trial running when that budget
runs out still finishes). Reports best CV f1_macro, wall time, and when the search first
matched the grid's best.

    python -m benchmarks.bench_search            # about 1.5 x the grid's time
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from benchmarks._table import table_spec, write_gtzan_like
from runner.errors import TrialFailed
from runner.pipeline import RunOptions, prepare
from runner.search import make_objective, make_pruner, make_sampler
from runner.spec import ExperimentSpec

GRIDS = [
    (
        RandomForestClassifier(random_state=0, n_jobs=1),
        {"n_estimators": [100, 300], "max_depth": [None, 10, 20], "min_samples_split": [2, 5]},
    ),
    (
        GradientBoostingClassifier(random_state=0),
        {"n_estimators": [100, 200], "learning_rate": [0.05, 0.1], "max_depth": [3, 5]},
    ),
]
MODELS = ["logistic", "svm", "random_forest", "extra_trees", "lightgbm", "knn", "mlp"]


def grid_search(p) -> tuple[float, float]:
    """Best mean CV f1_macro over both grids, and the wall time, on the runner's folds."""
    fold_of = [0] * len(p.data.y)
    for k, fold in enumerate(p.data.folds):
        for row in fold.test:
            fold_of[row] = k
    scorer = make_scorer(f1_score, average="macro")
    start, best = time.perf_counter(), -1.0
    for estimator, grid in GRIDS:
        search = GridSearchCV(
            estimator, grid, scoring=scorer, cv=PredefinedSplit(fold_of), n_jobs=1
        )
        search.fit(p.data.X, p.data.y)
        best = max(best, search.best_score_)
    return best, time.perf_counter() - start


def our_search(spec: ExperimentSpec, p, budget_s: float) -> tuple[optuna.Study, float]:
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(spec), pruner=make_pruner(spec)
    )
    start = time.perf_counter()
    study.optimize(make_objective(spec, p.data), timeout=budget_s, catch=(TrialFailed,))
    return study, time.perf_counter() - start


def time_to_beat(study: optuna.Study, target: float) -> float | None:
    """Seconds from the study's first trial start until a trial first scored >= target."""
    done = [t for t in study.trials if t.value is not None and t.datetime_complete]
    if not done:
        return None
    start = min(t.datetime_start for t in study.trials)
    hits = [t.datetime_complete for t in done if t.value >= target]
    return (min(hits) - start).total_seconds() if hits else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--budget-share", type=float, default=0.4, help="of the grid's time")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtzan_like(root / "features.csv", rows=args.rows)
        spec = ExperimentSpec.model_validate(table_spec(root, models=MODELS, n_trials=10_000))
        p = prepare(spec, RunOptions(progress=False, tracking_uri=f"sqlite:///{root}/m.db"))
        grid_best, grid_s = grid_search(p)
        study, ours_s = our_search(spec, p, args.budget_share * grid_s)
    ours_best, trials, beat = study.best_value, len(study.trials), time_to_beat(study, grid_best)
    print(f"rows={args.rows} train={len(p.data.y)} folds=3 metric=f1_macro")
    print(f"grid:   best={grid_best:.4f}  time={grid_s:.1f}s  candidates={_candidates()}")
    print(f"audioml: best={ours_best:.4f}  time={ours_s:.1f}s  trials={trials}")
    print(f"score ratio={ours_best / grid_best:.3f}  time ratio={ours_s / grid_s:.3f}")
    shown = f"{beat:.1f}s ({beat / grid_s:.3f} of the grid's time)" if beat else "never"
    print(f"audioml first matched the grid's best after {shown}")


def _candidates() -> int:
    from sklearn.model_selection import ParameterGrid

    return sum(len(ParameterGrid(g)) for _, g in GRIDS)


if __name__ == "__main__":
    main()
