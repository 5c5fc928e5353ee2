"""The final step's candidates and forms on one study's trials: the best trial, the greedy
ensemble and the stacker, each refit and bagged, with the CV estimate, the held-out test score
and the seconds the final fit took.

One search (``final.form: bagged``, so the best trials keep their fold models), then every
candidate x form is built from the same trials by ``runner.final.candidates.choose_final``, fitted
and scored once on the same test split, as ``audioml run`` would with those ``final`` keys.

    python -m benchmarks.bench_final_forms --task gender --budget 68 --seed 0
    python -m benchmarks.bench_final_forms --task age --budget 68 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
from rich.console import Console

from benchmarks._corpora import ensure
from benchmarks._search_tasks import CACHE, TASKS

ROOT = Path(__file__).resolve().parent.parent
FORMS, CANDIDATES = ("refit", "bagged"), ("trial", "ensemble", "stack")


def _search(task: str, budget: float, seed: int, tmp: Path) -> tuple:
    """Run the task's spec with a time budget; its Prepared, study and tracker."""
    from runner.config.loading import load_spec
    from runner.session.pipeline import RunOptions, prepare
    from runner.session.session import run_experiment
    from runner.tracking.tracker import Tracker

    t = TASKS[task]
    corpus, _ = ensure(CACHE / "corpora" / t.corpus, t.builder, **t.sizes)
    sets = [f"data.root={corpus}", f"features.cache_dir={CACHE / 'features'}", f"seed={seed}",
            *t.overrides, f"search.timeout_s={budget}", "search.n_trials=10000",
            "final.form=bagged", "tracking.log_models=none", "tracking.plots=[]"]  # fmt: skip
    spec = load_spec(ROOT / t.spec, sets)
    quiet = Console(file=io.StringIO())
    opts = RunOptions(tracking_uri=f"sqlite:///{tmp}/mlflow.db", progress=False, console=quiet)
    summary = run_experiment(spec, opts)
    p = prepare(spec, opts)  # the same table, split and folds (features from the cache)
    study = optuna.load_study(study_name=summary["study"], storage=p.storage)
    tracker = Tracker(opts.tracking_uri, spec.name, task=spec.task, metric=spec.search.metric)
    tracker.parent_id = summary["parent_run_id"]
    return p, study, tracker


def _variant(p, study, tracker, candidate: str, form: str) -> dict:
    """One candidate in one form: what was served, its CV, test score and fit seconds."""
    from runner.final.candidates import choose_final
    from runner.session.finalize import _fit_final, _score_test

    final_spec = p.spec.final.model_copy(update={"form": form, "candidate": candidate})
    q = dataclasses.replace(p, spec=p.spec.model_copy(update={"final": final_spec}))
    final = choose_final(q, study, tracker, Console(file=io.StringIO()))
    start = time.perf_counter()
    estimator, test_in = _fit_final(q, final)
    fit_s = time.perf_counter() - start
    scores = _score_test(q, estimator, test_in)[0]
    metric = p.spec.search.metric
    return {"candidate": candidate, "served": final.name, "form": final.form,
            "cv": final.cv_value, "test": scores[metric], "fit_s": fit_s}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="gender")
    parser.add_argument("--budget", type=float, default=68.0, help="search.timeout_s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-final-") as tmp:
        p, study, tracker = _search(args.task, args.budget, args.seed, Path(tmp))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        rows = [_variant(p, study, tracker, c, f) for c in CANDIDATES for f in FORMS]
    metric = p.spec.search.metric
    print(f"task {args.task}, seed {args.seed}, budget {args.budget:g} s: "
          f"{len(done)} complete trials of {len(study.trials)}; metric {metric}")  # fmt: skip
    print(f"| candidate | served | form | CV {metric} | test {metric} | final fit s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['candidate']} | {r['served']} | {r['form']} | {r['cv']:.4f} | "
              f"{r['test']:.4f} | {r['fit_s']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
