"""One check for every store a run opens: optuna.db, mlflow.db and the feature cache folder.

Each is checked before anything is written to it, and a damaged one is named with what to do
(move it aside, or the command that fixes it) instead of surfacing as SQLAlchemy's or
MLflow's traceback later. SQLite files are checked from their 100-byte header (magic string;
a file shorter than the page count its header states was truncated) and one read of their
schema. Creating and migrating MLflow's schema is ``runner.stores.tracking_store``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from runner.errors import DataError, RunnerError, format_error

__all__ = [
    "StoreError",
    "check_cache_dir",
    "check_study_store",
    "resolve_tracking_uri",
    "sqlite_path",
]

_MAGIC = b"SQLite format 3\x00"


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
