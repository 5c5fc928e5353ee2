"""One check for every store a run opens: optuna.db, mlflow.db and the feature cache folder.

Each is checked before anything is written to it, and a damaged one is named with what to do
(move it aside, or the command that fixes it) instead of surfacing as SQLAlchemy's or
MLflow's traceback later. SQLite files are checked from their 100-byte header (magic string;
a file shorter than the page count its header states was truncated) and one read of their
schema. MLflow's schema is created in a temporary file that is moved into place once
complete, so a disk that fills half-way cannot leave a store every later run fails on; a
table ``_alembic_tmp_*`` left by an interrupted migration of an existing store (SQLite's DDL
is not transactional under Alembic) is dropped before MLflow migrates again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import uuid
from pathlib import Path

from runner.errors import DataError, RunnerError, format_error

__all__ = [
    "StoreError",
    "check_cache_dir",
    "check_study_store",
    "open_tracking_store",
    "resolve_tracking_uri",
    "sqlite_path",
]

log = logging.getLogger(__name__)
_MAGIC = b"SQLite format 3\x00"
_ALEMBIC_TMP = "_alembic_tmp_"


class StoreError(RunnerError, OSError):
    """A store (Optuna or MLflow database, feature cache) is damaged or cannot be written."""

    exit_code = 1


def resolve_tracking_uri(cli_value: str | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the cwd."""
    uri = cli_value or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///`` URL; None for other URLs and in-memory databases."""
    if not url.startswith("sqlite:"):
        return None
    import sqlalchemy

    db = sqlalchemy.engine.make_url(url).database
    return Path(db).resolve() if db and db != ":memory:" else None


#: What the messages call each store (no spec key sets them: --tracking-uri, --storage).
TRACKING_STORE = "MLflow tracking store"
STUDY_STORE = "Optuna storage"


def _aside(path: Path) -> str:
    return f"move it aside (mv '{path}' '{path}.damaged') and run again"


def _header_problem(path: Path) -> str | None:
    """Why the SQLite file at ``path`` cannot be a whole database, from its header."""
    size = path.stat().st_size
    if size == 0:
        return None  # SQLite's empty database
    with open(path, "rb") as handle:
        header = handle.read(100)
    if not header.startswith(_MAGIC):
        return "not an SQLite database (overwritten?)"
    if len(header) < 100:
        return f"truncated ({size} bytes, shorter than SQLite's header)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its version-valid-for number equals the change
    # counter (SQLite >= 3.7.0); a WAL file may hold pages not yet copied into the database.
    counted = header[92:96] == header[24:28] and not Path(f"{path}-wal").exists()
    if counted and size < pages * page_size:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def _check_sqlite(path: Path, key: str) -> None:
    """Raise StoreError naming the store ``key`` and its ``path`` when the file cannot be
    created, written or read."""
    folder = path.parent
    if path.exists() and not path.is_file():
        raise StoreError(format_error(key, path, problem="is not a file", hint=_aside(path)))
    elsewhere = "point --tracking-uri/--storage elsewhere"
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = (
                f"cannot be written: its folder '{folder}' cannot be created ({exc.strerror})"
            )
            raise StoreError(format_error(key, path, problem=problem, hint=elsewhere)) from None
    # SQLite writes a journal beside the file, and our locks a .lock file: the folder must be
    # writable, not only the file.
    if not os.access(folder, os.W_OK | os.X_OK):
        problem = f"cannot be written: its folder '{folder}' is not writable"
        hint = "run from a writable folder or point --tracking-uri/--storage at one"
        raise StoreError(format_error(key, path, problem=problem, hint=hint))
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.W_OK):
        problem = "cannot be written: the file is read-only"
        hint = f"make it writable (chmod u+rw '{path}') or {elsewhere}"
        raise StoreError(format_error(key, path, problem=problem, hint=hint))
    # Read first: a read-write connection rolls back the hot journal of a process killed
    # mid-write (a read-only one would fail on it), after which the header is current.
    problem = _read_problem(path) or _header_problem(path)
    if problem is not None:
        damaged = f"is damaged: {problem}"
        raise StoreError(format_error(key, path, problem=damaged, hint=_aside(path)))


def _connect(path: Path) -> sqlite3.Connection:
    # As long a wait for a writer's lock as Optuna's storage allows (runner.search.study).
    return sqlite3.connect(path, timeout=60)


def _read_problem(path: Path) -> str | None:
    """Why SQLite cannot read the schema of ``path``, or None."""
    try:
        with contextlib.closing(_connect(path)) as con:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return None  # in use by another process: not damage
        return f"unreadable ({exc})"
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        return f"unreadable ({exc})"
    return None


