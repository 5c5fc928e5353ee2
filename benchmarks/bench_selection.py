"""How the final step's choice among the searched trials holds up on the test split.

Per task and seed: the runner's own search at the budget (``run_experiment``, with
``bench_search``'s settings, so the search is the one the search benchmark measures), then every
trial any rule below picks is refit on the whole training split and scored on the test clips,
once. Every rule reads only what the final step reads (the trials' CV scores and logged
out-of-fold predictions), so the rules are compared on the same search, paired, and their test
scores are the weighted average of their members' clip-level test outputs:

* ``served``: what ``audioml run`` registered (its own form, refit or bagged);
* ``best``: the best trial by CV;
* ``ensemble``: greedy ensemble selection (``runner.final.ensemble.select_ensemble``);
* ``stack``: the linear stacker (``runner.final.stacking``), on the members' clip outputs;
* ``best_cv``: what ``final.candidate: best_cv`` picks among those three (the default);
* ``bagged_ens``: ensemble selection repeated on 20 random halves of the pool, the weights
  averaged (Caruana et al., 2004, "bagged ensemble selection");
* ``ens_pool5``: ensemble selection over the five best trials only;
* ``top3``, ``top5``: the three (five) best trials by CV, averaged with equal weights;
* ``honest``: whichever of best, ensemble and stack scores best by *nested* CV: for each fold,
  the rule is applied to the other folds' out-of-fold rows and scored on this fold's;
* ``recv``: the five best trials cross-validated again on a second set of folds (another
  seed), the best by the mean of both CV scores: repeated CV for the final choice.

    python -m benchmarks.bench_selection --tasks music_dialogue --seeds 0 --budget-s 20
    python -m benchmarks.bench_selection --tasks music_dialogue gender age --seeds 0 1 2 3 4 \\
        --budget-s 120 --json selection.jsonl --out benchmarks/RESULTS_selection.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from benchmarks._corpora import ensure
from benchmarks._search_tasks import CACHE, TASKS, Task

RULES = (
    "served", "best", "ensemble", "stack", "best_cv", "bagged_ens", "ens_pool5", "top3", "top5",
    "honest", "recv",
)  # fmt: skip
BAGS, TOP, RECV = 20, 5, 5


@dataclasses.dataclass
class Outputs:
    """Test-clip outputs of refit trials (probabilities or predictions), by trial number."""

    task: str
    metric: str
    classes: list | None
    truth: np.ndarray
    by_trial: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    def score(self, weights: dict[int, float]) -> float:
        total = sum(weights.values())
        values = sum(w / total * self.by_trial[n] for n, w in weights.items())
        return self.score_values(np.asarray(values, dtype=float))

    def score_values(self, values: np.ndarray) -> float:
        from runner.metrics import score_all

        if self.task == "regression":
            return score_all(self.task, self.truth, values)[self.metric]
        pred = np.asarray(self.classes)[values.argmax(axis=1)]
        return score_all(self.task, self.truth, pred, values, self.classes)[self.metric]


def _search(
    task: Task, corpus: Path, cache: Path, seed: int, budget_s: float, extra: Sequence[str],
    tmp: Path,
) -> tuple:  # fmt: skip
    """The runner's search on ``task`` at ``seed``; its Prepared, study, tracker, test score."""
    from benchmarks.bench_search import prepared, run_audioml
    from runner.tracking.tracker import Tracker

    result = run_audioml(task, corpus, cache, seed, budget_s, extra, workdir=tmp)
    p = prepared(task, corpus, cache, seed, extra)
    (name,) = optuna.get_all_study_names(f"sqlite:///{tmp}/optuna.db")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp}/optuna.db")
    tracker = Tracker(f"sqlite:///{tmp}/mlflow.db", p.spec.name, task=p.spec.task,
                      metric=p.spec.search.metric)  # fmt: skip
    return p, study, tracker, result


def _tested(p: Any, final: Any) -> tuple[np.ndarray, np.ndarray]:
    """``final`` fitted as the final step fits it (a bagged estimator fits nothing) and
    scored on the test clips: their truth, and its probabilities or predictions."""
    from runner.session.finalize import _fit_final, _score_test

    estimator, test_in = _fit_final(p, final)
    _, truth, pred, proba = _score_test(p, estimator, test_in)
    return np.asarray(truth), np.asarray(pred if proba is None else proba, dtype=float)


