"""From a spec to a feature table: the data source, then the feature engine or the
pre-extracted table, in one shape the search and the tracking share."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from runner.errors import DataError
from runner.models import METADATA_GROUP, ColumnRoles, Rows
from runner.data.sources import SourceResult
from runner.config.spec import ExperimentSpec
from runner.data.splits import SPLIT_PROBLEM
from runner.data.checks import check_files, check_rare

__all__ = ["Dataset", "cache_dir_for", "prepare_dataset", "targets", "write_table"]

ID_COLUMNS = ["clip_id", "segment", "label", "group"]


@dataclass
class Dataset:
    """A feature table with its provenance: one row per segment.

    ``feature_columns`` are every model input column: the audio features, then the metadata
    columns, whose roles are in ``roles`` and which form the ``metadata`` group.
    """

    frame: pd.DataFrame
    feature_columns: list[str]
    groups: dict[str, list[str]]
    digest: str
    source: str
    skipped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["clip_id", "path", "reason"])
    )
    stats: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    class_weight: dict | None = None
    load_mel: Callable[[np.ndarray | None], np.ndarray] | None = None
    roles: ColumnRoles = field(default_factory=ColumnRoles)

    def schema(self) -> dict:
        """Column names, dtypes, roles and feature groups (logged as the table schema)."""
        return {
            "rows": len(self.frame),
            "id_columns": [c for c in ID_COLUMNS if c in self.frame.columns],
            "feature_columns": {c: str(self.frame[c].dtype) for c in self.feature_columns},
            "metadata": self.roles.to_json(),
            "groups": self.groups,
        }

    def rows(self, positions: np.ndarray) -> Rows:
        """The rows at ``positions`` (e.g. the training split), renumbered from 0, with their
        images (when the table has them) aligned."""
        positions = np.asarray(positions, dtype=np.intp)
        load = None
        if self.load_mel is not None:
            load_mel = self.load_mel
            load = lambda r: load_mel(positions[r])  # noqa: E731 - rows relative to the part
        return Rows(self.frame.iloc[positions].reset_index(drop=True), load)


def targets(values: np.ndarray | pd.Series, task: str) -> np.ndarray:
    """Labels as the estimators see them: floats for regression, strings for classes."""
    values = np.asarray(values)
    return values.astype(float) if task == "regression" else values.astype(str)


def cache_dir_for(spec: ExperimentSpec, base: Path | None = None) -> Path:
    """``features.cache_dir`` or ``.audioml-cache`` in the working directory."""
    folder = Path(spec.features.cache_dir or ".audioml-cache").expanduser()
    return folder if folder.is_absolute() else (base or Path.cwd()) / folder


def _table_groups(columns: list[str]) -> dict[str, list[str]]:
    """Group pre-extracted columns by family: ``mfcc12_mean`` -> mfcc, ``rms_var`` -> rms."""
    groups: dict[str, list[str]] = {}
    for col in columns:
        stem = re.sub(r"_(mean|var|std|min|max|median)$", "", col)
        stem = re.sub(r"[_]?\d+$", "", stem) or col
        groups.setdefault(stem, []).append(col)
    return groups


def _frame_digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(frame.columns).encode()).hexdigest()


def prepare_dataset(
    spec: ExperimentSpec, *, base: Path | None = None, progress: bool = True
) -> Dataset:
    """Load the spec's data and build (or load from the cache) its feature table."""
    from runner.data.sources import load_source

    source = load_source(spec, base=base)
    if spec.search.target_transform == "log":
        _check_log_target(source)  # before extraction: the cheap check fails first
    if source.clips is not None and not any(map(os.path.isfile, source.clips["path"])):
        check_files(source)  # not one file exists: the listing's message, before extraction
    roles = ColumnRoles(tuple(spec.data.metadata.numeric), tuple(spec.data.metadata.categorical))
    if source.table is not None:
        ds = _from_table(source, roles)
    else:
        ds = _from_audio(spec, source, roles, base=base, progress=progress)
    if spec.task == "classification":
        _note_rare(spec, ds)
    return ds


