"""Which configurations a new study tries first (configs/portfolio.yaml), measured.

Every candidate configuration below is scored by the spec's CV on each search-benchmark
corpus of its task (benchmarks/bench_search.py's feature tables, read from its cache): one
trial each, seed 0, the spec's folds and metric. Per corpus a candidate's regret is its gap to
the best candidate, over the best-to-worst range (0 best, 1 worst). The portfolio is then
built greedily: start with regret 1 on every corpus, and add the candidate that lowers the
mean regret of the best-so-far most per second of its mean trial time, until no candidate
lowers it by 0.01; that order is the trial order, so cheap strong configurations run first.
Each family the greedy order leaves out follows with its own best candidate (lowest mean
regret first), so every family's first trial is its best measured configuration.

    python -m benchmarks.bench_portfolio --cache ~/.cache/audioml-bench [--write]

``--write`` also rewrites configs/portfolio.yaml from the result (the shipped list is not
this run's order: RESULTS_portfolio.md says why). Each task's scores are kept
in ``<cache>/portfolio/<task>.json``; ``--reuse`` reads them instead of measuring again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from benchmarks._corpora import ensure
from benchmarks.bench_search import ROOT, TASKS, prepared
from runner.errors import TrialFailed
from runner.metrics import greater_is_better
from runner.models import get_family
from runner.search.objective import make_objective
from runner.search.warm_start import trial_params

OUT = Path(__file__).with_name("RESULTS_portfolio.md")
PORTFOLIO = ROOT / "configs" / "portfolio.yaml"
#: A candidate must lower the mean regret by this much to join the portfolio.
MIN_GAIN = 0.01

_LGBM = {"n_estimators": 1000, "subsample": 0.8, "reg_alpha": 1e-8}
#: name -> (family, params): each family's warm-start setting and a few variants of it.
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "lightgbm_default": ("lightgbm", {**_LGBM, "learning_rate": 0.05, "num_leaves": 31,
                         "min_child_samples": 5, "colsample_bytree": 0.8, "reg_lambda": 1e-3}),
    "lightgbm_small": ("lightgbm", {**_LGBM, "learning_rate": 0.05, "num_leaves": 8,
                       "min_child_samples": 10, "colsample_bytree": 0.5, "reg_lambda": 1.0}),
    "lightgbm_fast": ("lightgbm", {**_LGBM, "n_estimators": 300, "learning_rate": 0.1,
                      "num_leaves": 15, "min_child_samples": 5, "colsample_bytree": 0.6,
                      "reg_lambda": 0.1}),
    "catboost_default": ("catboost", {"iterations": 500, "learning_rate": 0.08, "depth": 6,
                         "l2_leaf_reg": 3.0, "border_count": 254}),
    "catboost_fast": ("catboost", {"iterations": 500, "learning_rate": 0.08, "depth": 6,
                      "l2_leaf_reg": 3.0, "border_count": 64}),
    "catboost_shallow": ("catboost", {"iterations": 500, "learning_rate": 0.1, "depth": 4,
                         "l2_leaf_reg": 5.0, "border_count": 64}),
    "logistic_c1": ("logistic", {"C": 1.0}),
    "logistic_c0.1": ("logistic", {"C": 0.1}),
    "ridge_a1": ("ridge", {"alpha": 1.0}),
    "ridge_a10": ("ridge", {"alpha": 10.0}),
    "svm_c10": ("svm", {"C": 10.0, "gamma": 0.01, "kernel": "rbf", "epsilon": 0.1}),
    "svm_c3": ("svm", {"C": 3.0, "gamma": 0.003, "kernel": "rbf", "epsilon": 0.1}),
    "extra_trees_default": ("extra_trees", {"n_estimators": 300, "max_depth": 32,
                            "min_samples_leaf": 1, "max_features": 0.5, "criterion": "gini"}),
    "extra_trees_sqrt": ("extra_trees", {"n_estimators": 300, "max_depth": 32,
                         "min_samples_leaf": 2, "max_features": 0.2, "criterion": "gini"}),
    "random_forest_default": ("random_forest", {"n_estimators": 300, "max_depth": 32,
                              "min_samples_leaf": 1, "max_features": 0.5, "criterion": "gini"}),
    "random_forest_sqrt": ("random_forest", {"n_estimators": 300, "max_depth": 32,
                           "min_samples_leaf": 2, "max_features": 0.2, "criterion": "gini"}),
    "hist_gradient_boosting_default": ("hist_gradient_boosting", {"max_iter": 200,
        "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
        "l2_regularization": 1e-8}),
    "mlp_default": ("mlp", {"n_layers": 2, "units": 128, "alpha": 1e-4,
                    "learning_rate_init": 1e-3, "batch_size": 32}),
    "knn_default": ("knn", {"n_neighbors": 10, "weights": "distance", "p": 2}),
}  # fmt: skip


def _params(family: str, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    space = get_family(family, task).space(task)
    return {k: v for k, v in params.items() if k in space}  # svm's epsilon: regression only


def candidate_study(direction: str) -> optuna.Study:
    """The study the candidates are enqueued in. Every candidate runs all its folds: Optuna's
    default pruner would stop one whose first fold is below the median of those before it,
    and leave that one fold's score as its value."""
    return optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.RandomSampler(0),
        pruner=optuna.pruners.NopPruner(),
    )


