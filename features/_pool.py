"""Worker processes that a hung or killed job cannot take down with it.

Each worker runs one job at a time, so the parent always knows which job a worker holds:
a worker that dies (the kernel's OOM killer, a crash in native code, ``kill -9``) or that
runs past the per-job timeout costs exactly that job. The job comes back as a
:class:`JobLost` with the reason, the worker is replaced, and the other workers never stop.
(A ``ProcessPoolExecutor`` can do neither: one dead worker breaks the whole pool, and a
running call cannot be cancelled.)

A job of many items calls :func:`heartbeat` after each: the timeout then bounds each item
(a job's clock restarts on every heartbeat), not the whole job.

Workers ignore SIGINT (the parent handles Ctrl-C and stops them) and, on Linux, are killed
when the parent dies, so a worker stuck in a read never outlives the build.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import Any, Generic, TypeVar

__all__ = ["JobLost", "heartbeat", "run_isolated"]

J = TypeVar("J")
R = TypeVar("R")

_STOP_WAIT_S = 2.0
# This process's pipe to its parent, when it is a worker (for heartbeat()).
_CONN: connection.Connection | None = None


def heartbeat() -> None:
    """Restart the running job's timeout clock; a no-op outside a worker process."""
    if _CONN is not None:
        _CONN.send(("tick", None))


@dataclass(frozen=True)
class JobLost:
    """A job whose worker died or timed out; ``reason`` says which."""

    reason: str


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc symbol: the pipe's EOF still stops it
        pass


def _serve(
    conn: connection.Connection, parent_end: connection.Connection, func: Callable[[Any], Any]
) -> None:
    """A worker's loop: receive a job, send ``("done", result)`` or ``("error", exc)``."""
    global _CONN
    _CONN = conn
    parent_end.close()  # a forked worker holds a copy: without closing it, no EOF ever comes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    init = getattr(func, "init_process", None)
    if init is not None:
        init()
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        try:
            message = ("done", func(job))
        except Exception as exc:  # the parent re-raises it: a bug, not a bad clip
            message = ("error", exc)
        conn.send(message)


@dataclass
class _Slot(Generic[J]):
    process: Any
    conn: connection.Connection
    job: J | None = None
    started: float = field(default_factory=time.monotonic)
    ready: bool = False  # started up: only then does a job's time count


def _start(context: BaseContext, func: Callable[[Any], Any]) -> _Slot:
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, parent, func), daemon=True)
    process.start()
    child.close()
    return _Slot(process, parent)


def _stop(slot: _Slot, *, kill: bool) -> None:
    if kill:
        slot.process.kill()
    else:
        with contextlib.suppress(OSError):  # the worker is gone already
            slot.conn.send(None)
    slot.process.join(_STOP_WAIT_S)
    if slot.process.is_alive():
        slot.process.kill()
        slot.process.join()
    slot.conn.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process died ({name}) while reading or extracting this clip"
    return f"worker process died (exit code {exitcode}) while reading or extracting this clip"


def run_isolated(
    func: Callable[[J], R],
    jobs: Iterator[J],
    *,
    workers: int,
    timeout_s: float | None,
    context: BaseContext,
) -> Iterator[tuple[J, R | JobLost]]:
    """Run ``func(job)`` for every job in ``workers`` processes, yielding as jobs finish.

    Args:
        func: a picklable callable; if it has an ``init_process`` method, each worker calls
            it once at start.
        jobs: the jobs, consumed lazily (at most ``workers`` are in flight).
        workers: worker processes (at least 1).
        timeout_s: a job running longer than this (from when its started-up worker took
            it; start-up, e.g. numba compiling, does not count) is lost
            and its worker killed; None waits forever.
        context: the multiprocessing start context.

    Yields:
        ``(job, result)``, or ``(job, JobLost)`` when its worker died or timed out.

    Raises:
        Exception: whatever ``func`` raised in a worker (after stopping every worker).
    """
    first = next(jobs, None)
    if first is None:  # a warm build: starting (and compiling in) workers would cost seconds
        return
    jobs = itertools.chain([first], jobs)
    slots = [_start(context, func) for _ in range(max(1, workers))]
    exhausted = False
    try:
        while True:
            for slot in slots:
                if slot.job is None and not exhausted:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    slot.job, slot.started = job, time.monotonic()
                    slot.conn.send(job)
            busy = [s for s in slots if s.job is not None]
            if not busy:
                return
            wait_s = None
            timed = [s.started for s in busy if s.ready]
            if timeout_s is not None and timed:
                wait_s = max(0.0, min(timed) + timeout_s - time.monotonic())
            waitables = [s.conn for s in busy] + [s.process.sentinel for s in busy]
            ready = set(connection.wait(waitables, wait_s))
            for i, slot in enumerate(slots):
                if slot.job is None:
                    continue
                outcome = _poll(slot, ready, timeout_s)
                if outcome is None:
                    continue
                job, slot.job = slot.job, None
                if isinstance(outcome, JobLost):
                    _stop(slot, kill=True)
                    slots[i] = _start(context, func)
                yield job, outcome
    finally:
        for slot in slots:
            _stop(slot, kill=slot.job is not None)


def _poll(slot: _Slot, ready: set, timeout_s: float | None) -> Any:
    """The slot's result, a JobLost, or None while its job is still running."""
    if slot.conn in ready or slot.process.sentinel in ready:
        while slot.conn.poll():
            try:
                kind, payload = slot.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "ready":  # the worker's start-up does not count against the job
                slot.ready, slot.started = True, time.monotonic()
                continue
            if kind == "tick":  # one item of the job is done: the next gets the full time
                slot.started = time.monotonic()
                continue
            if kind == "error":
                raise payload
            return payload
        if not slot.process.is_alive():
            slot.process.join()
            return JobLost(_death_reason(slot.process.exitcode))
    if slot.ready and timeout_s is not None and time.monotonic() - slot.started >= timeout_s:
        return JobLost(f"timed out after {timeout_s:g} s (reading, decoding or extracting hung)")
    return None
