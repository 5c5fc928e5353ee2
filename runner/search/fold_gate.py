"""Which folds of a cross-validation may still start, given the search's time budget.

A trial that cannot finish is worth nothing (the ensemble and the final model read complete
trials only), so a trial is let run past the deadline only while it will end within one
fold of it, and stopped as soon as it will not: its folds so far tell how long one takes.
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["FoldGate", "OutOfTime"]


class OutOfTime(Exception):
    """A cross-validation stopped by its gate before its last fold."""

    def __init__(self, done: int) -> None:
        super().__init__(f"{done} fold(s) done when the time ran out")
        self.done = done  # the folds scored (and passed to ``on_fold``)


class FoldGate:
    """Admits folds ``0..n-1`` (fitted ``jobs`` at a time) against ``deadline``.

    Fold 0 always starts (the trial itself started within the budget). A later fold starts
    when the trial, at the folds' mean duration so far, ends within one fold of the
    deadline; before any fold has ended, when the deadline has not passed. Once a fold is
    refused, every later one is. Thread-safe: fold threads ask it as they free up.

    Args:
        n: the folds.
        jobs: folds fitted side by side.
        deadline: ``time.monotonic()`` of the end of the budget; None admits every fold.
    """

    def __init__(self, n: int, jobs: int, deadline: float | None) -> None:
        self.jobs, self.deadline = max(1, jobs), deadline
        self._lock = threading.Lock()
        self._unstarted = set(range(n))
        self._durations: list[float] = []
        self._closed = False

    def admit(self, k: int, now: float | None = None) -> bool:
        """Whether fold ``k`` may start now; a fold admitted is counted as started."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._closed:
                return False
            if k > 0 and self.deadline is not None and not self._in_time(now):
                self._closed = True
                return False
            self._unstarted.discard(k)
            return True

    def ended(self, seconds: float) -> None:
        """Note the wall time of a fold that ended."""
        with self._lock:
            self._durations.append(seconds)

    def _in_time(self, now: float) -> bool:
        assert self.deadline is not None
        if not self._durations:
            return now < self.deadline
        fold = sum(self._durations) / len(self._durations)
        # Every fold not yet started (this one included), ``jobs`` at a time.
        rounds = math.ceil(len(self._unstarted) / self.jobs)
        return now + rounds * fold <= self.deadline + fold
