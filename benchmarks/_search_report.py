"""The search benchmark's results: per task, per contender, per seed; verdicts, Markdown, JSON.

A run is saved as JSON (``--json``) beside its Markdown, so runs of different contenders on
the same tasks and seeds can be put in one table afterwards (``--merge``): e.g. the peers,
which need only the runner's split, and the runner itself, run at another hour.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks._contenders import Result

__all__ = ["Report", "TaskRun", "load", "markdown", "merge", "paired", "save", "verdicts"]

#: How the verdicts name a peer.
PEERS = {"flaml": "FLAML", "autogluon": "AutoGluon", "forest": "the notebook's 300-tree forest"}


@dataclass
class TaskRun:
    """Everything measured on one task."""

    name: str
    metric: str = ""
    greater: bool = True
    note: str = ""
    corpus_s: float | None = None  # None: the corpus was already in the cache
    features_s: float = 0.0
    features_cold: bool = False
    rows: int = 0
    results: dict[str, list[Result]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)  # 1-min load average after each run


@dataclass
class Report:
    """One or more benchmark commands over the same seeds and budget."""

    commands: list[str]
    seeds: list[int]
    budget_s: float
    cores: int
    runs: list[TaskRun]
    note: str = ""


def _summary(results: list[Result]) -> tuple[float, float, float, float]:
    scores, walls = [r.score for r in results], [r.wall_s for r in results]
    return statistics.median(scores), min(scores), max(scores), statistics.median(walls)


def _common(run: TaskRun, mine: str, who: str) -> tuple[tuple, tuple, str] | None:
    """Both contenders' summaries over the seeds both finished (a cut run has fewer)."""
    a, b = run.results.get(mine, []), run.results.get(who, [])
    if not (both := {r.seed for r in a} & {r.seed for r in b}):
        return None
    a, b = [r for r in a if r.seed in both], [r for r in b if r.seed in both]
    over = "" if len(both) == max(len(run.results[mine]), len(run.results[who])) else (
        f", over the {len(both)} seeds both finished"
    )  # fmt: skip
    return _summary(a), _summary(b), over


def _pairs() -> list[tuple[str, str, str]]:
    """(the runner's row, the peer's row, when) for every target."""
    pairs = [
        ("audioml", "flaml", "at 1x budget (the runner's search budget)"),
        ("audioml", "flaml_wall", "given audioml's wall time"),
        ("audioml_1x", "flaml", "at 1x budget, whole run against whole run"),
    ]
    for peer in ("autogluon", "forest"):
        pairs.append(("audioml", peer, "(the runner's search at the budget)"))
        pairs.append(("audioml_1x", peer, "(the runner's whole run aimed at the budget)"))
    return [*pairs, ("audioml", "grid", ""), ("audioml_third", "grid", "")]


def verdicts(run: TaskRun) -> list[str]:
    """One line per target: the runner's median against each peer's (and the grid's time),
    over the seeds both finished."""
    if "audioml" not in run.results:
        return []
    as_good = (lambda a, b: a >= b) if run.greater else (lambda a, b: a <= b)
    lines = []
    for mine, who, when in _pairs():
        if (common := _common(run, mine, who)) is None:
            continue
        (ours, *_, wall), (theirs, *_, their_wall), over = common
        if who == "grid":
            ratio = wall / their_wall
            met = "met" if as_good(ours, theirs) and ratio <= 1 / 3 else "NOT met"
            lines.append(
                f"{mine} at least as good as the grid in <= 1/3 of its time ({ours:.4f} vs "
                f"{theirs:.4f}; wall-time ratio {ratio:.2f}{over}): {met}"
            )
            continue
        met = "met" if as_good(ours, theirs) else "NOT met"
        name = PEERS[who.removesuffix("_wall")]
        lines.append(
            f"{mine} at least as good as {name} {when} ({ours:.4f} vs {theirs:.4f}; wall "
            f"{wall:.0f} s vs {their_wall:.0f} s{over}): {met}"
        )
    return lines


def paired(run: TaskRun) -> list[str]:
    """Per target, seed by seed: how many seeds the runner's row wins, ties and loses, and
    the mean of the per-seed differences in its favour with a paired 95% t-interval. A
    median over five 200-clip test splits moves by one clip; this says whether a gap
    between two medians is more than the seeds' noise."""
    from scipy import stats

    lines = []
    for mine, who in dict.fromkeys((m, w) for m, w, _ in _pairs()):
        a = {r.seed: r.score for r in run.results.get(mine, [])}
        b = {r.seed: r.score for r in run.results.get(who, [])}
        diffs = [(a[s] - b[s]) * (1 if run.greater else -1) for s in sorted(a.keys() & b)]
        if len(diffs) < 2:
            continue
        won = sum(d > 1e-9 for d in diffs)
        lost = sum(d < -1e-9 for d in diffs)
        mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
        half = stats.t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5
        lo, hi = mean - half, mean + half
        reading = (
            f"{mine} ahead beyond the seeds' noise" if lo > 0
            else f"{mine} behind beyond the seeds' noise" if hi < 0
            else "the seeds cannot tell them apart"
        )  # fmt: skip
        lines.append(
            f"{mine} against {who}: {won} won, {len(diffs) - won - lost} tied, {lost} lost; "
            f"mean difference in {mine}'s favour {mean:+.4f} (95% interval {lo:+.4f} to "
            f"{hi:+.4f}, {len(diffs)} seeds): {reading}"
        )
    return lines


