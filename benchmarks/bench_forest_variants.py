"""How far apart plain forests land on one task's held-out split: the noise under a median.

The search benchmark's "notebook forest" (300 trees, library defaults, raw target) beside
the same forest on a log target, and the runner's portfolio forests (random forest and
extra trees: depth 32, 2 rows a leaf, a fifth of the features a split) on the raw and the
log target; the bench_search corpus, table, split and seeds, so a column here is directly
comparable with that benchmark's. No time limit: the scores are deterministic per seed.
``--cv`` adds each forest's mean score over the runner's CV folds of that seed (what the
runner's search ranks by), to set beside the CV scores the runner's trials reach
(bench_selection's per-seed lines): whether the search finds a better forest on its folds.

    python -m benchmarks.bench_forest_variants --task age --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import cross_val_score

from benchmarks._contenders import _plain, _scorer, _with_encoder, held_out, split_of
from benchmarks._corpora import ensure
from benchmarks.bench_search import CACHE, TASKS, prepared
from runner.metrics import greater_is_better

OUT = Path(__file__).with_name("RESULTS_forest_variants.md")
PORTFOLIO = {"n_estimators": 300, "max_depth": 32, "min_samples_leaf": 2, "max_features": 0.2}


def _variants(kind: str, seed: int) -> dict[str, Callable[[], Any]]:
    """Name -> unfitted estimator factory, for ``kind`` Classifier or Regressor."""
    rf, et = f"sklearn.ensemble.RandomForest{kind}", f"sklearn.ensemble.ExtraTrees{kind}"
    fixed = {"n_jobs": -1, "random_state": seed}
    out = {
        "forest (the notebook's)": _plain(rf, n_estimators=300, **fixed),
        "portfolio random_forest": _plain(rf, **PORTFOLIO, **fixed),
        "portfolio extra_trees": _plain(et, **PORTFOLIO, **fixed),
    }
    if kind == "Regressor":
        from sklearn.compose import TransformedTargetRegressor

        for name in list(out):
            make = out[name]
            out[f"{name}, log target"] = lambda make=make: TransformedTargetRegressor(
                make(), func=np.log, inverse_func=np.exp
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(TASKS), default="age")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--cache", type=Path, default=CACHE, help="shared with bench_search")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cv", action="store_true", help="also score each forest on the CV folds")
    args = ap.parse_args(argv)
    task = TASKS[args.task]
    corpus, _ = ensure(args.cache / "corpora" / task.corpus, task.builder, **task.sizes)
    scores: dict[str, list[float]] = {}
    cv: dict[str, list[float]] = {}
    metric = ""
    for seed in args.seeds:
        s = split_of(prepared(task, corpus, args.cache, seed))
        metric = s.metric
        kind = "Classifier" if s.task == "classification" else "Regressor"
        sign = 1.0 if greater_is_better(s.metric) else -1.0  # the CV scorer's sign, undone
        for name, make in _variants(kind, seed).items():
            model = _with_encoder(s, make).fit(s.X_train, s.y_train)
            scores.setdefault(name, []).append(held_out(s, model, s.X_test)[s.metric])
            if args.cv:
                signed = cross_val_score(
                    _with_encoder(s, make), s.X_train, s.y_train, cv=s.folds, scoring=_scorer(s)
                )
                cv.setdefault(name, []).append(sign * float(np.mean(signed)))
        print(seed, {k: round(v[-1], 4) for k, v in scores.items()}, flush=True)
    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"# Forest variants on {args.task} ({metric}), seeds {seeds}",
        "",
        f"    python -m benchmarks.bench_forest_variants --task {args.task} --seeds {seeds}"
        + (" --cv" if args.cv else ""),
        "",
        "| forest | median | min-max | per seed |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, got in scores.items():
        per_seed = ", ".join(f"{v:.4f}" for v in got)
        lines.append(
            f"| {name} | {statistics.median(got):.4f} | {min(got):.4f}-{max(got):.4f} "
            f"| {per_seed} |"
        )
    medians = [statistics.median(v) for v in scores.values()]
    lines += ["", f"Spread of the medians: {max(medians) - min(medians):.4f}.", ""]
    if cv:
        lines += [
            "Mean over the runner's CV folds of each seed (what its search ranks by):", "",
            "| forest | per seed |", "| --- | --- |",
            *(f"| {name} | {', '.join(f'{v:.4f}' for v in got)} |" for name, got in cv.items()),
            "",
        ]  # fmt: skip
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
