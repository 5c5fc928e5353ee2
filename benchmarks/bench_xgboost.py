"""Does XGBoost add something to the runner's families? Measured the way the portfolio was.

Three XGBoost configurations (its library defaults; 500 slower trees of depth 6; 500 trees
of depth 3 on half the features, like FLAML's ``xgb_limitdepth``) are scored by the
portfolio benchmark's own protocol (benchmarks/bench_portfolio.py: one trial each through
the runner's objective, seed 0, the spec's CV folds and metric, on each search-benchmark
corpus), beside the runner's candidates saved by that benchmark in
``<cache>/portfolio/<task>.json``. One of the runner's candidates per task is measured again
in the same run, to show the saved scores still hold at this commit; ``--all`` measures every
candidate again instead, so that the seconds the greedy order divides by come from one run
on one machine. The question: would an XGBoost configuration join the greedy portfolio, or
lower any corpus's best score?

    ~/venv-bench/bin/python -m benchmarks.bench_xgboost --all

(XGBoost comes with the bench extra: see docs/BENCHMARKS.md for its environment.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna

import benchmarks._xgboost_family  # noqa: F401 - registers the family
from benchmarks import bench_portfolio as bp
from benchmarks.bench_search import CACHE, TASKS
from runner.metrics import greater_is_better

OUT = Path(__file__).with_name("RESULTS_xgboost.md")
_COMMON = {"min_child_weight": 1.0, "reg_alpha": 1e-8, "reg_lambda": 1.0}
XGB = {
    "xgboost_default": ("xgboost", {**_COMMON, "n_estimators": 100, "learning_rate": 0.3,
                        "max_depth": 6, "subsample": 1.0, "colsample_bytree": 1.0}),
    "xgboost_slow": ("xgboost", {**_COMMON, "n_estimators": 500, "learning_rate": 0.05,
                     "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.8}),
    "xgboost_limitdepth": ("xgboost", {**_COMMON, "n_estimators": 500, "learning_rate": 0.1,
                           "max_depth": 3, "subsample": 0.8, "colsample_bytree": 0.5}),
}  # fmt: skip
#: The runner's candidate measured again beside them (a cheap one of each task).
CHECK = {"classification": "lightgbm_small", "regression": "extra_trees_sqrt"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--all", action="store_true", help="measure the runner's candidates again")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bp.CANDIDATES.update(XGB)
    lines = [
        "# XGBoost beside the runner's families, by the portfolio's protocol", "",
        f"    ~/venv-bench/bin/python -m benchmarks.bench_xgboost --tasks {' '.join(args.tasks)}"
        + (" --all" if args.all else ""),
        "",
        "| corpus | runner's best candidate | XGBoost, best | every XGBoost candidate "
        "| check: saved / again (with --all: the one that moved most) |",
        "| --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    by_task: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    greater_of: dict[str, bool] = {}
    for name in args.tasks:
        task, metric, saved = json.loads((args.cache / "portfolio" / f"{name}.json").read_text())
        saved = {c: tuple(v) for c, v in saved.items() if c in bp.CANDIDATES}
        before, check = dict(saved), CHECK[task]
        _, _, new = bp.measure(name, args.cache, None if args.all else [*XGB, check])
        if args.all:  # the saved scores, checked all at once; this run's seconds
            check = max(saved, key=lambda c: abs(saved[c][0] - new[c][0]))
            saved = {c: v for c, v in new.items() if c not in XGB}
        greater = greater_is_better(metric)
        greater_of[task] = greater
        pick = max if greater else min
        best = pick(saved, key=lambda c: saved[c][0])
        xgb = {c: new[c] for c in XGB}
        top = pick(xgb, key=lambda c: xgb[c][0])
        every = ", ".join(f"{c.removeprefix('xgboost_')} {v:.4f} ({s:.0f} s)"
                          for c, (v, s) in xgb.items())  # fmt: skip
        lines.append(
            f"| {name} ({metric}) | {best} {saved[best][0]:.4f} ({saved[best][1]:.0f} s) "
            f"| {top} {xgb[top][0]:.4f} | {every} | {check} {before[check][0]:.4f} / "
            f"{new[check][0]:.4f} |"
        )
        by_task.setdefault(task, {})[name] = {**saved, **xgb}
    lines += [
        "", "Greedy portfolio with the XGBoost candidates among the runner's (bench_portfolio's "
        f"rule; seconds: {'this run' if args.all else 'the saved runs and this run'}):", "",
    ]  # fmt: skip
    for task, corpora in by_task.items():
        regret, _, order = bp.rank(corpora, greater_of[task])
        mean = bp.mean_regret(regret)
        ranked = sorted(mean, key=mean.__getitem__)
        steps = ", ".join(f"{c} ({r:.3f})" for c, r, _ in order)
        xgb_rank = ", ".join(f"{c} #{ranked.index(c) + 1} ({mean[c]:.3f})" for c in XGB)
        joined = [c for c, _, _ in order if c in XGB]
        verdict = (
            f"XGBoost joins it: {', '.join(joined)}" if joined else "no XGBoost candidate joins it"
        )
        lines += [f"- {task}: {steps}; {verdict}. Mean regret rank of {len(ranked)}: {xgb_rank}."]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
