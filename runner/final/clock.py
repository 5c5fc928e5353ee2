"""The final step's clock: what each part took, and the cap on its optional parts.

With ``search.timeout_s`` set, the final step gets what is left of it, or the wall time the
search took (:func:`search_seconds`, from the study's told trials) when that is more: a
search that spent its budget is followed by a final step no longer than itself, one that
ended early by ``n_trials`` keeps its artifacts within the budget. Its required parts (choosing and
fitting the model, scoring it on the test split, the leaderboard, the registry) always run;
the optional ones (the final plots, the feature importance, the study's plots) run only
while what they are estimated to take fits in what is left, after a reserve for the
registry. Permutation importance shrinks first (fewer repeats, then fewer rows) before it is
cut. What was cut is the parent run's ``final_cut`` tag; each part's seconds are metrics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from runner.search.study import FINISHED

__all__ = [
    "FULL_REPEATS",
    "PLOT_S",
    "FinalClock",
    "ImportancePlan",
    "log_final_importance",
    "permutes",
    "search_seconds",
]

#: Seconds kept for logging and registering the model after the optional parts, until the
#: registry's own time is known (a logged model with its environment, on SQLite).
REGISTRY_RESERVE_S = 3.0
#: Repeats of permutation importance without a cap (as before caps existed), and the fewest
#: rows it is worth permuting.
FULL_REPEATS, MIN_ROWS = 3, 50
#: Seconds one final figure is expected to take to render and log (matplotlib, PNG).
PLOT_S = 0.5


def search_seconds(study: optuna.Study) -> float:
    """Wall seconds from the first told trial's start to the last one's end (0: none)."""
    told = [t for t in study.get_trials(deepcopy=False, states=FINISHED) if t.datetime_complete]
    starts = [t.datetime_start for t in told if t.datetime_start]
    if not starts:
        return 0.0
    return (max(t.datetime_complete for t in told) - min(starts)).total_seconds()


def permutes(estimator: Any, tabular: bool) -> bool:
    """Whether the final importance permutes inputs (no native importances or weights to
    read), as ``runner.models.feature_importance`` decides; only then is it costly."""
    from runner.models.importance import unwrap

    if not tabular:
        return True
    model = unwrap(estimator)
    try:
        native = getattr(model, "feature_importances_", None)
        return native is None and getattr(model, "coef_", None) is None
    except AttributeError:  # SVC's coef_ for a non-linear kernel
        return True


@dataclass(frozen=True)
class ImportancePlan:
    """How the final permutation importance runs: repeats and rows (None: all)."""

    n_repeats: int
    rows: int | None


@dataclass
class FinalClock:
    """Times the final step's parts; ``budget_s`` None means nothing is cut."""

    budget_s: float | None
    search_s: float = 0.0
    reserve_s: float = REGISTRY_RESERVE_S
    started: float = field(default_factory=time.perf_counter)
    parts: dict[str, float] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)

    @classmethod
    def for_study(cls, study: optuna.Study, timeout_s: float | None) -> FinalClock:
        """The clock of a final step after ``study``: capped only with a time budget, to
        what is left of it or, when more, the time the search took."""
        spent = search_seconds(study)
        if timeout_s is None:
            return cls(budget_s=None, search_s=spent)
        return cls(budget_s=max(spent, timeout_s - spent), search_s=spent)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - start

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds the optional parts may still take (inf without a budget)."""
        if self.budget_s is None:
            return float("inf")
        return self.budget_s - self.elapsed() - self.reserve_s

    def allows(self, name: str, estimate_s: float) -> bool:
        """Whether optional part ``name`` fits; a part that does not is recorded as cut."""
        if estimate_s <= self.left():
            return True
        self.cut.append(name)
        return False

    def importance(self, n_columns: int, n_rows: int, predict_s: float) -> ImportancePlan | None:
        """Repeats and rows of permutation importance that fit in what is left, estimated
        from one predict over the ``n_rows`` test rows taking ``predict_s``; None: cut."""
        left = self.left()
        per_pass = max(predict_s, 1e-3) * max(n_columns, 1)  # one shuffle of every column
        for repeats in range(FULL_REPEATS, 0, -1):
            if repeats * per_pass <= left:
                if repeats < FULL_REPEATS:
                    self.cut.append(f"importance_repeats={repeats}")
                return ImportancePlan(repeats, None)
        rows = int(n_rows * left / per_pass)
        if rows >= MIN_ROWS:
            self.cut.append(f"importance_repeats=1,rows={rows}")
            return ImportancePlan(1, rows)
        self.cut.append("importance")
        return None

    def metrics(self) -> dict[str, float]:
        """``final_seconds`` beside ``search_seconds``, and ``final_<part>_s`` per part."""
        out = {"final_seconds": round(self.elapsed(), 3)}
        out["search_seconds"] = round(self.search_s, 3)
        out.update({f"final_{k}_s": round(v, 3) for k, v in self.parts.items()})
        return out

    def tags(self) -> dict[str, str]:
        return {"final_cut": ", ".join(self.cut) or "none"}


def log_final_importance(
    p: Any, clock: FinalClock, tracker: Any, estimator: Any, test_in: Any, columns: list
) -> None:
    """The final model's importance on the test rows: permutation repeats and rows cut to
    what the clock leaves; native importances (trees, weights) cost only their figure."""
    from runner.data.dataset import targets

    labels = targets(p.dataset.frame["label"].iloc[p.split.test], p.spec.task)
    X, plan = test_in.all(), ImportancePlan(FULL_REPEATS, None)
    if permutes(estimator, test_in.kind.tabular):
        found = clock.importance(len(columns), len(labels), clock.parts.get("score", 0.0))
        if found is None or not clock.allows("importance_plot", PLOT_S):
            return
        plan = found
    elif not clock.allows("importance", PLOT_S):
        return
    if plan.rows is not None:  # a seeded sample of the test rows
        rows = np.sort(np.random.default_rng(p.spec.seed).permutation(len(labels))[: plan.rows])
        X, labels = test_in.take(rows), np.asarray(labels)[rows]
    tracker.log_importance(estimator, X, labels, columns, kind=test_in.kind, seed=p.spec.seed,
                           n_repeats=plan.n_repeats)  # fmt: skip
