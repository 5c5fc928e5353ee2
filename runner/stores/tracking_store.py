"""Creating and migrating MLflow's schema in an SQLite tracking store, when other processes
may be doing the same: ``audioml`` runs and workers (they take one lock for it), and MLflow
on its own (``mlflow run`` launching a worker entry point, ``mlflow ui``), which takes none.

- A new store is created in a temporary file beside it and linked into place only where no
  file has appeared meanwhile: a disk that fills half-way leaves nothing, and a store MLflow
  has just opened at that path is never replaced under it.
- An existing store that was written in the last seconds may be one MLflow is creating or
  migrating: it is left alone until its tables and Alembic revision stop changing.
- A table ``_alembic_tmp_*`` left by an interrupted migration (SQLite's DDL is not
  transactional under Alembic) is dropped before MLflow migrates again; a migration that
  fails is tried again once the store is quiet, since MLflow alone may have raced it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
import uuid
from pathlib import Path

from runner.errors import format_error
from runner.stores.checks import TRACKING_STORE, StoreError, _aside, _check_sqlite, sqlite_path

__all__ = ["open_tracking_store"]

log = logging.getLogger(__name__)
_ALEMBIC_TMP = "_alembic_tmp_"
#: A store written longer ago than this is not being created or migrated by anyone.
_RECENT_S = 10.0
#: How long the schema must stay the same before no one is taken to be changing it (MLflow's
#: migration steps commit every few tens of milliseconds).
_QUIET_S = 1.0
#: The longest wait for another process's schema work; then MLflow's own checks decide.
_SETTLE_LIMIT_S = 120.0
#: Attempts at MLflow's migration of an existing store.
_ATTEMPTS = 3


def open_tracking_store(uri: str) -> None:
    """Check, repair or create the SQLite MLflow store at ``uri`` (under its schema lock).

    Raises:
        StoreError: the file is damaged, the folder not writable, or the disk is full.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    from runner.stores.lock import StudyLock  # sqlalchemy, imported on first use

    _check_sqlite(path, TRACKING_STORE)  # before the lock file is created
    with StudyLock(uri, "audioml:mlflow-schema"):
        # Under the schema lock no audioml process is creating: a temporary store here was
        # left by a process killed while it created one.
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            stale.unlink(missing_ok=True)
        if not path.exists() and _create(path, replace=False):
            return
        _settle(path)
        if path.stat().st_size == 0:  # SQLite's empty database, and no one is writing it
            _create(path, replace=True)
            return
        _migrate(path)


def _create(path: Path, *, replace: bool) -> bool:
    """Create the store in a temporary file and put it at ``path``; False where a file
    appeared at ``path`` meanwhile (and ``replace`` is not set)."""
    target = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    try:
        try:
            _create_schema(f"sqlite:///{target}")
        except Exception as exc:
            raise StoreError(_schema_failure(path, exc, fresh=True)) from exc
        if replace:
            os.replace(target, path)
            return True
        return _publish(target, path)
    finally:
        target.unlink(missing_ok=True)
        Path(f"{target}-journal").unlink(missing_ok=True)


def _publish(target: Path, path: Path) -> bool:
    """Put ``target`` at ``path`` unless a file is there; False where one is."""
    try:
        os.link(target, path)  # unlike a rename, fails where the path exists
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            return False
        os.rename(target, path)
    return True


def _migrate(path: Path) -> None:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            _drop_migration_leftovers(path)
            _create_schema(f"sqlite:///{path}")
            return
        except StoreError:  # a half-migrated store: its own message says what to do
            raise
        except Exception as exc:
            if attempt == _ATTEMPTS or _disk_full(exc):
                raise StoreError(_schema_failure(path, exc, fresh=False)) from exc
            log.warning("%s: MLflow's schema migration failed (%s); trying again", path, exc)
            _settle(path, recent_only=False)


def _create_schema(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.search_experiments(max_results=1)  # the tracking store's tables
    client.search_registered_models(max_results=1)  # and the registry's


def _settle(path: Path, *, recent_only: bool = True) -> None:
    """Return once the schema of ``path`` has stayed the same for ``_QUIET_S``: at once
    for a store not written in the last ``_RECENT_S``, after one short look for a complete
    one (it has a revision) that does not change."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:  # moved aside meanwhile: MLflow's own open reports it
        return
    if recent_only and age > _RECENT_S:
        return
    state = _schema_state(path)
    if recent_only and state is not None and state[1] is not None:
        time.sleep(0.2)
        if _schema_state(path) == state:
            return
    start = quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < _QUIET_S:
        if time.monotonic() - start > _SETTLE_LIMIT_S:
            log.warning("%s: its schema kept changing for %.0f s", path, _SETTLE_LIMIT_S)
            return
        time.sleep(0.05)
        now = _schema_state(path)
        if now is None or now != state:  # locked by a writer, or changed
            state, quiet_since = now, time.monotonic()


def _schema_state(path: Path) -> tuple[frozenset[str], str | None] | None:
    """The store's tables and Alembic revision; None while a writer holds it locked."""
    try:
        # Read-write (a hot journal is rolled back, not read around), never created here.
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=0.5)
        with contextlib.closing(con):
            tables = frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master"))
            revision = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = row[0] if row else None
    except sqlite3.Error:
        return None
    return tables, revision


def _disk_full(exc: BaseException) -> bool:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:  # MLflow wraps SQLAlchemy wraps sqlite3
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    # SQLite says "disk is full" for ENOSPC and "disk I/O error" for a file-size limit.
    return any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT))
        or "disk is full" in str(e)
        or "disk I/O error" in str(e)
        for e in chain
    )


def _schema_failure(path: Path, exc: Exception, fresh: bool) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if _disk_full(exc):
        verb = "created" if fresh else "migrated"
        state = "nothing was written" if fresh else "the store is left as it was"
        problem = f"could not be {verb}: the disk is full or cannot be written ({text}); {state}"
        return format_error(TRACKING_STORE, path, problem=problem, hint="free space and run again")
    if fresh:
        return format_error(TRACKING_STORE, path, problem=f"could not be created: {text}")
    problem = f"could not be opened: {text}"
    return format_error(TRACKING_STORE, path, problem=problem, hint=_aside(path))


def _drop_migration_leftovers(path: Path) -> None:
    """Drop ``_alembic_tmp_<table>`` copies whose ``<table>`` still exists."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        for name in sorted(t for t in tables if t.startswith(_ALEMBIC_TMP)):
            original = name.removeprefix(_ALEMBIC_TMP)
            if original not in tables:  # copied and the original dropped: half-renamed
                problem = (
                    f"is half-migrated: table '{original}' is missing and '{name}' holds its rows"
                )
                hint = f"restore it from a backup, or {_aside(path)} (its runs are then lost)"
                raise StoreError(format_error(TRACKING_STORE, path, problem=problem, hint=hint))
            # The copy of an interrupted batch migration: the original is still whole.
            con.execute(f'DROP TABLE "{name}"')
            con.commit()
            log.warning("%s: dropped table %s left by an interrupted schema migration", path, name)