def _note_rare(spec: ExperimentSpec, ds: Dataset) -> None:
    """Classes too rare to split: the cause `validate --check-data` names, kept with the
    frame for :func:`runner.data.splits.holdout_split` to raise. Not raised here: `audioml
    features` may build the table of such a corpus."""
    skipped = ""
    if len(ds.skipped):
        skipped = f"{len(ds.skipped)} clips skipped (first: {_first_reason(ds.skipped)})"
    try:
        check_rare(spec, ds.frame, ds.source, after=skipped)
    except DataError as exc:
        ds.frame.attrs[SPLIT_PROBLEM] = str(exc)


def _with_metadata(ds: Dataset, roles: ColumnRoles) -> Dataset:
    """Metadata columns join the inputs after the audio features, as their own group."""
    if roles:
        ds.feature_columns = [*ds.feature_columns, *roles.columns]
        ds.groups = {**ds.groups, METADATA_GROUP: roles.columns}
        ds.roles = roles
    return ds


def _check_log_target(source: SourceResult) -> None:
    frame = source.frame
    labels = frame["label"].astype(float)
    if len(labels) and labels.min() < 0:
        row = frame.loc[labels.idxmin()]
        raise DataError(
            f"{source.source_file}: search.target_transform 'log' needs targets >= 0; the "
            f"smallest is "
            f"{labels.min():g} (clip '{row['clip_id']}'); use target_transform: none"
        )


def _from_table(source: SourceResult, roles: ColumnRoles) -> Dataset:
    """A pre-extracted feature table: one row (segment 0) per clip."""
    frame = source.table.reset_index(drop=True)
    frame.insert(1, "segment", 0)
    features = [c for c in frame.columns if c not in ID_COLUMNS and c not in roles.columns]
    frame[features] = frame[features].astype("float64")
    ds = Dataset(
        frame=frame, feature_columns=features, groups=_table_groups(features),
        digest=_frame_digest(frame), source=str(source.source_file), report=source.report,
        class_weight=source.class_weight,
    )  # fmt: skip
    return _with_metadata(ds, roles)


def _from_audio(
    spec: ExperimentSpec,
    source: SourceResult,
    roles: ColumnRoles,
    *,
    base: Path | None,
    progress: bool,
) -> Dataset:
    """Audio clips through the feature engine (and its cache); metadata rides along."""
    from features import build_table
    from runner.stores.checks import check_cache_dir

    cache_dir = cache_dir_for(spec, base)
    check_cache_dir(cache_dir)  # a file in the way or a read-only folder: named, exit 2
    table = build_table(
        source.clips, spec.features, spec.segments, cache_dir=cache_dir,
        n_jobs=spec.features.n_jobs, progress=progress, keep_columns=roles.columns,
    )  # fmt: skip
    if len(table.frame) == 0:
        raise DataError(
            f"{source.source_file}: no usable clips: {len(table.skipped)} skipped "
            f"(first: {_first_reason(table.skipped)})"
        )
    ds = Dataset(
        frame=table.frame, feature_columns=list(table.feature_columns), groups=dict(table.groups),
        digest=table.digest, source=str(source.source_file), skipped=table.skipped,
        stats=dict(table.stats), report=source.report, class_weight=source.class_weight,
        load_mel=table.load_mel if table.mel_path is not None else None,
    )  # fmt: skip
    return _with_metadata(ds, roles)


def write_table(ds: Dataset, path: Path) -> Path:
    """Write the table's id columns and features to ``path`` (.parquet or .csv), atomically.

    The columns are ``clip_id, segment, label, group`` then the features in table order,
    so the file reads back as a ``feature_table`` source (as GTZAN's features_30_sec.csv).
    """
    from features import atomic_write

    ids = [c for c in ID_COLUMNS if c in ds.frame.columns]
    frame = ds.frame[[*ids, *ds.feature_columns]]
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def _first_reason(skipped: pd.DataFrame) -> str:
    if skipped.empty:
        return "none"
    row = skipped.iloc[0]
    return f"{row['path']}: {row['reason']}"
