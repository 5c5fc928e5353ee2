"""Data sources: one module per input layout, all returning the same clips table.

``load_source(spec)`` dispatches on ``data.source``:

- ``folder``: one sub-folder per class under root (GTZAN ``genres_original``);
- ``manifest``: CSV/TSV with one row per clip (Common Voice ``train.tsv`` as is);
- ``labels_json``: ``{"relative/file.wav": "label", ...}``;
- ``feature_table``: pre-extracted features in CSV or Parquet (GTZAN ``features_30_sec.csv``).
"""

from __future__ import annotations

from pathlib import Path

from runner.config.source_registry import SOURCES, Source, get_source, register_source
from runner.data.sources._common import REPORT_KEYS, SourceResult
from runner.data.sources.folder import list_audio_files
from runner.config.spec import ExperimentSpec

__all__ = [
    "REPORT_KEYS",
    "SOURCES",
    "Source",
    "SourceResult",
    "get_source",
    "list_audio_files",
    "load_source",
    "register_source",
]


def load_source(spec: ExperimentSpec, *, base: Path | None = None) -> SourceResult:
    """Read the clips (or feature table) ``spec.data`` names.

    Args:
        spec: a validated experiment spec.
        base: the folder a relative ``data.root`` is resolved against (default: cwd).

    Returns:
        The clips or table, the counts of each clean-up step, class weights if asked for,
        and the file or folder read.

    Raises:
        DataError: naming the file, folder or column that is missing or unusable.
    """
    return get_source(spec.data.source).reader()(spec, base=base)