def check_cache_dir(cache_dir: Path, *, key: str = "features.cache_dir") -> None:
    """The feature cache folder exists or can be created, and is writable.

    Raises:
        DataError: naming ``key``: a file is in the way, or the folder cannot be written.
    """
    path = Path(cache_dir)
    if path.exists() and not path.is_dir():
        hint = f"move it aside (mv '{path}' '{path}.aside') or set {key} to a folder"
        raise DataError(format_error(key, path, problem="is a file, not a folder", hint=hint))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"cannot be created as a folder ({exc.strerror})"
        raise DataError(format_error(key, path, problem=problem)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        hint = f"set {key} to one that is"
        raise DataError(format_error(key, path, must="a writable folder", hint=hint))


def check_study_store(storage: str, study: str) -> None:
    """Check an SQLite Optuna storage before Optuna opens it.

    An optuna.db that lacks ``study`` while the mlflow.db beside it holds that study's parent
    run was emptied or replaced: opening it would start the search over silently.

    Raises:
        StoreError: the file is damaged, its folder not writable, or the study went missing.
    """
    path = sqlite_path(storage)
    if path is None:
        return
    _check_sqlite(path, STUDY_STORE)
    if _has_study(path, study):
        return
    tracking = path.parent / "mlflow.db"
    run = _parent_run(tracking, study) if tracking.is_file() else None
    if run is not None:
        problem = (
            f"has no study '{study}', but '{tracking}' holds its parent run {run}: "
            f"{path.name} was emptied or replaced"
        )
        hint = (
            "restore it from a backup; or, to search again from scratch, delete that run "
            f"first (MLFLOW_TRACKING_URI=sqlite:///{tracking} mlflow runs delete --run-id {run})"
        )
        raise StoreError(format_error(STUDY_STORE, path, problem=problem, hint=hint))


def _has_study(path: Path, study: str) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    query = "SELECT 1 FROM studies WHERE study_name = ?"
    try:
        with contextlib.closing(_connect(path)) as con:
            return con.execute(query, (study,)).fetchone() is not None
    except sqlite3.OperationalError as exc:
        # No studies table yet: a new storage. Anything else (a lock held past the wait)
        # cannot tell, and a refusal must be certain.
        return "no such table" not in str(exc)


def _parent_run(tracking: Path, study: str) -> str | None:
    """An active parent run (no mlflow.parentRunId) tagged with ``study``, or None."""
    query = (
        "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'study_name' AND t.value = ? AND r.lifecycle_stage = 'active' "
        "AND NOT EXISTS (SELECT 1 FROM tags p WHERE p.run_uuid = r.run_uuid "
        "AND p.key = 'mlflow.parentRunId') LIMIT 1"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{tracking}?mode=ro", uri=True)) as con:
            row = con.execute(query, (study,)).fetchone()
    except sqlite3.DatabaseError:  # no runs table or damaged: its own check reports it
        return None
    return row[0] if row else None


def open_tracking_store(uri: str) -> None:
    """Check, repair or create the SQLite MLflow store at ``uri`` (under its schema lock).

    Two processes starting on a fresh folder would both run MLflow's schema migration and
    the second would fail half-way; here the first creates it and the second finds it done.

    A new store is created in a temporary file beside it and moved into place once MLflow's
    schema is complete; an existing one loses the ``_alembic_tmp_*`` tables an interrupted
    migration left, then is migrated in place.

    Raises:
        StoreError: the file is damaged, the folder not writable, or the disk is full.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    from runner.stores.lock import StudyLock  # sqlalchemy, imported on first use

    _check_sqlite(path, TRACKING_STORE)  # before the lock file is created
    with StudyLock(uri, "audioml:mlflow-schema"):
        _open_tracking_store(path)


def _open_tracking_store(path: Path) -> None:
    # Under the schema lock no one else is creating: a temporary store here was left by a
    # process killed while it created one.
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    fresh = not path.exists() or path.stat().st_size == 0
    target = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}" if fresh else path
    try:
        if not fresh:
            _drop_migration_leftovers(path)
        _create_schema(f"sqlite:///{target}")
        if fresh:
            os.replace(target, path)
    except StoreError:  # a half-migrated store: its own message says what to do
        raise
    except Exception as exc:
        raise StoreError(_schema_failure(path, exc, fresh)) from exc
    finally:
        if fresh:
            Path(target).unlink(missing_ok=True)
            Path(f"{target}-journal").unlink(missing_ok=True)


def _create_schema(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.search_experiments(max_results=1)  # the tracking store's tables
    client.search_registered_models(max_results=1)  # and the registry's


def _schema_failure(path: Path, exc: Exception, fresh: bool) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:  # MLflow wraps SQLAlchemy wraps sqlite3
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    # SQLite says "disk is full" for ENOSPC and "disk I/O error" for a file-size limit.
    full = any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT))
        or "disk is full" in str(e)
        or "disk I/O error" in str(e)
        for e in chain
    )
    if full:
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