def measure(
    name: str, cache: Path, only: list[str] | None = None
) -> tuple[str, str, dict[str, tuple[float, float]]]:
    """``(ml task, metric, {candidate: (cv score, seconds)})`` on one benchmark task."""
    from runner.config.loading import load_spec

    bench = TASKS[name]
    corpus, _ = ensure(cache / "corpora" / bench.corpus, bench.builder, **bench.sizes)
    task = load_spec(ROOT / bench.spec).task
    names = [c for c, (f, _) in CANDIDATES.items() if get_family(f).supports(task)]
    names = [c for c in names if only is None or c in only]
    families = sorted({CANDIDATES[c][0] for c in names})
    p = prepared(bench, corpus, cache, 0, [f"search.models=[{','.join(families)}]"])
    direction = "maximize" if p.spec.greater_is_better else "minimize"
    study = candidate_study(direction)
    for c in names:
        family, params = CANDIDATES[c]
        config = _params(family, task, params)
        study.enqueue_trial(trial_params(p.spec, p.data, get_family(family, task), config))
    objective = make_objective(p.spec, p.data)
    out = {}
    for c in names:
        start = time.perf_counter()
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        t = [t for t in study.trials if t.state.is_finished()][-1]
        complete = t.state == optuna.trial.TrialState.COMPLETE
        out[c] = (t.value if complete else math.nan, time.perf_counter() - start)
        print(f"{name} {c}: {out[c][0]:.4f} in {out[c][1]:.1f} s", flush=True)
    return task, p.spec.search.metric, out


def regrets(scores: dict[str, float], greater: bool) -> dict[str, float]:
    """0 for the best candidate, 1 for the worst (and for a failed one)."""
    ok = {c: v for c, v in scores.items() if not math.isnan(v)}
    best, worst = (
        (max(ok.values()), min(ok.values())) if greater else (min(ok.values()), max(ok.values()))
    )
    span = abs(best - worst) or 1.0
    return {c: abs(best - ok[c]) / span if c in ok else 1.0 for c in scores}


def _gain(current: dict[str, float], regret: dict[str, dict[str, float]], c: str) -> float:
    """How much ``c`` lowers the mean regret of the best so far."""
    return sum(current[k] - min(current[k], regret[k][c]) for k in current) / len(current)


def greedy(regret: dict[str, dict[str, float]], seconds: dict[str, float]) -> list[tuple]:
    """``[(candidate, mean regret after it, cumulative seconds)]`` in portfolio order."""
    current = dict.fromkeys(regret, 1.0)
    order: list[tuple[str, float, float]] = []
    spent = 0.0
    left = set(seconds)
    while left:
        best = max(sorted(left), key=lambda c: _gain(current, regret, c) / max(seconds[c], 0.05))
        if _gain(current, regret, best) < MIN_GAIN:
            break
        current = {k: min(current[k], regret[k][best]) for k in current}
        spent += seconds[best]
        order.append((best, sum(current.values()) / len(current), spent))
        left.remove(best)
    return order


def rank(
    corpora: Mapping[str, Mapping[str, tuple[float, float]]], greater: bool
) -> tuple[dict[str, dict[str, float]], dict[str, float], list[tuple]]:
    """Per corpus each candidate's regret, each candidate's mean seconds, and the greedy
    order, from ``{corpus: {candidate: (cv score, seconds)}}`` of one ML task."""
    regret = {k: regrets({c: v for c, (v, _) in o.items()}, greater) for k, o in corpora.items()}
    names = list(next(iter(corpora.values())))
    seconds = {c: sum(out[c][1] for out in corpora.values()) / len(corpora) for c in names}
    return regret, seconds, greedy(regret, seconds)