def _task_lines(run: TaskRun, seeds: Sequence[int]) -> list[str]:
    cold = "extracted" if run.features_cold else "read from the cache"
    built = f"corpus written in {run.corpus_s:.1f} s; " if run.corpus_s else ""
    out = [
        f"### {run.name} ({run.metric}, {'higher' if run.greater else 'lower'} is better)",
        "", f"{run.note}; {run.rows} rows; {built}feature table {cold} in "
        f"{run.features_s:.1f} s.", "",
    ]  # fmt: skip
    short = {who: len(rs) for who, rs in run.results.items() if len(rs) < len(seeds)}
    if short:
        done = ", ".join(f"{who} {n}" for who, n in short.items())
        out += [f"**Partial**: seeds finished, where fewer than {len(seeds)}: {done}.", ""]
    if run.loads:
        load = f"{statistics.median(run.loads):.1f} ({min(run.loads):.1f}-{max(run.loads):.1f})"
        out += [f"1-min load average after each run: median {load}.", ""]
    out += [
        "| contender | held-out median | min-max | wall s (median) | last seed |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for who, rs in run.results.items():
        med, lo, hi, wall = _summary(rs)
        out.append(f"| {who} | {med:.4f} | {lo:.4f}-{hi:.4f} | {wall:.1f} | {rs[-1].detail} |")
    out += ["", *(f"- {line}" for line in verdicts(run)), ""]
    if pairs := paired(run):
        out += ["Seed by seed (a paired t-interval over the seeds):", ""]
        out += [*(f"- {line}" for line in pairs), ""]
    out += ["Per seed (score, wall s):", ""]
    for seed in seeds:
        cells = [
            f"{who} {r.score:.4f} in {r.wall_s:.0f}"
            for who, rs in run.results.items()
            for r in rs
            if r.seed == seed
        ]
        if cells:
            out.append(f"- seed {seed}: " + "; ".join(cells))
    return [*out, ""]


def markdown(report: Report) -> str:
    """The results page: per task, held-out median [min-max] and median wall time."""
    out = [*(f"Command: `{c}`" for c in report.commands), ""]
    if report.note:
        out += [report.note, ""]
    out += [
        f"Seeds {', '.join(map(str, report.seeds))}; budget {report.budget_s:g} s per contender "
        f"(flaml_wall: the runner's wall time on the seed); {report.cores} cores.", "",
    ]  # fmt: skip
    for run in report.runs:
        out += _task_lines(run, report.seeds)
    return "\n".join(out)


def save(report: Report, path: Path) -> None:
    """Write ``report`` as JSON (every seed's score, wall time and detail)."""
    path.write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")


def load(path: Path) -> Report:
    """A report written by :func:`save`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    runs = []
    for run in data.pop("runs"):
        results = {
            # results saved before they carried their seed: the i-th is the i-th seed's
            who: [
                Result(**{"seed": seed, **r}) for r, seed in zip(rs, data["seeds"], strict=False)
            ]
            for who, rs in run.pop("results").items()
        }
        runs.append(TaskRun(**run, results=results))
    return Report(**data, runs=runs)


def merge(reports: Sequence[Report], order: Sequence[str]) -> Report:
    """One report of several at the same budget: each task's contenders and seeds from all
    of them (contenders in ``order``, seeds sorted); a contender measured twice on one task
    and seed is an error."""
    first = reports[0]
    for other in reports[1:]:
        if other.budget_s != first.budget_s:
            raise ValueError(f"cannot merge runs at {other.budget_s:g} s and {first.budget_s:g} s")
    runs: dict[str, TaskRun] = {}
    for report in reports:
        for run in report.runs:
            empty = TaskRun(**{**asdict(run), "results": {}, "loads": []})
            into = runs.setdefault(run.name, empty)
            for who, rs in run.results.items():
                have = into.results.setdefault(who, [])
                if twice := {r.seed for r in have} & {r.seed for r in rs}:
                    raise ValueError(f"{run.name}: {who} seeds {sorted(twice)} measured twice")
                have += rs
            into.loads += run.loads
    for run in runs.values():
        run.results = {
            who: sorted(run.results[who], key=lambda r: r.seed) for who in order
            if who in run.results
        }  # fmt: skip
    seeds = sorted({seed for r in reports for seed in r.seeds})
    notes = [r.note for r in reports if r.note]
    return Report(
        [c for r in reports for c in r.commands], seeds, first.budget_s, first.cores,
        list(runs.values()), " ".join(notes),
    )  # fmt: skip
