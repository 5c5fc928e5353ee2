"""The runner against FLAML and a notebook grid search, at one wall-time budget.

Four tasks, each a shipped spec run on a synthetic corpus shaped like its public data set
(benchmarks/_corpora.py): music vs dialogue (radio archive, last 10 s), speaker age
(regression, MAE in years, log target, grouped by speaker), speaker gender (grouped) and
genre from GTZAN's features CSV (rebuilt from synthetic genre audio by ``audioml
features``). The runner builds each feature table once, into its cache under ``--cache``;
every contender and seed reads it from there. Per seed, all the contenders get the same
table, the runner's held-out split for that seed (``seed=N``) and its CV folds, and are
scored once on the test clips with ``runner.metrics.score_all``:

* ``audioml``: ``runner.session.session.run_experiment`` (what ``audioml run`` calls) with
  ``search.timeout_s`` = the budget, a large ``search.n_trials``, SQLite MLflow and Optuna
  stores in a fresh folder; its score is the registered model's test score; its time runs
  from loading the spec to the registered model (finalize included).
* ``flaml``: FLAML ``AutoML(time_budget=budget)`` on the training rows (grouped CV when the
  spec groups), tested on the test rows.
* ``flaml_wall``: the same with ``time_budget`` = the runner's whole wall time on that seed
  (search, refit, test, logging and registry), so FLAML gets at least the time the runner
  took end to end: the equal-wall-time comparison.
* ``grid``: GridSearchCV per family of the spec (benchmarks._contenders.GRIDS, ``n_jobs=-1``,
  the runner's folds), run to completion; its CV-best family is refit and tested.
* ``audioml_1x``: the runner again, its search budget cut so that its whole run is aimed at
  the budget itself (the budget minus what the ``audioml`` run spent beyond it: preparing,
  the fold under way at the deadline, the final step): FLAML's time, end to end.
* ``audioml_third``: the same, aimed at a third of the grid's wall time on the seed; its
  measured wall time is what the verdict compares.

Targets: audioml's held-out median at least FLAML's, AutoGluon's and the forest's on every task
at 1x budget (``audioml`` with the search budget, and ``audioml_1x`` with the whole run; and
at equal wall time, ``flaml_wall``); audioml at least the grid's median in at most a third of
the grid's wall time. ``--json`` saves a run; ``--merge`` puts saved runs of other contenders
on the same tasks and seeds into one table.

    python -m benchmarks.bench_search --tasks genre_features --seeds 0 --budget-s 20
    python -m benchmarks.bench_search --budget-s 120 --out benchmarks/RESULTS_search.md
    python -m benchmarks.bench_search --set search.pruner=wilcoxon   # compare a runner option
    python -m benchmarks.bench_search --merge peers.json runner.json --out RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from benchmarks._contenders import Result, run_flaml, run_forest, run_grid, split_of
from benchmarks._corpora import ensure
from benchmarks._search_report import Report, TaskRun, load, markdown, merge, save
from benchmarks._search_tasks import CACHE, TASKS, Task

if TYPE_CHECKING:
    from runner.session.pipeline import Prepared

ROOT = Path(__file__).resolve().parent.parent
# In this order: flaml_wall takes audioml's wall time, audioml_third the grid's.
CONTENDERS = (
    "audioml", "flaml", "flaml_wall", "audioml_1x", "grid", "audioml_third", "autogluon",
    "forest",
)  # fmt: skip
#: The shortest search budget an aimed run gets.
MIN_AIMED_S = 5.0


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def _overrides(task: Task, corpus: Path, cache: Path, seed: int, extra: Sequence[str]) -> list:
    return [
        f"data.root={corpus}", f"features.cache_dir={cache / 'features'}", f"seed={seed}",
        *task.overrides, *extra,
    ]  # fmt: skip


def prepared(
    task: Task, corpus: Path, cache: Path, seed: int, extra: Sequence[str] = ()
) -> Prepared:
    """The runner's ``Prepared`` for ``task`` at ``seed`` (features from the cache)."""
    from runner.config.loading import load_spec
    from runner.session.pipeline import RunOptions, prepare

    spec = load_spec(ROOT / task.spec, _overrides(task, corpus, cache, seed, extra))
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        opts = RunOptions(tracking_uri=f"sqlite:///{tmp}/m.db", progress=False, console=_quiet())
        return prepare(spec, opts)


