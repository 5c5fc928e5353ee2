"""One study's lock across threads, processes and machines, and the database URL it (and
Optuna's storage) connects with. The stores' own set-up (Optuna's and MLflow's schemas) and
the trial claims of ``runner.search.trials`` take it."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import threading
from pathlib import Path

import sqlalchemy

__all__ = ["StudyLock", "database_url"]

log = logging.getLogger(__name__)


def database_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed (SQLAlchemy 2.1 defaults to
    psycopg 3; the project's ``postgres`` extra installs psycopg2)."""
    found = importlib.util.find_spec
    if url.startswith("postgresql://") and not found("psycopg") and found("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


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
        self.across_processes = False
        if storage and storage.startswith("postgresql"):
            self._engine = sqlalchemy.create_engine(
                database_url(storage), poolclass=sqlalchemy.pool.NullPool
            )
            self.across_processes = True
        elif storage and storage.startswith("sqlite:"):
            db = sqlalchemy.engine.make_url(storage).database
            if db and db != ":memory:":
                self._file = Path(f"{db}.lock")
                self.across_processes = True
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
