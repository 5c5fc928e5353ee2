"""Atomic file writes: write a hidden temporary file in the target folder, then os.replace.

A reader therefore sees either the old file or the complete new one, never a partial file;
a process killed mid-write leaves only a ``.tmp-*`` file that readers ignore and that
:func:`remove_stale_temps` deletes later.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "CHECK_SUFFIX",
    "TEMP_PREFIX",
    "atomic_write",
    "checked_ok",
    "remove_stale_temps",
    "write_checked",
]

TEMP_PREFIX = ".tmp-"
CHECK_SUFFIX = ".b2"  # the sidecar holding the BLAKE2b of a checked file's bytes
_STALE_S = 24 * 3600.0


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then move it into place.

    Args:
        path: the final file.
        write: writes the complete file to the path it is given.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        write(tmp)
        with open(tmp, "rb") as handle:  # durable before it becomes visible
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "blake2b").hexdigest()


def write_checked(path: Path, write: Callable[[Path], None]) -> Path:
    """:func:`atomic_write` plus a sidecar ``<path>.b2`` with the BLAKE2b of the bytes.

    The sidecar is written before the file moves into place: a writer killed in between
    leaves a sidecar that does not match (the file is then made again), never a file without
    its check.
    """
    sidecar = path.with_name(path.name + CHECK_SUFFIX)

    def write_and_note(tmp: Path) -> None:
        write(tmp)
        digest = _digest(tmp)
        atomic_write(sidecar, lambda t: t.write_text(digest))

    return atomic_write(path, write_and_note)


def checked_ok(path: Path) -> bool:
    """Whether ``path``'s bytes match its sidecar (True for a file written before files
    carried one, as the cache then did; False when the file is missing)."""
    sidecar = path.with_name(path.name + CHECK_SUFFIX)
    try:
        expected = sidecar.read_text().strip()
    except FileNotFoundError:
        return path.exists()
    try:
        return _digest(path) == expected
    except OSError:
        return False


def remove_stale_temps(folder: Path, older_than_s: float = _STALE_S) -> int:
    """Delete temporary files left by killed writers (older than a day by default)."""
    removed = 0
    if not folder.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for tmp in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed
