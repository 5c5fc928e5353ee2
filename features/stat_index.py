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
entries, which only costs a rehash. The file's metadata carries a sha256 of its entries,
checked on load: a flipped bit in a stored hash would otherwise give a clip another clip's
rows. A damaged index is reported and dropped (every clip is hashed again); one written
before it carried the checksum is dropped quietly.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features._atomic import atomic_write

__all__ = ["RACY_NS", "StatIndex"]

RACY_NS = 2_000_000_000
_FIELDS = ["size", "mtime_ns", "ctime_ns", "ino"]
_META_DIGEST = b"audioml.entries_sha256"
_Entry = tuple[tuple[int, int, int, int], str, int]


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _entries_digest(entries: Iterable[tuple[str, _Entry]]) -> bytes:
    """sha256 of the entries in file order, independent of how Parquet encodes them."""
    h = hashlib.sha256()
    for path, (st, sha, checked) in entries:
        h.update(f"{path}\x1f{st}\x1f{sha}\x1f{checked}\x1e".encode())
    return h.hexdigest().encode()


class StatIndex:
    """The on-disk index at ``<root>/stat-index.parquet``.

    Args:
        root: the cache folder for this cache format version.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "stat-index.parquet"
        self._entries: dict[str, _Entry] = {}
        self._dirty = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            table = pq.read_table(self.path)
            meta = table.schema.metadata or {}
            frame = table.to_pandas()
            stats = zip(*(frame[f].to_numpy(dtype="int64") for f in _FIELDS), strict=True)
            entries = [
                (str(path), (tuple(int(v) for v in st), str(sha), int(checked)))
                for path, st, sha, checked in zip(
                    frame["path"], stats, frame["sha"], frame["checked_ns"], strict=True
                )
            ]
        except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            self._drop(f"unreadable ({exc})")
            return
        if _META_DIGEST not in meta:
            return  # written before the index carried a checksum: hash every clip once
        if meta[_META_DIGEST] != _entries_digest(entries):
            self._drop("its entries do not match their checksum")
            return
        self._entries = dict(entries)

    def _drop(self, why: str) -> None:
        # A damaged index is only a lost shortcut; say so, since it is also a damaged disk.
        warnings.warn(
            f"Damaged feature cache file {self.path}: {why}; every clip is hashed again",
            stacklevel=3,
        )
        self._dirty = True  # rewrite it whole on save

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
        table = pa.Table.from_pandas(frame, preserve_index=False)
        digest = _entries_digest((p, self._entries[p]) for p in paths)
        table = table.replace_schema_metadata({**table.schema.metadata, _META_DIGEST: digest})
        atomic_write(self.path, lambda tmp: pq.write_table(table, tmp))
        self._dirty = False
