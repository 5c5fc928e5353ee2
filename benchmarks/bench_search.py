"""The runner against FLAML and a notebook grid search, at one wall-time budget.

Four tasks, each a shipped spec run on a synthetic corpus shaped like its public data set
(benchmarks/_corpora.py): music vs dialogue (radio archive, last 10 s), speaker age
(regression, MAE in years, log target, grouped by speaker), speaker gender (grouped) and
genre from GTZAN's features CSV (rebuilt from synthetic genre audio by ``audioml
features``). The runner builds each feature table once, into its cache under ``--cache``;
every contender and seed reads it from there. Per seed, all the contenders get the same
table, the runner's held-out split for that seed (``seed=N``) and its CV folds, and are
scored once on the test clips with ``runner.metrics.score_all``:

* ``audioml``: ``runner.session.run_experiment`` (what ``audioml run`` calls) with
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

Targets: audioml's held-out median at least FLAML's on every task at 1x budget (``audioml``
with the search budget, and ``audioml_1x`` with the whole run, against ``flaml``; and at equal
wall time, ``flaml_wall``); audioml at least the grid's median in at most a third of the
grid's wall time.

    python -m benchmarks.bench_search --tasks genre_features --seeds 0 --budget-s 20
    python -m benchmarks.bench_search --budget-s 120 --out benchmarks/RESULTS_search.md
    python -m benchmarks.bench_search --set search.pruner=wilcoxon   # compare a runner option
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from benchmarks._contenders import Result, run_flaml, run_grid, split_of
from benchmarks._corpora import ensure

if TYPE_CHECKING:
    from runner.pipeline import Prepared

ROOT = Path(__file__).resolve().parent.parent
# In this order: flaml_wall takes audioml's wall time, audioml_third the grid's.
CONTENDERS = ("audioml", "flaml", "flaml_wall", "audioml_1x", "grid", "audioml_third")
#: The shortest search budget an aimed run gets.
MIN_AIMED_S = 5.0
#: Corpora and the runner's feature cache, kept between benchmark runs.
CACHE = Path("~/.cache/audioml-bench").expanduser()


@dataclass(frozen=True)
class Task:
    """A shipped spec, the corpus it runs on, and the overrides that point it there."""

    spec: str
    corpus: str  # folder under <cache>/corpora
    builder: str
    sizes: dict
    overrides: tuple[str, ...] = ()
    note: str = ""


TASKS = {
    "music_dialogue": Task(
        "experiments/music_dialogue.yaml", "radio", "radio_archive", {"clips": 900},
        note="900 clips of 12 s (2 s lead-in + 10 s labelled), 3 classes",
    ),
    "age": Task(
        "experiments/age_regression.yaml", "voices", "voices",
        {"speakers": 250, "clips_per_speaker": 4}, ("search.target_transform=log",),
        note="1,000 clips of 2.5-4.5 s, 250 speakers aged 18-85",
    ),
    "gender": Task(
        "experiments/gender.yaml", "voices", "voices",
        {"speakers": 250, "clips_per_speaker": 4},
        note="the age task's 1,000 clips, gender balanced by downsampling",
    ),
    "genre_features": Task(
        "experiments/genre_features.yaml", "gtzan_audio", "gtzan_audio", {"rows": 1000},
        note="features_30_sec.csv rebuilt by `audioml features` from 1,000 synthetic clips of "
        "10 s in GTZAN's 10 genres (57 columns under GTZAN's names)",
    ),
}  # fmt: skip


@dataclass
class TaskRun:
    """Everything measured on one task."""

    name: str
    metric: str = ""
    greater: bool = True
    corpus_s: float | None = None  # None: the corpus was already in the cache
    features_s: float = 0.0
    features_cold: bool = False
    rows: int = 0
    results: dict[str, list[Result]] = field(default_factory=dict)


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
    from runner.loading import load_spec
    from runner.pipeline import RunOptions, prepare

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

    from runner.loading import load_spec, resolve_spec
    from runner.pipeline import RunOptions
    from runner.session import run_experiment

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


def run_task(
    name: str, *, seeds: Sequence[int], budget_s: float, cache: Path,
    contenders: Sequence[str] = CONTENDERS, extra: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> TaskRun:  # fmt: skip
    """Build (or reuse) the corpus and its feature table, then every contender per seed."""
    task, out = TASKS[name], TaskRun(name)
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
        split = split_of(p)
        for who in contenders:
            if who == "audioml":
                r = run_audioml(task, corpus, cache, seed, budget_s, extra)
            elif who == "flaml":
                r = run_flaml(split, budget_s=budget_s, seed=seed)
            elif who == "flaml_wall":
                ours = out.results["audioml"][-1].wall_s
                r = run_flaml(split, budget_s=ours, seed=seed, name=who)
            elif who == "grid":
                r = run_grid(split, list(p.spec.search.models))
            else:
                target = budget_s if who == "audioml_1x" else out.results["grid"][-1].wall_s / 3
                beyond = out.results["audioml"][-1].wall_s - budget_s
                aimed = max(MIN_AIMED_S, target - beyond)
                r = run_audioml(task, corpus, cache, seed, aimed, extra, name=who)
            out.results.setdefault(who, []).append(r)
            log(f"{name} seed={seed} {who}: {out.metric}={r.score:.4f} {r.wall_s:.1f}s {r.detail}")
    return out


def _summary(results: list[Result]) -> tuple[float, float, float, float]:
    scores, walls = [r.score for r in results], [r.wall_s for r in results]
    return statistics.median(scores), min(scores), max(scores), statistics.median(walls)


def _verdicts(run: TaskRun) -> list[str]:
    med = {who: _summary(rs) for who, rs in run.results.items()}
    if "audioml" not in med:
        return []
    as_good = (lambda a, b: a >= b) if run.greater else (lambda a, b: a <= b)
    lines = []
    pairs = (
        ("audioml", "flaml", "at 1x budget (the runner's search budget)"),
        ("audioml", "flaml_wall", "given audioml's wall time"),
        ("audioml_1x", "flaml", "at 1x budget, whole run against whole run"),
    )
    for mine, who, when in pairs:
        if who in med and mine in med:
            ours, theirs = med[mine][0], med[who][0]
            met = "met" if as_good(ours, theirs) else "NOT met"
            walls = f"; wall {med[mine][3]:.0f} s vs {med[who][3]:.0f} s"
            lines.append(
                f"{mine} at least as good as FLAML {when} ({ours:.4f} vs {theirs:.4f}{walls}): "
                f"{met}"
            )
    if "grid" in med:
        for who in ("audioml", "audioml_third"):
            if who not in med:
                continue
            mine, theirs = med[who][0], med["grid"][0]
            ratio = med[who][3] / med["grid"][3]
            met = "met" if as_good(mine, theirs) and ratio <= 1 / 3 else "NOT met"
            lines.append(
                f"{who} at least as good as the grid in <= 1/3 of its time ({mine:.4f} vs "
                f"{theirs:.4f}; wall-time ratio {ratio:.2f}): {met}"
            )
    return lines


def markdown(runs: list[TaskRun], *, seeds: Sequence[int], budget_s: float, command: str) -> str:
    """The results page: per task, held-out median [min-max] and median wall time."""
    out = [
        f"Command: `{command}`", "",
        f"Seeds {', '.join(map(str, seeds))}; budget {budget_s:g} s per contender "
        f"(flaml_wall: the runner's wall time on the seed); {os.cpu_count()} cores.", "",
    ]  # fmt: skip
    for run in runs:
        task = TASKS[run.name]
        cold = "extracted" if run.features_cold else "read from the cache"
        built = f"corpus written in {run.corpus_s:.1f} s; " if run.corpus_s else ""
        out += [
            f"### {run.name} ({run.metric}, {'higher' if run.greater else 'lower'} is better)",
            "", f"{task.note}; {run.rows} rows; {built}feature table {cold} in "
            f"{run.features_s:.1f} s.", "",
            "| contender | held-out median | min-max | wall s (median) | last seed |",
            "| --- | ---: | ---: | ---: | --- |",
        ]  # fmt: skip
        for who, rs in run.results.items():
            med, lo, hi, wall = _summary(rs)
            out.append(f"| {who} | {med:.4f} | {lo:.4f}-{hi:.4f} | {wall:.1f} | {rs[-1].detail} |")
        out += ["", *(f"- {line}" for line in _verdicts(run)), "", "Per seed (score, wall s):", ""]
        for i, seed in enumerate(seeds):
            cells = [
                f"{who} {rs[i].score:.4f} in {rs[i].wall_s:.0f}" for who, rs in run.results.items()
            ]
            out.append(f"- seed {seed}: " + "; ".join(cells))
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget-s", type=float, default=120.0)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument(
        "--cache", type=Path, default=CACHE,
        help="corpora and the runner's feature cache, kept between runs",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the results as Markdown here")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a spec override for the runner (e.g. search.pruner=wilcoxon)",
    )  # fmt: skip
    args = parser.parse_args(argv)
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
    runs = []
    for name in args.tasks:
        kwargs = {"contenders": args.contenders, "extra": args.sets, "cache": cache}
        runs.append(run_task(name, seeds=args.seeds, budget_s=args.budget_s, **kwargs))
    command = "python -m benchmarks.bench_search " + shlex.join(argv or sys.argv[1:])
    text = markdown(runs, seeds=args.seeds, budget_s=args.budget_s, command=command.strip())
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