def _refit(p: Any, trial: Any) -> tuple[np.ndarray, np.ndarray]:
    """One trial refit on the training split: the test clips' truth and its outputs."""
    from runner.final.candidates import _single
    from runner.search.objective import resource_plan

    return _tested(p, _single(p, trial, resource_plan(p.spec).cores))


def _bagged(p: Any, trial: Any, tracker: Any) -> np.ndarray | None:
    """One trial's kept CV fold models, averaged (the bagged form): its test-clip outputs,
    or None when the trial kept none."""
    from runner.attrs import RUN
    from runner.final.bagging import bagged_estimator
    from runner.final.candidates import _single

    kept = tracker.load_folds(trial.user_attrs[RUN]) if trial.user_attrs.get(RUN) else None
    if not kept:
        return None
    final = _single(p, trial, 1)
    final.estimator = bagged_estimator(kept["models"], p.spec.task, p.data.classes)
    return _tested(p, final)[1]


def _recv_scores(p: Any, trials: list, seed: int) -> dict[int, float]:
    """Each trial's CV score on a second set of folds over the same training rows."""
    from runner.data.splits import cv_folds
    from runner.models import MODELS
    from runner.search.evaluation import cross_validate
    from runner.search.objective import build_estimator, decode_params, resource_plan

    spec, data = p.spec, p.data
    train = p.dataset.frame.iloc[p.split.train].reset_index(drop=True)
    if "group" in train.columns:  # GroupKFold does not shuffle: rename the groups instead
        names = train["group"].astype(str)
        unique = names.unique()
        renamed = dict(zip(unique, np.random.default_rng(seed).permutation(unique), strict=True))
        train = train.assign(group=names.map(renamed))
    folds = cv_folds(train, folds=spec.search.cv.folds, task=spec.task, seed=seed + 1000)
    threads = resource_plan(spec).cores
    out = {}
    for t in trials:
        setup = decode_params(t.params, t.user_attrs)
        columns = setup.columns(p.dataset.groups, p.dataset.feature_columns)
        inputs = data.inputs(MODELS[setup.family].input, columns)
        cv = cross_validate(
            lambda s=setup, i=inputs: build_estimator(s, spec, i.roles, threads=threads),
            inputs, data.y, data.clip_ids, folds, task=spec.task, classes=data.classes,
            aggregate=spec.segments.aggregate,
        )  # fmt: skip
        out[t.number] = float(cv.mean()[spec.search.metric])
    return out


def _nested(rule: Callable, oofs: list, truth: np.ndarray, folds: np.ndarray, score) -> float:
    """``rule`` (oofs, truth, folds -> weights) chosen on the other folds, scored per fold."""
    per, by = [], {o.number: o for o in oofs}
    for k in np.unique(folds):
        inside = folds != k
        sub = [dataclasses.replace(o, values=o.values[inside]) for o in oofs]
        weights = rule(sub, truth[inside], folds[inside])
        if not weights:
            continue
        values = sum(w * by[n].values[~inside] for n, w in weights.items()) / sum(weights.values())
        per.append(score(truth[~inside], values))
    return float(np.mean(per)) if per else float("nan")


