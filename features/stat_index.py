"""Fast path for content hashes: (path, size, mtime, ctime, inode) -> sha256 of the bytes.

Hashing 1,000 clips of 30 s costs about a second; a warm rerun should not. A stored hash is
reused only when the file's stat fields are unchanged **and** the file was last modified at
least :data:`RACY_NS` before the hash was taken (git's "racy clean" rule): a file rewritten
within the timestamp granularity of the file system could otherwise keep its size and mtime.
``ctime`` cannot be set by user programs, so restoring an old mtime with ``os.utime`` after
changing the content is still noticed. Anything else is hashed again.

A miss is hashed by the extraction worker that reads the file anyway (``features._worker``),
and recorded here by the build. The index is shared by all feature configs (content hashes
do not depend on them) and saved atomically; concurrent builds may drop each other's
entries, which only costs a rehash.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from features._atomic import atomic_write

__all__ = ["RACY_NS", "StatIndex"]

RACY_NS = 2_000_000_000
_FIELDS = ["size", "mtime_ns", "ctime_ns", "ino"]


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class StatIndex:
    """The on-disk index at ``<root>/stat-index.parquet``.

    Args:
        root: the cache folder for this cache format version.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "stat-index.parquet"
        self._entries: dict[str, tuple[tuple[int, int, int, int], str, int]] = {}
        self._dirty = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            table = pd.read_parquet(self.path)
        except Exception:  # a damaged index is only a lost shortcut
            return
        stats = zip(*(table[f].to_numpy(dtype="int64") for f in _FIELDS), strict=True)
        for path, st, sha, checked in zip(
            table["path"], stats, table["sha"], table["checked_ns"], strict=True
        ):
            self._entries[path] = (tuple(int(v) for v in st), sha, int(checked))

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The stored hash of ``path`` if its stat is unchanged and not racy, else None."""
        entry = self._entries.get(path)
        if entry is None or entry[0] != _stat_tuple(st):
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= entry[2] - RACY_NS:
            return None
        return entry[1]

    def record(self, path: str, st: os.stat_result, sha: str, checked_ns: int) -> None:
        """Remember ``sha`` for ``path`` as stat'ed by ``st`` just before hashing."""
        self._entries[path] = (_stat_tuple(st), sha, checked_ns)
        self._dirty = True

    def save(self) -> None:
        """Write the index atomically if anything changed."""
        if not self._dirty:
            return
        paths = list(self._entries)
        rows = [self._entries[p] for p in paths]
        frame = pd.DataFrame(
            {
                "path": paths,
                **{f: [r[0][i] for r in rows] for i, f in enumerate(_FIELDS)},
                "sha": [r[1] for r in rows],
                "checked_ns": [r[2] for r in rows],
            }
        )
        atomic_write(self.path, lambda tmp: frame.to_parquet(tmp, index=False))
        self._dirty = False
