"""Atomic file writes: write a hidden temporary file in the target folder, then os.replace.

A reader therefore sees either the old file or the complete new one, never a partial file;
a process killed mid-write leaves only a ``.tmp-*`` file that readers ignore and that
:func:`remove_stale_temps` deletes later.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_write", "remove_stale_temps"]

TEMP_PREFIX = ".tmp-"
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