def run_audioml(
    task: Task, corpus: Path, cache: Path, seed: int, budget_s: float, extra: Sequence[str],
    *, workdir: Path | None = None, name: str = "audioml",
) -> Result:  # fmt: skip
    """``audioml run`` in-process, through ``run_experiment``, with SQLite stores in
    ``workdir`` (default: a fresh temporary folder, removed afterwards)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench-audioml-") as tmp:
            return run_audioml(
                task, corpus, cache, seed, budget_s, extra, workdir=Path(tmp), name=name
            )
    import optuna

    from runner.config.loading import load_spec, resolve_spec
    from runner.session.pipeline import RunOptions
    from runner.session.session import run_experiment

    path = ROOT / task.spec
    sets = _overrides(task, corpus, cache, seed, extra)
    sets += [f"search.timeout_s={budget_s}", "search.n_trials=100000"]
    start = time.perf_counter()
    with contextlib.chdir(workdir):  # MLflow's artifacts land beside its store
        opts = RunOptions(
            tracking_uri=f"sqlite:///{workdir}/mlflow.db",
            storage=f"sqlite:///{workdir}/optuna.db", spec_path=path,
            spec_text=path.read_text(encoding="utf-8"), resolved=resolve_spec(path, sets),
            progress=False, console=_quiet(),
        )  # fmt: skip
        spec = load_spec(path, sets)
        summary = run_experiment(spec, opts)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=summary["study"], storage=opts.storage)
    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    # Warm-start trials never started (still WAITING) have no times.
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    searched = (max(ends) - min(starts)).total_seconds()
    t = summary["timing"]
    detail = f"best {summary['best_model']}; trials: {counts}; budget {budget_s:.0f} s; "
    detail += f"prepare {t['time_prepare_s']:.0f} s, search {t['time_search_s']:.0f} s "
    detail += f"(trials {searched:.0f} s), final {t['time_final_s']:.0f} s"
    return Result(name, summary["test"][spec.search.metric], wall, detail)


def _run_one(
    who: str, out: TaskRun, p: Prepared, corpus: Path, *, seed: int, budget_s: float,
    cache: Path, extra: Sequence[str],
) -> Result:  # fmt: skip
    """One contender on one seed; the aimed ones read the runs before them on the seed."""
    task, split = TASKS[out.name], split_of(p)
    if who == "audioml":
        return run_audioml(task, corpus, cache, seed, budget_s, extra)
    if who == "flaml":
        return run_flaml(split, budget_s=budget_s, seed=seed)
    if who == "flaml_wall":
        ours = out.results["audioml"][-1].wall_s
        return run_flaml(split, budget_s=ours, seed=seed, name=who)
    if who == "grid":
        return run_grid(split, list(p.spec.search.models))
    if who == "autogluon":
        from benchmarks._autogluon import run_autogluon

        return run_autogluon(split, budget_s=budget_s)
    if who == "forest":
        return run_forest(split, seed=seed)
    target = budget_s if who == "audioml_1x" else out.results["grid"][-1].wall_s / 3
    beyond = out.results["audioml"][-1].wall_s - budget_s
    aimed = max(MIN_AIMED_S, target - beyond)
    return run_audioml(task, corpus, cache, seed, aimed, extra, name=who)


def run_task(
    name: str, *, seeds: Sequence[int], budget_s: float, cache: Path,
    contenders: Sequence[str] = CONTENDERS, extra: Sequence[str] = (),
    log: Callable[[str], None] = print, progress: Callable[[TaskRun], None] = lambda run: None,
) -> TaskRun:  # fmt: skip
    """Build (or reuse) the corpus and its feature table, then every contender per seed;
    ``progress`` sees the task after each contender's run (a cut run keeps what finished)."""
    task, out = TASKS[name], TaskRun(name, note=TASKS[name].note)
    start = time.perf_counter()
    corpus, built = ensure(cache / "corpora" / task.corpus, task.builder, **task.sizes)
    out.corpus_s = time.perf_counter() - start if built else None
    for i, seed in enumerate(seeds):
        start = time.perf_counter()
        p = prepared(task, corpus, cache, seed, extra)
        if i == 0:  # the first prepare builds the table; the stats say if it extracted
            out.features_s = time.perf_counter() - start
            out.features_cold = bool(p.dataset.stats.get("extracted", 0))
            out.metric, out.greater = p.spec.search.metric, p.spec.greater_is_better
            out.rows = len(p.dataset.frame)
        for who in contenders:
            kwargs = {"seed": seed, "budget_s": budget_s, "cache": cache, "extra": extra}
            r = dataclasses.replace(_run_one(who, out, p, corpus, **kwargs), seed=seed)
            out.results.setdefault(who, []).append(r)
            out.loads.append(os.getloadavg()[0])
            log(f"{name} seed={seed} {who}: {out.metric}={r.score:.4f} {r.wall_s:.1f}s {r.detail}")
            progress(out)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget-s", type=float, default=120.0)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument(
        "--cache", type=Path, default=CACHE,
        help="corpora and the runner's feature cache, kept between runs",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, help="write the results as Markdown here (after every run)"
    )
    parser.add_argument("--json", type=Path, help="save the results as JSON here, for --merge")
    parser.add_argument("--note", default="", help="a line under the command (machine, load)")
    parser.add_argument(
        "--merge", nargs="+", type=Path, metavar="JSON",
        help="run nothing: put saved runs (same seeds and budget) into one --out page",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a spec override for the runner (e.g. search.pruner=wilcoxon)",
    )  # fmt: skip
    return parser


def _write(report: Report, args: argparse.Namespace) -> str:
    text = markdown(report)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        save(report, args.json)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.merge:
        report = merge([load(path) for path in args.merge], CONTENDERS)
        report.note = " ".join(filter(None, [report.note, args.note]))
        print(_write(report, args))
        return
    needs = {
        "flaml_wall": ("audioml",),
        "audioml_1x": ("audioml",),
        "audioml_third": ("audioml", "grid"),
    }
    for who, before in needs.items():
        if who in args.contenders and not set(before) <= set(args.contenders):
            parser.error(f"{who} needs {' and '.join(before)} in --contenders")
    args.contenders = [c for c in CONTENDERS if c in args.contenders]  # audioml runs first
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache = args.cache.resolve()
    command = "python -m benchmarks.bench_search " + shlex.join(argv or sys.argv[1:])
    report = Report([command.strip()], args.seeds, args.budget_s, os.cpu_count() or 0, [],
                    args.note)  # fmt: skip

    def progress(run: TaskRun) -> None:  # the finished tasks and the one under way
        _write(dataclasses.replace(report, runs=[*report.runs, run]), args)

    kwargs = {"contenders": args.contenders, "extra": args.sets, "cache": cache}
    for name in args.tasks:
        report.runs.append(
            run_task(name, seeds=args.seeds, budget_s=args.budget_s, progress=progress, **kwargs)
        )
    print(_write(report, args))


if __name__ == "__main__":
    main()
