"""What the user reads in the terminal: one line per trial, the final leaderboard and the
champion gate's decision."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runner.search.objective import TrialRecord

if TYPE_CHECKING:
    from runner.tracking.tracker import Gate

__all__ = ["leaderboard", "print_gate", "print_leaderboard", "print_trial"]

_STYLE = {"complete": "green", "pruned": "yellow", "failed": "red"}


def print_trial(console: Console, record: TrialRecord, metric: str) -> None:
    """``trial 3  random_forest  f1_macro=0.912±0.020  complete  4.1s``."""
    score = ""
    if record.cv and record.cv.folds:
        mean, std = record.cv.mean()[metric], record.cv.std()[metric]
        score = f"{metric}={mean:.4f}±{std:.3f}"
    style = _STYLE[record.state]
    reason = f"  ({record.reason})" if record.reason and record.state == "failed" else ""
    console.print(
        f"trial {record.number:>3}  {record.setup.family:<24} {score:<28} "
        f"[{style}]{record.state:<8}[/] {record.seconds:6.1f}s{reason}",
        highlight=False,
        soft_wrap=True,
    )


def leaderboard(trials: pd.DataFrame, metric: str, *, greater_is_better: bool) -> pd.DataFrame:
    """Completed trials best first, then pruned and failed ones."""
    if trials.empty:
        return trials
    done = trials[trials["state"] == "complete"].sort_values(
        metric, ascending=not greater_is_better
    )
    rest = trials[trials["state"] != "complete"].sort_values("trial")
    board = pd.concat([done, rest], ignore_index=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def print_leaderboard(console: Console, board: pd.DataFrame, metric: str, top: int = 10) -> None:
    table = Table(title=f"leaderboard ({metric}, cross-validated)")
    for col in ("rank", "trial", "model", metric, "state", "seconds"):
        table.add_column(col, justify="right" if col not in ("model", "state") else "left")
    for row in board.head(top).itertuples(index=False):
        value = getattr(row, metric)
        shown = (
            ""
            if value is None or (isinstance(value, float) and math.isnan(value))
            else f"{value:.4f}"
        )
        secs = "" if row.seconds is None or math.isnan(row.seconds) else f"{row.seconds:.1f}"
        table.add_row(str(row.rank), str(row.trial), row.model, shown, row.state, secs)
    console.print(table)


def print_gate(console: Console, spec: Any, gate: Gate, score: float) -> None:
    """The registry line: where the alias points and the figures it was decided on, e.g.
    ``... version 2: champion now points to it: test f1_macro=0.9500 against version 1's
    0.8200 on the same 28 test clips``."""
    name, alias, metric = spec.model_name, spec.register.alias, spec.search.metric
    head = f"registered [bold]{escape(name)}[/] version {gate.version}"
    held = f"version {gate.holder}"
    if gate.holder is None:
        said = f"{alias} now points to it, test {metric}={score:.4f}"
    elif gate.champion_score is not None:
        versus = f"test {metric}={score:.4f} against {held}'s {gate.champion_score:.4f} on "
        versus += f"the same {gate.rows} test clips"
        if gate.moved and spec.register.promote == "always" and not _beats(spec, score, gate):
            said = f"{alias} now points to it (register.promote: always): {versus}"
        elif gate.moved:
            said = f"{alias} now points to it: {versus}"
        else:
            said = f"as a challenger: {versus}; {alias} stays on {held}"
    else:
        why = f"{held} ({alias}) cannot be scored on this test split: {escape(gate.reason or '')}"
        if gate.moved:
            said = f"{alias} now points to it (register.promote: always); {why}"
        else:
            said = f"as a challenger: {why}; {alias} stays (register.promote: always moves it)"
    sep = " " if said.startswith("as a") else ": "
    console.print(f"{head}{sep}{said}", soft_wrap=True)


def _beats(spec: Any, score: float, gate: Gate) -> bool:
    better = score > gate.champion_score if spec.greater_is_better else score < gate.champion_score
    return bool(better)