def mean_regret(regret: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each candidate's regret averaged over the corpora."""
    names = next(iter(regret.values()))
    return {c: sum(r[c] for r in regret.values()) / len(regret) for c in names}


def rest(order: list[tuple], regret: dict[str, dict[str, float]]) -> list[tuple]:
    """Each family the greedy order leaves out, with its candidate of the lowest mean
    regret, best first (its first trial is its best measured configuration)."""
    taken = {CANDIDATES[c][0] for c, _, _ in order}
    mean = mean_regret(regret)
    best: dict[str, str] = {}
    for c in sorted(mean, key=mean.__getitem__):
        best.setdefault(CANDIDATES[c][0], c)
    return [(c, mean[c], math.nan) for f, c in best.items() if f not in taken]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "audioml-bench")
    parser.add_argument("--write", action="store_true", help="rewrite configs/portfolio.yaml")
    parser.add_argument(
        "--reuse", action="store_true", help="read tasks measured before from <cache>/portfolio"
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(CANDIDATES), help="measure these again, keep the rest"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    by_task: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    metrics = {}
    for name in args.tasks:
        saved = args.cache / "portfolio" / f"{name}.json"
        if args.only:
            task, metric, out = json.loads(saved.read_text())
            out |= measure(name, args.cache, args.only)[2]
        elif args.reuse and saved.is_file():
            task, metric, out = json.loads(saved.read_text())
        else:
            task, metric, out = measure(name, args.cache)
        if not args.reuse or args.only:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps([task, metric, out]))
        out = {c: tuple(v) for c, v in out.items()}
        by_task.setdefault(task, {})[name] = out
        metrics[name] = metric
    lines = [
        "# Portfolio: the configurations a new study tries first",
        "",
        f"Command: `python -m benchmarks.bench_portfolio --tasks {' '.join(args.tasks)}`",
        "",
    ]
    portfolio = {}
    for task, corpora in by_task.items():
        greater = greater_is_better(metrics[next(iter(corpora))])
        regret, seconds, order = rank(corpora, greater)
        order += rest(order, regret)
        portfolio[task] = [_entry(c, task) for c, _, _ in order]
        lines += _table(task, corpora, regret, seconds, metrics)
        lines += [
            f"Portfolio ({task}): the greedy order (mean regret of the best so far, seconds "
            "spent), then each other family's best candidate (its own mean regret).",
            "",
            "| # | candidate | mean regret | seconds |",
            "| ---: | --- | ---: | ---: |",
        ]
        lines += [
            f"| {i} | {c} | {r:.3f} | {'' if math.isnan(s) else f'{s:.1f}'} |"
            for i, (c, r, s) in enumerate(order, 1)
        ]
        lines.append("")
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    text = yaml.safe_dump(portfolio, sort_keys=False, default_flow_style=None)
    print(text)
    if args.write:
        PORTFOLIO.write_text(_HEADER + text, encoding="utf-8")


def _entry(candidate: str, task: str) -> dict[str, dict[str, Any]]:
    family, params = CANDIDATES[candidate]
    return {family: _params(family, task, params)}


def _table(task, corpora, regret, seconds, metrics) -> list[str]:
    mean = mean_regret(regret)
    names = sorted(seconds, key=mean.__getitem__)
    head = " | ".join(f"{k} ({metrics[k]})" for k in corpora)
    lines = [f"## {task}", "", f"| candidate | {head} | mean regret | mean s |",
             "| --- |" + " ---: |" * (len(corpora) + 2)]  # fmt: skip
    for c in names:
        cells = " | ".join(f"{corpora[k][c][0]:.4f}" for k in corpora)
        lines.append(f"| {c} | {cells} | {mean[c]:.3f} | {seconds[c]:.1f} |")
    return [*lines, ""]


_HEADER = """\
# The portfolio: per task, the configurations a new study tries first, in trial order
# (runner/search/warm_start.py). Chosen by benchmarks/bench_portfolio.py (RESULTS_portfolio.md):
# the greedy order of the candidates that lower the mean regret across the benchmark corpora most
# per second. Families a spec does not search are skipped; values outside a spec's narrowed
# space are left to the sampler; searched families named nowhere here follow with their own
# warm-start settings. `search.warm_start: false` switches it off.
"""


if __name__ == "__main__":
    main()
