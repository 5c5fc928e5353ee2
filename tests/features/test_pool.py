"""The isolated worker pool starts workers only when there is work."""

from __future__ import annotations

from multiprocessing import get_context
from typing import Any

from features._pool import run_isolated


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
