"""Turning cached rows into the FeatureTable frame and its aligned mel-image file."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features._atomic import CHECK_SUFFIX, TEMP_PREFIX, checked_ok, write_checked
from features.cache import FeatureStore
from features.errors import FeatureError, format_error
from features.table import ID_COLUMNS

__all__ = ["MEL_TABLES_KEPT", "assemble", "build_mel_table"]

#: Aligned mel files kept per config (older ones are deleted; clip images stay).
MEL_TABLES_KEPT = 4


def assemble(
    clips: pd.DataFrame,
    keys: dict[str, str],
    skipped: dict[str, str],
    rows: pd.DataFrame,
    columns: list[str],
    keep: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table frame (input clip order, then segment) and the skipped clips.

    Columns: the id columns, ``keep`` (clip columns repeated on each of the clip's segments,
    such as metadata), then the feature columns.

    Args:
        clips: the validated clips table (string clip ids, RangeIndex).
        keys: clip id -> content key, for clips not skipped up front.
        skipped: clip id -> reason, for clips skipped up front (filled in here).
        rows: deduplicated cache rows (key, segment, reason, features).
        columns: the feature columns.
        keep: columns of ``clips`` to carry beside the features.
    """
    reasons = rows.loc[rows["reason"].notna()].set_index("key")["reason"]
    data = rows.loc[rows["reason"].isna(), ["key", "segment", *columns]]
    ids = pd.DataFrame({"_order": np.arange(len(clips)), "key": clips["clip_id"].map(keys)})
    merged = ids.merge(data, on="key", how="inner").sort_values(
        ["_order", "segment"], kind="stable"
    )
    order = merged["_order"].to_numpy()
    frame = pd.DataFrame(
        {
            "clip_id": clips["clip_id"].to_numpy()[order],
            "segment": merged["segment"].to_numpy(dtype=np.int64),
            "label": clips["label"].to_numpy()[order],
            "group": clips["group"].to_numpy()[order],
        }
    )
    kept = pd.DataFrame({c: clips[c].to_numpy()[order] for c in keep}, index=frame.index)
    features = merged[columns].reset_index(drop=True).astype(np.float64)
    frame = pd.concat([frame, kept, features], axis=1)
    present = set(frame["clip_id"])
    for clip_id, key in keys.items():
        if clip_id not in present and clip_id not in skipped:
            skipped[clip_id] = str(reasons.get(key, "not extracted"))
    return frame[[*ID_COLUMNS, *keep, *columns]], _skipped_frame(clips, skipped)


def _skipped_frame(clips: pd.DataFrame, skipped: dict[str, str]) -> pd.DataFrame:
    mask = clips["clip_id"].isin(list(skipped))
    out = clips.loc[mask, ["clip_id", "path"]].reset_index(drop=True)
    out["path"] = out["path"].astype(str)
    out["reason"] = out["clip_id"].map(skipped).astype(object)
    return out


def build_mel_table(
    store: FeatureStore,
    frame: pd.DataFrame,
    keys: dict[str, str],
    digest: str,
    repair: Callable[[str], None],
) -> Path:
    """Write (or reuse) one .npy of images aligned with ``frame`` rows, atomically.

    ``repair(clip_id)`` re-extracts a clip whose cached images cannot be read.
    """
    if store.mel_dir is None:
        raise FeatureError(
            format_error(
                "features.mel_image",
                problem="mel images are not enabled for this feature cache",
                hint="set features.mel_image: true",
            )
        )
    path = store.mel_dir / "tables" / f"{digest}.npy"
    if path.exists() and _readable(path, len(frame)):
        return path
    ids = frame["clip_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    lengths = np.diff(np.r_[starts, len(ids)])
    blocks = [(int(s), int(n), str(ids[s])) for s, n in zip(starts, lengths, strict=True)]
    first = _clip_images(store, keys, blocks[0][1:], repair) if blocks else None
    shape = (len(frame), *(first.shape[1:] if first is not None else (0, 0)))

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        for start, length, clip_id in blocks:
            out[start : start + length] = _clip_images(store, keys, (length, clip_id), repair)
        out.flush()
        del out

    write_checked(path, write)
    _prune(path.parent)
    return path


def _clip_images(
    store: FeatureStore,
    keys: dict[str, str],
    block: tuple[int, str],
    repair: Callable[[str], None],
) -> np.ndarray:
    """One clip's images; re-extracts the clip once if they are missing or damaged."""
    length, clip_id = block
    images = _load_images(store.mel_file(keys[clip_id]), length)
    if images is None:
        repair(clip_id)
        images = _load_images(store.mel_file(keys[clip_id]), length)
    if images is None:
        problem = "has cached mel images that cannot be read, even after extracting it again"
        hint = f"the file is {store.mel_file(keys[clip_id])}"
        raise FeatureError(format_error("clip_id", clip_id, problem=problem, hint=hint))
    return images


def _load_images(path: Path, n_segments: int) -> np.ndarray | None:
    if not _intact(path):
        return None
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    ok = images.ndim == 3 and images.shape[0] == n_segments and images.dtype == np.float32
    return images if ok else None


def _intact(path: Path) -> bool:
    """Whether a cached image file's bytes match its checksum; a damaged one is reported and
    made again (a flipped bit in an image reads as a different number, never an error)."""
    if checked_ok(path):
        return True
    if path.exists():
        warnings.warn(
            f"Damaged feature cache file {path}: its bytes do not match its checksum; "
            "it is made again",
            stacklevel=4,
        )
    return False


def _readable(path: Path, n_rows: int) -> bool:
    if not _intact(path):
        return False
    try:
        return np.load(path, mmap_mode="r").shape[0] == n_rows
    except (OSError, ValueError):
        return False


def _prune(folder: Path) -> None:
    tables = [p for p in folder.glob("*.npy") if not p.name.startswith(TEMP_PREFIX)]
    tables.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in tables[MEL_TABLES_KEPT:]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + CHECK_SUFFIX).unlink(missing_ok=True)
