"""Which model families suit each shipped task: each family's warm-start setting, scored by
the spec's CV on the search benchmark's feature tables (benchmarks/bench_search.py's
corpora, read from its cache), so the specs' family lists come from measurements.

One trial per family (its known-good setting, runner/search/warm_start.py), the spec's folds and
metric, seed 0; Keras families are left out (their CPU cost would dominate the run; the
specs keep keras_mlp for GPU users).

    python -m benchmarks.bench_families --cache ~/.cache/audioml-bench
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna

from benchmarks._corpora import ensure
from benchmarks.bench_search import ROOT, TASKS, prepared
from runner.errors import TrialFailed
from runner.models import MODELS, ensure_loaded
from runner.search.objective import make_objective
from runner.search.warm_start import warm_start_params

OUT = Path(__file__).with_name("RESULTS_families.md")


def _families(task: str) -> list[str]:
    ensure_loaded()
    return [
        n
        for n, f in MODELS.items()
        if f.supports(task) and f.warm_start and f.input.tabular and f.thread_safe
    ]


def measure(name: str, cache: Path) -> tuple[str, list[tuple[str, float, float]]]:
    task = TASKS[name]
    corpus, _ = ensure(cache / "corpora" / task.corpus, task.builder, **task.sizes)
    from runner.config.loading import load_spec

    families = _families(load_spec(ROOT / task.spec).task)  # the task, without loading data
    p = prepared(task, corpus, cache, 0, [f"search.models=[{','.join(families)}]"])
    direction = "maximize" if p.spec.greater_is_better else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(0))
    for params in warm_start_params(p.spec, p.data):
        study.enqueue_trial(params)
    objective = make_objective(p.spec, p.data)
    out = []
    for _ in families:
        start = time.perf_counter()
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        t = [t for t in study.trials if t.state.is_finished()][-1]  # not a waiting one
        value = t.value if t.value is not None else float("nan")
        out.append((t.params["model"], value, time.perf_counter() - start))
    return p.spec.search.metric, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "audioml-bench")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines = [
        "# Model families per task: the warm-start setting of each, by CV",
        "",
        f"Command: `python -m benchmarks.bench_families --tasks {' '.join(args.tasks)}`",
        "",
    ]
    for name in args.tasks:
        metric, rows = measure(name, args.cache)
        greater = metric != "mae"
        rows.sort(key=lambda r: -r[1] if greater else r[1])
        lines += [
            f"## {name} (cv {metric})",
            "",
            "| family | cv | seconds |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| {f} | {v:.4f} | {s:.1f} |" for f, v, s in rows]
        lines.append("")
        print("\n".join(lines[-len(rows) - 4 :]), flush=True)
    OUT.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