def one_seed(
    task: str, seed: int, budget_s: float, *, corpus: Path | None = None, cache: Path = CACHE,
    extra: Sequence[str] = (), log: Callable[[str], None] = print,
) -> dict:  # fmt: skip
    """Every rule's CV estimate and test score on one search of ``task`` (a name in
    ``TASKS``) on ``corpus`` (default: its benchmark corpus, built under ``cache``)."""
    from runner.final import candidates as C
    from runner.final.ensemble import fast_score, select_ensemble
    from runner.final.stacking import stack_oofs

    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        start = time.perf_counter()
        t = TASKS[task]
        if corpus is None:
            corpus, _ = ensure(cache / "corpora" / t.corpus, t.builder, **t.sizes)
        p, study, tracker, served = _search(t, corpus, cache, seed, budget_s, extra, Path(tmp))
        searched = time.perf_counter() - start
        spec, metric = p.spec, p.spec.search.metric
        sign = 1.0 if spec.greater_is_better else -1.0
        trials = C._candidates(study, sign)
        oofs, truth, folds, _ = oof = C._oofs(p, trials, tracker)
        by_number = {t.number: t for t in trials}
        classes = p.data.classes
        kw = {"task": spec.task, "metric": metric, "classes": classes}
        n_classes = len(classes) if classes else 0
        if spec.task == "classification":
            index = {c: i for i, c in enumerate(classes)}
            coded = np.asarray([index[t] for t in truth])
        else:
            coded = np.asarray(truth, dtype=float)

        def cv_score(rows_truth: np.ndarray, values: np.ndarray) -> float:
            return fast_score(spec.task, metric, rows_truth, values, n_classes, classes)

        def ens(sub: list, tr: np.ndarray, fo: np.ndarray) -> dict[int, float]:
            labels = np.asarray(classes)[tr] if spec.task == "classification" else tr
            s = select_ensemble(sub, labels, fo, **kw)
            return s.weights if s else {}

        def best_of(sub: list, tr: np.ndarray, fo: np.ndarray) -> dict[int, float]:
            parts = [np.flatnonzero(fo == k) for k in np.unique(fo)]
            means = [np.mean([cv_score(tr[r], o.values[r]) for r in parts]) for o in sub]
            return {sub[int(np.argmax(sign * np.asarray(means)))].number: 1.0}

        weights: dict[str, dict[int, float]] = {"best": {oofs[0].number: 1.0}}
        cv: dict[str, float] = {"best": oofs[0].value}
        selection = select_ensemble(oofs, truth, folds, **kw)
        weights["ensemble"], cv["ensemble"] = selection.weights, selection.score
        rng = np.random.default_rng(seed)
        bag: dict[int, float] = {}
        for _ in range(BAGS):
            half = sorted(rng.choice(len(oofs), size=max(1, len(oofs) // 2), replace=False))
            s = select_ensemble([oofs[i] for i in half], truth, folds, **kw)
            for n, w in (s.weights if s else {}).items():
                bag[n] = bag.get(n, 0.0) + w / BAGS
        weights["bagged_ens"] = bag
        weights["top5"] = {o.number: 1.0 for o in oofs[:TOP]}
        weights["top3"] = {o.number: 1.0 for o in oofs[:3]}
        small = select_ensemble(oofs[:TOP], truth, folds, **kw)
        weights["ens_pool5"] = small.weights
        stack = stack_oofs(p, oof)
        # The nested estimates of best trial and ensemble (the stack's CV is nested already).
        honest = {
            "best": _nested(best_of, oofs, coded, folds, cv_score),
            "ensemble": _nested(ens, oofs, coded, folds, cv_score),
        }
        if stack is not None:
            honest["stack"], cv["stack"] = stack.value, stack.value
        rules = ["best", "ensemble"] + (["stack"] if stack is not None else [])
        picked = C._pick(spec, oofs[0].value, {k: cv[k] for k in rules if k != "best"})
        honest_pick = max(rules, key=lambda r: sign * honest[r])
        top = [by_number[o.number] for o in oofs[:RECV]]
        start = time.perf_counter()
        second = _recv_scores(p, top, seed)
        recv_s = time.perf_counter() - start
        first = {o.number: o.value for o in oofs}
        recv = max(second, key=lambda n: sign * (first[n] + second[n]))
        weights["recv"] = {recv: 1.0}
        needed = {n for w in weights.values() for n in w}
        if stack is not None:
            needed |= {o.number for o in stack.members}
        start = time.perf_counter()
        outputs = None
        for n in sorted(needed):
            truth_t, values = _refit(p, by_number[n])
            outputs = outputs or Outputs(spec.task, metric, classes, truth_t)
            outputs.by_trial[n] = values
        refit_s = time.perf_counter() - start
        bagged = Outputs(spec.task, metric, classes, outputs.truth)
        for n in sorted(needed):
            values = _bagged(p, by_number[n], tracker)
            if values is not None:
                bagged.by_trial[n] = values
        test_bagged = {
            r: bagged.score(w) for r, w in weights.items() if set(w) <= set(bagged.by_trial)
        }
        test = {r: outputs.score(w) for r, w in weights.items()}
        if stack is not None:
            from runner.models import stack_inputs

            X = stack_inputs([outputs.by_trial[o.number] for o in stack.members], None)
            if spec.task == "regression":
                test["stack"] = outputs.score_values(stack.stacker.predict(X))
            else:
                proba = stack.stacker.predict_proba(X)
                order = [list(stack.stacker.classes_).index(c) for c in classes]
                test["stack"] = outputs.score_values(proba[:, order])
        test["best_cv"] = test[{"trial": "best"}.get(picked, picked)]
        test["honest"] = test[honest_pick]
        test["served"] = served.score
    row = {
        "task": task, "seed": seed, "metric": metric, "greater": spec.greater_is_better,
        "complete": len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))),
        "pool": len(oofs), "test": test, "test_bagged": test_bagged, "cv": cv, "honest": honest,
        "picked": picked, "honest_pick": honest_pick, "recv_pick": recv,
        "best_trial": oofs[0].number, "ensemble_size": selection.size,
        "bagged_size": len(bag), "search_s": searched, "recv_s": recv_s, "refit_s": refit_s,
        "refits": len(needed),
    }  # fmt: skip
    log(json.dumps(row))
    return row


