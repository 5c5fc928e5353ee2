"""The budget loop every process of a study runs: claim a trial, run it, tell the study.

One trial at a time, or a window of trials side by side (:func:`run_budget`'s ``n_jobs``):
asked and drawn one after another, fitted at once, told in trial-number order, so one seed
and one window give one sequence of trials (see :func:`_windowed`). Claims, the reaping of
dead trials and retries live in :mod:`runner.search.trials`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from runner.errors import TrialFailed, TrialSkipped
from runner.search.liveness import Heartbeat
from runner.search.optuna_private import frozen
from runner.search.study import UNCOUNTED_ATTR
from runner.search.trials import REASON_ATTR, Hooks, abandon, claim
from runner.stores.lock import StudyLock

__all__ = ["MAX_SKIPS", "run_budget"]

log = logging.getLogger(__name__)
# A sampler that keeps drawing dropped families would spin: stop after this many skips in a row.
MAX_SKIPS = 25


def _outcome(study: optuna.Study, trial: optuna.Trial, run: Callable[[], float]) -> str:
    """Run the trial's work and tell the study; returns the outcome."""
    try:
        value = run()
    except optuna.TrialPruned:
        return _tell(study, trial, "pruned", state=TrialState.PRUNED)
    except TrialSkipped as exc:
        trial.set_user_attr(REASON_ATTR, str(exc))
        trial.set_user_attr(UNCOUNTED_ATTR, True)
        return _tell(study, trial, "skipped", state=TrialState.FAIL)
    except TrialFailed:
        return _tell(study, trial, "failed", state=TrialState.FAIL)
    except BaseException as exc:
        # Ctrl-C twice, SystemExit, or an error outside the trial's own work (e.g. tracking):
        # the trial did not end by itself, so it is retried.
        abandon(study, frozen(study, trial), f"interrupted: {type(exc).__name__}: {exc}"[:500])
        raise
    return _tell(study, trial, "complete", values=value)


def _run_one(study: optuna.Study, trial: optuna.Trial, objective: Callable) -> str:
    """Run the objective and tell the study; returns the outcome."""
    return _outcome(study, trial, lambda: objective(trial))


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: str, **kwargs: object) -> str:
    try:
        study.tell(trial, **kwargs)
    except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError) as exc:
        # Another host declared this trial dead (a heartbeat delayed past the grace period)
        # and queued it again; this result is dropped, the retry stands.
        log.warning("trial %d: result not stored: %s", trial.number, exc)
        return "lost"
    return outcome


def _drawn(objective: Callable, trial: optuna.Trial) -> Callable[[], float]:
    """The trial's remaining work once its parameters are drawn.

    An objective with a ``draw`` method (``runner.search.objective.make_objective``) draws here, in
    the caller's thread; its error is raised when the work runs, so it is told in order."""
    draw = getattr(objective, "draw", None)
    if draw is None:
        return lambda: objective(trial)
    try:
        return draw(trial)
    except BaseException as exc:  # told in order below, like a fit's error
        error = exc

        def fail() -> float:
            raise error

        return fail


@dataclass
class _Budget:
    """The loop's shared state: the stop flag and the run of skipped trials."""

    study: optuna.Study
    lock: StudyLock
    n_trials: int
    deadline: float | None
    hooks: Hooks
    stop: threading.Event
    skips: int = 0

    def open(self) -> bool:
        return not self.stop.is_set() and (
            self.deadline is None or time.monotonic() < self.deadline
        )

    def counted(self, outcome: str) -> bool:
        """Count a skipped trial; False once too many in a row were skipped."""
        self.skips = self.skips + 1 if outcome == "skipped" else 0
        if self.skips >= MAX_SKIPS:
            log.warning("%d trials in a row drew dropped model families; stopping", self.skips)
            return False
        return True


def _sequential(b: _Budget, objective: Callable) -> None:
    while b.open():
        claimed = claim(b.study, b.lock, b.n_trials, b.hooks)
        if claimed is None:
            return
        trial, beat = claimed
        try:
            outcome = _run_one(b.study, trial, objective)
        finally:
            beat.stop()
        if not b.counted(outcome):
            return


def _windowed(b: _Budget, objective: Callable, window: int) -> None:
    """``window`` trials at a time, asked and drawn one after another in this thread, fitted
    side by side, told in trial-number order. Trial n + window is asked right after trial n
    is told, so the sampler sees the same finished and running trials at every ask whatever
    the order the fits end in: one seed and one window give one sequence of trials."""
    pending: deque[tuple[optuna.Trial, Heartbeat, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="audioml-trial")
    stopped = False  # too many skipped draws in a row
    try:
        while True:
            while not stopped and len(pending) < window and b.open():
                claimed = claim(b.study, b.lock, b.n_trials, b.hooks)
                if claimed is None:
                    # Not for good: a pending trial that ends skipped no longer counts, so
                    # the claim is tried again after the next tell.
                    break
                trial, beat = claimed
                pending.append((trial, beat, pool.submit(_drawn(objective, trial))))
            if not pending:
                return
            trial, beat, future = pending.popleft()
            try:
                outcome = _outcome(b.study, trial, future.result)
            finally:
                beat.stop()
            stopped = stopped or not b.counted(outcome)
    except BaseException:
        for trial, beat, future in pending:  # a second Ctrl-C: the window's trials are retried
            future.cancel()
            beat.stop()
            abandon(b.study, frozen(b.study, trial), "interrupted")
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    deadline: float | None,
    n_jobs: int = 1,
    on_interrupt: Callable[[], None] | None = None,
    lock: StudyLock | None = None,
    keep_going: Callable[[optuna.Study], bool] | None = None,
    hooks: Hooks | None = None,
) -> bool:
    """Claim and run trials until ``n_trials`` count or ``deadline`` (``time.monotonic()``)
    passes; the objective gets the same deadline, so trials and claims stop on one clock.

    ``n_jobs`` trials run at a time, asked in order and told in order (see
    :func:`_windowed`); ``keep_going`` (checked under the lock before each claim) lets the
    caller stop claiming, e.g. once the study is being finalized. The first Ctrl-C lets
    running trials finish and stops cleanly (the study stays resumable); a second one
    interrupts at once. Returns False when interrupted.
    """
    hooks = hooks or Hooks()
    hooks.keep_going = keep_going or hooks.keep_going
    stop = threading.Event()
    budget = _Budget(
        study, lock or StudyLock(None, study.study_name), n_trials, deadline, hooks, stop
    )
    with _GracefulSigint(stop, on_interrupt or hooks.on_interrupt):
        if n_jobs <= 1:
            _sequential(budget, objective)
        else:
            _windowed(budget, objective, n_jobs)
    return not stop.is_set()


class _GracefulSigint:
    """First SIGINT sets ``stop``; the second raises KeyboardInterrupt as usual."""

    def __init__(self, stop: threading.Event, notify: Callable[[], None] | None) -> None:
        self.stop, self.notify, self.previous = stop, notify, None

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        if self.notify is not None:
            self.notify()

    def __enter__(self) -> _GracefulSigint:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
