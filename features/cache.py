"""The feature cache: per-clip rows in Parquet "packs", per-clip mel images in .npy files.

Layout under ``cache_dir``::

    v1/stat-index.parquet                 path/stat -> content hash (features.stat_index)
    v1/<config>/packs/<time>-<uuid>.<sha>.parquet  rows of many clips (key, segment, ...)
    v1/<config>/mel<frames>/<sha>.npy     one clip's images (n_segments, n_mels, frames)
    v1/<config>/mel<frames>/tables/<digest>.npy  images aligned with one FeatureTable
    (each .npy beside a .npy.b2: the BLAKE2b of its bytes, checked on every load)

``<config>`` hashes everything that changes feature values: the feature spec (minus
``n_jobs``, ``cache_dir``, ``clip_timeout_s`` and the mel-image switches, which do not
change rows), the segment spec (minus ``aggregate``), the versions of librosa,
soundfile/libsndfile, numpy and audioml, and this cache's format version. Inside it a clip's
key is the sha256 of its file bytes, so a renamed file is a hit and a file changed under the
same name is a miss.

Each build appends one pack per batch of new results (so a killed build keeps what it had
flushed); packs are merged when there are more than :data:`MAX_PACKS`. Skipped clips are
stored as one row with a ``reason`` so a warm run does not retry them; a ``note`` says when
only the start of a long file was read. Every write is atomic
(``features._atomic``). A pack's name carries the sha256 of its bytes (its first 32 hex
digits), checked on every read: Parquet itself reads a flipped bit in a data page without
complaint, as a different number. A pack whose bytes do not match, or that fails to read,
is reported, renamed ``*.damaged`` and its clips are extracted again; one that does not
carry this config's key and columns in its metadata is ignored. Packs written before names
carried a checksum are read once and rewritten with one. A damaged file can cost a
re-extraction, never a wrong table.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
import uuid
import warnings
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile

from features._atomic import TEMP_PREFIX, atomic_write, remove_stale_temps, write_checked
from features._registry import BUILTIN, stamps
from features.config import RUNTIME_KEYS, STAMPED_KEYS, FeaturesSpec, SegmentsSpec
from features.extract import feature_layout

__all__ = [
    "CACHE_FORMAT",
    "DAMAGED_SUFFIX",
    "MAX_PACKS",
    "FeatureStore",
    "cached_layout",
    "config_key",
    "pack_digest",
    "package_version",
]

CACHE_FORMAT = "v1"
MAX_PACKS = 8
DAMAGED_SUFFIX = ".damaged"
_DIGEST_CHARS = 32  # of the pack bytes' sha256, in the pack's name
_META_KEY = b"audioml.config_key"
_META_COLUMNS = b"audioml.columns"


def package_version() -> str:
    """The installed audioml version, from the package metadata (a checkout that was never
    installed has none: its cache keys say so rather than borrow a version)."""
    try:
        return importlib.metadata.version("audioml")
    except importlib.metadata.PackageNotFoundError:
        return "0+uninstalled"


# Settings that change how or where rows are made, never their values; the mel-image
# switches decide the images beside the rows, not the rows. Stamped settings enter as their
# extractor's stamp.
_NOT_IN_KEY = RUNTIME_KEYS | STAMPED_KEYS | {"mel_image", "mel_image_frames"}


def config_key(features: FeaturesSpec, segments: SegmentsSpec) -> str:
    """A short hash of everything that changes the cached feature rows."""
    payload = {
        "format": CACHE_FORMAT,
        "features": features.model_dump(
            mode="json",
            exclude=_NOT_IN_KEY,
        ),
        "segments": segments.model_dump(mode="json", exclude={"aggregate"}),
        "librosa": librosa.__version__,
        "soundfile": [soundfile.__version__, soundfile.__libsndfile_version__],
        "numpy": np.__version__,
        "audioml": package_version(),
    }
    # Extractors from optional packages (praat, egemaps): their versions change values too.
    for name in features.extractors:
        builtin = BUILTIN.get(name)
        if builtin is not None and builtin.requirement is not None:
            distribution = builtin.requirement.distribution
            payload[distribution] = importlib.metadata.version(distribution)
    # What each extractor's stamp says (a model file's content hash, not its path: a new file
    # never serves stale rows), under its name; a name taken by the entries above is
    # prefixed rather than overwriting a version.
    for name, stamp in stamps(features).items():
        payload[name if name not in payload else f"stamp:{name}"] = stamp
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_layout(
    cache_dir: Path, key: str, features: FeaturesSpec
) -> tuple[list[str], dict[str, list[str]]]:
    """The feature layout of a config, from ``<config>/layout.json`` when present.

    Computing it runs every extractor once on a probe signal, which in a fresh process
    costs seconds of numba compilation (librosa's beat tracker); a warm build must not.
    """
    path = Path(cache_dir) / CACHE_FORMAT / key / "layout.json"
    try:
        data = json.loads(path.read_text())
        columns, groups = list(data["columns"]), dict(data["groups"])
        # A flipped bit in a column name would still give a consistent layout: check it.
        if data["sha256"] == _layout_digest(columns, groups) and columns == [
            c for cols in groups.values() for c in cols
        ]:
            return columns, groups
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, damaged or written before it carried a checksum: compute it again
    columns, groups = feature_layout(features)
    digest = _layout_digest(columns, groups)
    text = json.dumps({"columns": columns, "groups": groups, "sha256": digest})
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return columns, groups


def _layout_digest(columns: list[str], groups: dict[str, list[str]]) -> str:
    text = json.dumps({"columns": columns, "groups": groups}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def pack_digest(data: bytes | memoryview | pa.Buffer) -> str:
    """The checksum a pack's name carries: the start of the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def _named_digest(path: Path) -> str | None:
    """The checksum in ``<time>-<uuid>.<sha>.parquet``; None for older, unchecked names."""
    stem = path.name.removesuffix(".parquet")
    _, dot, digest = stem.rpartition(".")
    return digest if dot else None


def _columns_digest(columns: list[str]) -> bytes:
    return hashlib.sha256("\x1f".join(columns).encode()).hexdigest().encode()


class FeatureStore:
    """Cached rows and mel images of one feature config.

    Args:
        cache_dir: the cache root.
        key: :func:`config_key` of the config.
        columns: the feature columns of the config (``feature_layout``).
        mel_frames: image width when mel images are cached, else None.
    """

    def __init__(
        self, cache_dir: Path, key: str, columns: list[str], mel_frames: int | None
    ) -> None:
        self.root = Path(cache_dir) / CACHE_FORMAT
        self.key = key
        self.columns = list(columns)
        self.dir = self.root / key
        self.pack_dir = self.dir / "packs"
        self.mel_dir = self.dir / f"mel{mel_frames}" if mel_frames else None
        self._meta = {_META_KEY: key.encode(), _META_COLUMNS: _columns_digest(self.columns)}
        self.pack_paths: list[Path] = []

    # -- rows -------------------------------------------------------------------------------
    def load(self) -> pd.DataFrame:
        """All valid cached rows, deduplicated: columns key, segment, reason, note, features."""
        remove_stale_temps(self.pack_dir)
        if self.mel_dir is not None:
            remove_stale_temps(self.mel_dir)
        frames, self.pack_paths = [], []
        for path in sorted(self.pack_dir.glob("*.parquet")):
            frame = self._read_pack(path)
            if frame is None:
                continue
            frames.append(frame)
            self.pack_paths.append(path)
            if _named_digest(path) is None:  # written before packs carried a checksum
                self._migrate(path, frame)
        if not frames:
            return self.empty_rows()
        return dedupe_rows(pd.concat(frames, ignore_index=True))

    def _migrate(self, path: Path, frame: pd.DataFrame) -> None:
        """Rewrite a pack written before names carried a checksum under a checked name."""
        try:
            self.write_pack(frame)
        except OSError:  # a read-only cache: read it as before, unchecked
            return
        self.pack_paths.remove(path)
        path.unlink(missing_ok=True)

    def _read_pack(self, path: Path) -> pd.DataFrame | None:
        if path.name.startswith(TEMP_PREFIX):
            return None
        try:
            data = path.read_bytes()  # one read: checked, then parsed from memory
        except FileNotFoundError:  # merged away by a concurrent build
            return None
        expected = _named_digest(path)
        if expected is not None and pack_digest(data) != expected:
            self._set_aside(path, "its bytes do not match the checksum in its name")
            return None
        try:
            table = pq.read_table(pa.py_buffer(data))
        except (OSError, pa.ArrowException) as exc:  # truncated or not Parquet
            self._set_aside(path, f"unreadable ({exc})")
            return None
        meta = table.schema.metadata or {}
        if meta.get(_META_KEY) != self._meta[_META_KEY] or (
            meta.get(_META_COLUMNS) != self._meta[_META_COLUMNS]
        ):
            warnings.warn(f"Ignoring feature cache file {path}: not this config", stacklevel=3)
            return None
        frame = table.to_pandas()
        if "note" not in frame.columns:  # packs written before notes existed
            frame.insert(3, "note", None)
        return frame

    @staticmethod
    def _set_aside(path: Path, why: str) -> None:
        """Rename a damaged pack out of the glob, so it warns once and is never read."""
        aside = path.with_name(path.name + DAMAGED_SUFFIX)
        try:
            os.replace(path, aside)
        except OSError:  # read-only cache or already gone: still never used as data
            aside = path
        warnings.warn(
            f"Damaged feature cache file {path}: {why}; its clips are extracted again "
            f"(kept as {aside.name}, safe to delete)",
            stacklevel=4,
        )

    def empty_rows(self) -> pd.DataFrame:
        """A rows frame with no rows and the pack schema."""
        data = {
            "key": pd.Series(dtype=object),
            "segment": pd.Series(dtype="int32"),
            "reason": pd.Series(dtype=object),
            "note": pd.Series(dtype=object),
            **{column: pd.Series(dtype="float64") for column in self.columns},
        }
        return pd.DataFrame(data)

    def write_pack(self, rows: pd.DataFrame) -> Path:
        """Append ``rows`` (pack schema) as a new pack file, atomically."""
        table = pa.Table.from_pandas(
            rows[["key", "segment", "reason", "note", *self.columns]], preserve_index=False
        )
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **self._meta})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue()
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{pack_digest(data)}.parquet"
        path = atomic_write(self.pack_dir / name, lambda tmp: tmp.write_bytes(data))
        self.pack_paths.append(path)
        return path

    def compact(self, rows: pd.DataFrame) -> None:
        """Replace the known packs by one holding ``rows`` when there are too many."""
        if len(self.pack_paths) <= MAX_PACKS:
            return
        old = list(self.pack_paths)
        self.pack_paths = []
        self.write_pack(rows)
        for path in old:  # the merged pack is in place before anything is removed
            path.unlink(missing_ok=True)

    # -- mel images ------------------------------------------------------------------------
    def mel_file(self, sha: str) -> Path:
        """Where one clip's images live."""
        if self.mel_dir is None:
            raise ValueError("mel images are not enabled for this store")
        return self.mel_dir / f"{sha}.npy"

    def save_mel(self, sha: str, images: np.ndarray) -> None:
        """Store one clip's images atomically, with the checksum loads verify."""
        write_checked(self.mel_file(sha), lambda tmp: np.save(tmp, images, allow_pickle=False))

    def has_mel(self, sha: str) -> bool:
        """Whether one clip's images are cached (only checks existence; loads validate)."""
        return self.mel_dir is not None and self.mel_file(sha).exists()


def dedupe_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest row per (key, segment); drop skip rows of keys that have features."""
    rows = rows.drop_duplicates(subset=["key", "segment"], keep="last")
    has_data = set(rows.loc[rows["reason"].isna(), "key"])
    stale_skip = rows["reason"].notna() & rows["key"].isin(has_data)
    return rows.loc[~stale_skip].reset_index(drop=True)
