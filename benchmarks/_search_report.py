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

__all__ = ["Report", "TaskRun", "load", "markdown", "merge", "save", "verdicts"]

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


def verdicts(run: TaskRun) -> list[str]:
    """One line per target: the runner's median against each peer's (and the grid's time)."""
    med = {who: _summary(rs) for who, rs in run.results.items()}
    if "audioml" not in med:
        return []
    as_good = (lambda a, b: a >= b) if run.greater else (lambda a, b: a <= b)
    pairs = [
        ("audioml", "flaml", "at 1x budget (the runner's search budget)"),
        ("audioml", "flaml_wall", "given audioml's wall time"),
        ("audioml_1x", "flaml", "at 1x budget, whole run against whole run"),
    ]
    for peer in ("autogluon", "forest"):
        pairs.append(("audioml", peer, "(the runner's search at the budget)"))
        pairs.append(("audioml_1x", peer, "(the runner's whole run aimed at the budget)"))
    lines = []
    for mine, who, when in pairs:
        if who in med and mine in med:
            ours, theirs = med[mine][0], med[who][0]
            met = "met" if as_good(ours, theirs) else "NOT met"
            walls = f"; wall {med[mine][3]:.0f} s vs {med[who][3]:.0f} s"
            name = PEERS[who.removesuffix("_wall")]
            lines.append(
                f"{mine} at least as good as {name} {when} ({ours:.4f} vs {theirs:.4f}{walls}): "
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
    out += ["", *(f"- {line}" for line in verdicts(run)), "", "Per seed (score, wall s):", ""]
    for i, seed in enumerate(seeds):
        cells = [
            f"{who} {rs[i].score:.4f} in {rs[i].wall_s:.0f}"
            for who, rs in run.results.items()
            if i < len(rs)
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
        results = {who: [Result(**r) for r in rs] for who, rs in run.pop("results").items()}
        runs.append(TaskRun(**run, results=results))
    return Report(**data, runs=runs)


def merge(reports: Sequence[Report], order: Sequence[str]) -> Report:
    """One report of several over the same seeds and budget: each task's contenders from all
    of them, in ``order``; a contender measured twice on a task is an error."""
    first = reports[0]
    for other in reports[1:]:
        if (other.seeds, other.budget_s) != (first.seeds, first.budget_s):
            raise ValueError(
                f"cannot merge seeds {other.seeds} at {other.budget_s:g} s with seeds "
                f"{first.seeds} at {first.budget_s:g} s"
            )
    runs: dict[str, TaskRun] = {}
    for report in reports:
        for run in report.runs:
            empty = TaskRun(**{**asdict(run), "results": {}, "loads": []})
            into = runs.setdefault(run.name, empty)
            if twice := set(into.results) & set(run.results):
                raise ValueError(f"{run.name}: {sorted(twice)} measured in two reports")
            into.results.update(run.results)
            into.loads += run.loads
    for run in runs.values():
        run.results = {who: run.results[who] for who in order if who in run.results}
    notes = [r.note for r in reports if r.note]
    return Report(
        [c for r in reports for c in r.commands], first.seeds, first.budget_s, first.cores,
        list(runs.values()), " ".join(notes),
    )  # fmt: skip
