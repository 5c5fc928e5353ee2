"""The FeatureTable: one row per segment, its skipped clips, stats, digest and mel images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import FeatureError, format_error

__all__ = ["ID_COLUMNS", "FeatureTable", "table_digest"]

#: The non-feature columns of ``FeatureTable.frame``, in order.
ID_COLUMNS = ["clip_id", "segment", "label", "group"]


@dataclass
class FeatureTable:
    """Features of a set of clips, ready for model search.

    Attributes:
        frame: one row per segment (RangeIndex): ``clip_id``, ``segment`` (0.. per clip),
            ``label``, ``group``, any kept clip columns (metadata), then the float64
            feature columns grouped by extractor.
        feature_columns: the feature column names, in ``frame`` order.
        groups: extractor name -> its columns (to sum importances or search over groups).
        skipped: one row per clip left out: ``clip_id``, ``path``, ``reason``.
        stats: rows, columns, clips, cache_hits, cache_misses, hashed (files read to hash),
            extracted, skipped, cut (files read only up to ``max_duration_s``), seconds.
        digest: sha256 hex of the content (columns and every value); equal across runs.
        mel_path: a .npy of float32 ``(rows, n_mels, frames)`` aligned with ``frame``, or
            None when ``features.mel_image`` is false.
        notes: one row per clip in the table that carries a note: ``clip_id``, ``path``,
            ``note`` (``cut: read the first 600 s of 7200 s``).
    """

    frame: pd.DataFrame
    feature_columns: list[str]
    groups: dict[str, list[str]]
    skipped: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    mel_path: Path | None = None
    notes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["clip_id", "path", "note"])
    )

    def load_mel(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Mel images of ``rows`` (positions in ``frame``; all rows when None).

        The file is memory-mapped, so only the requested images are read.

        Returns:
            float32 ``(len(rows), n_mels, mel_image_frames)``.

        Raises:
            FeatureError: the table has no mel images.
        """
        if self.mel_path is None:
            raise FeatureError(
                format_error(
                    "features.mel_image",
                    problem="is off: this feature table has no mel images",
                    hint="set features.mel_image: true and build the table again",
                )
            )
        images = np.load(self.mel_path, mmap_mode="r")
        if rows is None:
            return np.array(images, dtype=np.float32)
        return np.asarray(images[np.asarray(rows, dtype=np.intp)], dtype=np.float32)

    @property
    def X(self) -> np.ndarray:
        """The feature matrix, float64 ``(rows, columns)``."""
        return self.frame[self.feature_columns].to_numpy(dtype=np.float64)


def table_digest(frame: pd.DataFrame) -> str:
    """sha256 of the column names and every value, independent of memory layout."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    if len(frame):
        # pandas' row hash uses a fixed key, so it is stable across processes and runs.
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(np.ascontiguousarray(hashed, dtype="<u8").tobytes())
    return digest.hexdigest()
