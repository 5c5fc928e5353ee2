"""The isolated worker pool starts workers only when there is work, and a job of many items
that reports each with a heartbeat gets the timeout per item."""

from __future__ import annotations

import time
from multiprocessing import get_context
from typing import Any

from features._pool import JobLost, heartbeat, run_isolated


def _double(x: int) -> int:
    return 2 * x


class CountingContext:
    """The real fork context, counting the worker processes it starts."""

    def __init__(self) -> None:
        self._context = get_context("fork")
        self.started = 0

    def Pipe(self) -> Any:
        return self._context.Pipe()

    def Process(self, *args: Any, **kwargs: Any) -> Any:
        self.started += 1
        return self._context.Process(*args, **kwargs)


def test_no_jobs_start_no_worker() -> None:
    # A warm build has no job: starting (and compiling in) workers only to stop them cost
    # about 2 s per build.
    context = CountingContext()
    assert list(run_isolated(_double, iter([]), workers=2, timeout_s=None, context=context)) == []
    assert context.started == 0


def test_jobs_run_in_the_workers() -> None:
    context = CountingContext()
    results = run_isolated(_double, iter([1, 2, 3]), workers=2, timeout_s=None, context=context)
    assert sorted(r for _, r in results) == [2, 4, 6]
    assert context.started == 2


def _items(job: tuple[int, bool]) -> int:
    """``job[0]`` items of 0.25 s each, with a heartbeat after each when ``job[1]``."""
    count, beat = job
    for _ in range(count):
        time.sleep(0.25)
        if beat:
            heartbeat()
    return count


def test_a_heartbeat_per_item_bounds_each_item_not_the_job() -> None:
    context = get_context("fork")
    jobs = iter([(6, True), (6, False)])  # 1.5 s each, against a 1.2-s timeout
    results = dict(run_isolated(_items, jobs, workers=2, timeout_s=1.2, context=context))
    assert results[(6, True)] == 6
    assert isinstance(results[(6, False)], JobLost)
    assert results[(6, False)].reason.startswith("timed out after 1.2 s")
    assert heartbeat() is None  # outside a worker: nothing to tell
