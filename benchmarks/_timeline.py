"""Where a search's wall time goes: a timeline of its fold fits, trial draws and tells.

Installed around one search in the benchmark process (never in the runner): each fold fit is
recorded with its trial, the moments its slot was taken and freed, and the seconds the fit
and prediction took inside the worker. :func:`breakdown` then separates

* the fits' own compute, and the slot time around it (sending the estimator, pickling the
  predictions back, the parent's scoring under the interpreter's lock);
* the shortest possible wall time for these folds: the longest single fold, and the same
  folds replayed on the plan's slots and window with no overhead (:func:`replay`), so a
  miss is split into what the trials' lengths impose and what the engine adds;
* the time the main thread spends drawing and telling trials, which no other thread can do.
"""

from __future__ import annotations

import heapq
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Timeline", "replay"]


@dataclass
class Timeline:
    start: float = field(default_factory=time.perf_counter)
    folds: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    serial: dict[str, float] = field(default_factory=lambda: {"draw": 0.0, "tell": 0.0})
    # Fold worker processes' moments (runner.search.fold_procs.FoldProcesses.moments).
    moments: list[tuple[float, float, float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fold(self, trial: int, k: int, began: float, ended: float, compute: float) -> None:
        with self._lock:
            self.folds.append((trial, k, began - self.start, ended - self.start, compute))

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap the fold fitters, the draw and the tell for one search."""
        import runner.search.budget as budget
        import runner.search.evaluation as evaluation
        import runner.search.objective as search
        from runner.search.fold_procs import FoldProcesses

        local = threading.local()
        timeline = self
        saved = (search.cross_validate, search.Objective.draw, budget._tell)

        def draw(obj, trial):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                fit = saved[1](obj, trial)
            finally:
                timeline.serial["draw"] += time.perf_counter() - began

            def tagged() -> float:
                local.trial = trial.number
                return fit()

            return tagged

        def tell(*args, **kwargs):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                return saved[2](*args, **kwargs)
            finally:
                timeline.serial["tell"] += time.perf_counter() - began

        def cross_validate(make, inputs, labels, *args, fitter=None, **kwargs):  # type: ignore[no-untyped-def]
            number = getattr(local, "trial", -1)
            procs = getattr(fitter, "__self__", None)
            if isinstance(procs, FoldProcesses) and procs.moments is None:
                procs.moments = timeline.moments  # one list, appended to under the GIL

            def timed(make, inputs, k, split, **kw):  # type: ignore[no-untyped-def]
                began = time.perf_counter()
                if fitter is not None:
                    out = fitter(make, inputs, k, split, **kw)
                else:  # threads: the same fit cross_validate runs in its own fold threads
                    from threadpoolctl import threadpool_limits

                    with threadpool_limits(limits=kw["threads"]):
                        out = evaluation._fit_fold(
                            make, inputs, labels, k, split, task=kw["task"],
                            classes=kw["classes"],
                        )  # fmt: skip
                timeline.fold(number, k, began, time.perf_counter(), out[3] + out[4])
                return out

            if fitter is None and inputs.kind.images:
                return saved[0](make, inputs, labels, *args, **kwargs)
            return saved[0](make, inputs, labels, *args, fitter=timed, **kwargs)

        search.cross_validate, search.Objective.draw, budget._tell = cross_validate, draw, tell
        try:
            yield
        finally:
            search.cross_validate, search.Objective.draw, budget._tell = saved

    def breakdown(self, wall: float, slots: int, window: int) -> list[str]:
        """Markdown lines: where ``wall`` seconds on ``slots`` fold slots went."""
        if not self.folds:
            return ["(no folds recorded)"]
        compute = sum(f[4] for f in self.folds)
        held = sum(f[3] - f[2] for f in self.folds)
        by_trial: dict[int, list[float]] = {}
        for trial, _, _, _, seconds in sorted(self.folds):
            by_trial.setdefault(trial, []).append(seconds)
        lengths = [by_trial[t] for t in sorted(by_trial)]
        longest = max(f[4] for f in self.folds)
        ideal = replay(lengths, slots, window)
        wide = replay(lengths, slots, len(lengths))
        return [*self._lines(wall, slots, window, compute, held, longest, lengths, ideal, wide),
                *self._moments()]  # fmt: skip

    def _lines(self, wall, slots, window, compute, held, longest, lengths, ideal, wide):  # type: ignore[no-untyped-def]
        return [
            f"- {len(self.folds)} fold fits: {compute:.1f} s of fitting and predicting in the "
            f"workers, {held:.1f} s of slot time ({(held - compute) / len(self.folds) * 1000:.0f}"
            f" ms per fold around each fit); slots held {held / (wall * slots):.2f} of "
            f"{slots} x {wall:.1f} s",
            f"- the longest fold alone: {longest:.1f} s (no schedule ends sooner); the "
            f"longest trial's folds: {max(sum(v) for v in lengths):.1f} s",
            f"- these folds replayed on {slots} slots with no overhead: {ideal:.1f} s with a "
            f"window of {window} trials, {wide:.1f} s with every trial asked at once",
            f"- the main thread: {self.serial['draw']:.1f} s drawing trials, "
            f"{self.serial['tell']:.1f} s telling them",
        ]

    def _moments(self) -> list[str]:
        """The time around each fit in a worker process, split where it was spent."""
        if not self.moments:
            return []
        parts = {
            "to the worker": [b - s for s, b, _, _ in self.moments],
            "in the worker, fit included": [e - b for _, b, e, _ in self.moments],
            "back to the parent": [r - e for _, _, e, r in self.moments],
        }
        shown = "; ".join(
            f"{name} {statistics.median(v) * 1000:.0f} ms median, {max(v) * 1000:.0f} ms most, "
            f"{sum(v):.1f} s in all"
            for name, v in parts.items()
        )
        return [f"- fold round trips ({len(self.moments)}): {shown}"]


def replay(folds: list[list[float]], slots: int, window: int) -> float:
    """Wall time of ``folds`` (per trial, in trial order) on ``slots`` slots: trial n +
    ``window`` is asked when trial n is told, trials are told in order, folds first in first
    out; no overhead anywhere."""
    n = len(folds)
    queue: list[float] = []
    running: list[tuple[float, int]] = []
    left = [len(f) for f in folds]
    ended: list[float | None] = [None] * n
    now, asked, told = 0.0, 0, 0
    while told < n:
        while asked < n and asked < told + window:
            queue.extend((asked, d) for d in folds[asked])  # type: ignore[misc]
            if not folds[asked]:
                ended[asked] = now
            asked += 1
        while len(running) < slots and queue:
            trial, seconds = queue.pop(0)  # type: ignore[misc]
            heapq.heappush(running, (now + seconds, trial))
        if running:
            now, trial = heapq.heappop(running)
            left[trial] -= 1
            if left[trial] == 0:
                ended[trial] = now
        while told < n and ended[told] is not None:
            told += 1
    return now