def markdown(rows: list[dict], command: str) -> str:
    """Per task: each rule's median and range of test scores, and its searches against what
    the runner served on the same search; then every task together (:func:`_pooled`)."""
    out = ["# Final choice among the searched trials, on the test split", "",
           f"    {command}", ""]  # fmt: skip
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        metric, greater = mine[0]["metric"], mine[0]["greater"]
        sign = 1.0 if greater else -1.0
        seeds = ", ".join(str(r["seed"]) for r in mine)
        out += [f"## {task} ({metric}, {'higher' if greater else 'lower'} is better; seeds "
                f"{seeds})", "",
                "| rule (refit form unless named) | test median | min-max "
                "| seeds better / equal / worse than served |",
                "| --- | ---: | ---: | --- |"]  # fmt: skip
        columns = [(rule, "test") for rule in RULES]
        columns += [(rule, "test_bagged") for rule in RULES[1:]]  # served has one form
        for rule, key in columns:
            have = [r for r in mine if rule in r.get(key, {})]
            if not have:
                continue
            vals = [r[key][rule] for r in have]
            diff = [sign * (r[key][rule] - r["test"]["served"]) for r in have]
            b, e = sum(d > 1e-12 for d in diff), sum(abs(d) <= 1e-12 for d in diff)
            label = rule if key == "test" else f"{rule}, bagged form"
            out.append(f"| {label} | {statistics.median(vals):.4f} | {min(vals):.4f}-"
                       f"{max(vals):.4f} | {b} / {e} / {len(diff) - b - e} |")  # fmt: skip
        out += [
            "",
            "Per seed: complete trials, what best_cv and honest picked (with the CV scores "
            "best_cv chose by and the nested estimates honest chose by), the seconds.",
            "",
        ]
        for r in mine:
            out.append(
                f"- seed {r['seed']}: {r['complete']} complete, pool {r['pool']}; best_cv "
                f"picked {r['picked']}, honest {r['honest_pick']} (CV: "
                + ", ".join(f"{k} {v:.4f}" for k, v in r["cv"].items())
                + "; nested: "
                + ", ".join(f"{k} {v:.4f}" for k, v in r["honest"].items())
                + f"); ensemble of {r['ensemble_size']}, bagged of {r['bagged_size']}; "
                f"search {r['search_s']:.0f} s, second CV {r['recv_s']:.0f} s, "
                f"{r['refits']} refits {r['refit_s']:.0f} s"
            )
        out.append("")
    return "\n".join(out + _pooled(rows))


def _pooled(rows: list[dict]) -> list[str]:
    """Every task and seed together: each rule and form against what the runner served."""
    out = ["## All tasks and seeds together", "",
           "| rule and form | seeds better / equal / worse than served |",
           "| --- | --- |"]  # fmt: skip
    for key, form in (("test", "refit"), ("test_bagged", "bagged")):
        for rule in RULES[1:]:
            diff = [
                (1.0 if r["greater"] else -1.0) * (r[key][rule] - r["test"]["served"])
                for r in rows
                if rule in r.get(key, {})
            ]
            if diff:
                b, e = sum(d > 1e-12 for d in diff), sum(abs(d) <= 1e-12 for d in diff)
                out.append(f"| {rule}, {form} | {b} / {e} / {len(diff) - b - e} |")
    return [*out, ""]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["music_dialogue"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget-s", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="append each seed's row here (JSON lines)")
    parser.add_argument("--merge", nargs="+", type=Path, help="report saved rows instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    words = sys.argv[1:] if argv is None else list(argv)
    command = "python -m benchmarks.bench_selection " + " ".join(words)
    rows: list[dict] = []
    if args.merge:
        for path in args.merge:
            rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    else:
        for task in args.tasks:
            for seed in args.seeds:
                row = one_seed(task, seed, args.budget_s)
                rows.append(row)
                if args.json:
                    with args.json.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
    text = markdown(rows, command)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
