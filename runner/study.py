"""Open (or resume) the spec's Optuna study and run it within its budget.

The study name joins the spec name and a hash of everything that makes trials comparable
(data, features, families, metric, folds, seed), so rerunning a spec resumes its study and
changing any of those starts a new one. ``n_trials`` counts every trial of the study, across
threads, processes, machines and restarts: a trial is *claimed* (created in the storage as
RUNNING) only while holding the study's lock and only while fewer than ``n_trials`` exist, so
any number of workers on one study stop at exactly the budget. The lock is PostgreSQL's
advisory lock on a PostgreSQL storage and a file lock beside an SQLite file.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from runner.errors import TrialFailed
from runner.spec import ExperimentSpec

__all__ = [
    "StudyLock",
    "count_claimed",
    "count_finished",
    "database_url",
    "default_storage",
    "fail_stale",
    "make_storage",
    "open_study",
    "run_budget",
    "study_name",
]

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CLAIMED = (TrialState.RUNNING, *FINISHED)
WORKER_ATTR = "worker"
# A live process refreshes its running trial's heartbeat every HEARTBEAT_S; a trial whose
# process died (kill -9, lost machine) is marked FAIL after GRACE_S, so nobody waits forever.
HEARTBEAT_S = 10
GRACE_S = 60


def default_storage(tracking_uri: str) -> str:
    """An SQLite file beside the MLflow store (or in the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    else:
        folder = Path.cwd()
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def study_name(spec_name: str, comparable_hash: str, data_digest: str) -> str:
    digest = hashlib.sha256(f"{comparable_hash}:{data_digest}".encode()).hexdigest()[:10]
    return f"{spec_name}-{digest}"


def open_study(
    spec: ExperimentSpec,
    *,
    name: str,
    storage: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study or load it when it exists (resume, or a worker joining)."""
    direction = "maximize" if spec.greater_is_better else "minimize"
    return optuna.create_study(
        storage=make_storage(storage),
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )


def database_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed (SQLAlchemy 2.1 defaults to
    psycopg 3; the project's ``postgres`` extra installs psycopg2)."""
    found = importlib.util.find_spec
    if url.startswith("postgresql://") and not found("psycopg") and found("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def make_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An RDB storage with heartbeats (stale trials fail) for SQLite and server databases."""
    url = database_url(url)
    if url.startswith("sqlite:"):
        # A generous busy timeout lets parallel trials wait on SQLite's write lock.
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        # Workers idle for long between trials; a dropped connection is replaced silently.
        kwargs = {"pool_pre_ping": True}
    else:
        return url
    # Processes starting together on an empty database would race to create Optuna's
    # tables (PostgreSQL: duplicate type "studydirection"): the first creates, others wait.
    with StudyLock(url, "audioml:optuna-schema"), warnings.catch_warnings():
        # Heartbeats are flagged experimental; they are how a dead worker's trial gets failed.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def count_claimed(study: optuna.Study) -> int:
    """Trials that count against the budget: finished ones and running ones."""
    return len(study.get_trials(deepcopy=False, states=CLAIMED))


def fail_stale(study: optuna.Study) -> None:
    """Mark RUNNING trials whose process stopped sending heartbeats as FAIL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class StudyLock:
    """One study's lock across threads and processes (and machines, on PostgreSQL).

    PostgreSQL: a session-level advisory lock keyed by the study name. SQLite: ``flock`` on
    a ``.lock`` file beside the database (SQLite is one machine's file anyway). Any other
    storage gets the in-process lock only, so several processes may overshoot the budget.
    """

    def __init__(self, storage: str | None, name: str) -> None:
        self._thread = threading.Lock()
        self._local = threading.local()
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._engine = None
        self._file: Path | None = None
        if storage and storage.startswith("postgresql"):
            self._engine = sqlalchemy.create_engine(
                database_url(storage), poolclass=sqlalchemy.pool.NullPool
            )
        elif storage and storage.startswith("sqlite:"):
            db = sqlalchemy.engine.make_url(storage).database
            if db and db != ":memory:":
                self._file = Path(f"{db}.lock")
        elif storage:
            log.warning("storage %s: trial claims are locked within this process only", storage)

    def acquire(self) -> None:
        self._thread.acquire()
        try:
            if self._engine is not None:
                conn = self._engine.connect()
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                self._local.handle = conn
            elif self._file is not None:
                handle = open(self._file, "a+b")  # noqa: SIM115 - closed in release()
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                self._local.handle = handle
        except BaseException:
            self._thread.release()
            raise
        self._local.held = True

    def release(self) -> None:
        """Release if this thread holds the lock (a second call is a no-op)."""
        if not getattr(self._local, "held", False):
            return
        self._local.held = False
        handle = getattr(self._local, "handle", None)
        self._local.handle = None
        try:
            if handle is not None:
                # Closing the session (PostgreSQL) or the file (flock) releases the lock.
                handle.close()
        finally:
            self._thread.release()

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _claim_and_run(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    lock: StudyLock,
    n_trials: int,
    keep_going: Callable[[optuna.Study], bool],
) -> bool:
    """Claim one trial under the lock and run it; False when the budget is used up."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    lock.acquire()
    try:
        if count_claimed(study) >= n_trials or not keep_going(study):
            return False

        def claimed(trial: optuna.Trial) -> float:
            # study.ask() has stored this trial as RUNNING: the next claim can go ahead.
            lock.release()
            trial.set_user_attr(WORKER_ATTR, worker)
            return objective(trial)

        study.optimize(claimed, n_trials=1, catch=(TrialFailed,))
        return True
    finally:
        lock.release()


def run_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout_s: float | None,
    n_jobs: int = 1,
    on_interrupt: Callable[[], None] | None = None,
    lock: StudyLock | None = None,
    keep_going: Callable[[optuna.Study], bool] | None = None,
) -> bool:
    """Claim and run trials until the study holds ``n_trials`` or this process's time is up.

    ``n_jobs`` threads claim in parallel; ``keep_going`` (checked under the lock before each
    claim) lets the caller stop claiming, e.g. once the study is being finalized. The first
    Ctrl-C lets running trials finish and stops cleanly (the study stays resumable); a second
    one interrupts at once. Returns False when interrupted.
    """
    lock = lock or StudyLock(None, study.study_name)
    stop = threading.Event()
    deadline = time.monotonic() + timeout_s if timeout_s else None
    go = keep_going or (lambda _study: True)

    def loop() -> None:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if not _claim_and_run(study, objective, lock, n_trials, go):
                return

    with _GracefulSigint(stop, on_interrupt):
        if n_jobs <= 1:
            loop()
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                for future in [pool.submit(loop) for _ in range(n_jobs)]:
                    future.result()
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
