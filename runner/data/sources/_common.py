"""What every data source shares: the result type and the label clean-up pipeline.

A source reads its layout into a raw frame, drops empty labels and applies ``data.filters``
on the raw columns, then hands a frame with ``label`` and ``group`` columns to
:func:`finalize`, which renames labels, checks them, balances and caps the clips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from runner.errors import DataError
from runner.config.spec import ExperimentSpec
from runner.data.checks import min_units_per_class, units_per_class

__all__ = [
    "REPORT_KEYS",
    "SourceResult",
    "apply_filters",
    "check_columns",
    "drop_empty_labels",
    "finalize",
    "metadata_columns",
    "new_report",
    "resolve_in_root",
    "resolve_root",
]

#: Every report has these counts (zero when a step did nothing), in pipeline order.
REPORT_KEYS: tuple[str, ...] = (
    "rows_read",
    "empty_label_dropped",
    "empty_path_dropped",
    "filtered_out",
    "relabelled",
    "rare_class_dropped",
    "downsampled_out",
    "capped_out",
    "kept",
)


@dataclass
class SourceResult:
    """The clips (audio sources) or the feature table (``feature_table``) a spec names.

    Attributes:
        clips: ``clip_id, path, label, group`` then metadata columns; None for feature tables.
        table: ``clip_id, label, group`` then numeric feature columns; None for audio sources.
        report: counts of what each step read, dropped and kept (see ``REPORT_KEYS``).
        class_weight: balanced weights per label when ``data.balance == "class_weight"``.
        source_file: the folder or manifest file that was read (for lineage).
    """

    clips: pd.DataFrame | None
    table: pd.DataFrame | None
    report: dict[str, int] = field(default_factory=dict)
    class_weight: dict[str, float] | None = None
    source_file: Path = Path()

    @property
    def frame(self) -> pd.DataFrame:
        """Whichever of ``clips`` and ``table`` this source produced."""
        frame = self.clips if self.clips is not None else self.table
        if frame is None:
            raise ValueError("SourceResult holds neither clips nor a table")
        return frame

    @property
    def labels(self) -> list:
        """The distinct labels, sorted."""
        return sorted(self.frame["label"].unique())


def new_report() -> dict[str, int]:
    """A report with every count at zero."""
    return dict.fromkeys(REPORT_KEYS, 0)


def select_rows(
    raw: pd.DataFrame, spec: ExperimentSpec, source: Path, *, label_column: str | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Count the rows read, drop empty labels (when labels come from a column), filter."""
    report = new_report()
    report["rows_read"] = len(raw)
    if label_column is not None:
        raw = drop_empty_labels(raw, label_column, report)
    return apply_filters(raw, spec, source, report), report


def resolve_root(spec: ExperimentSpec, base: Path | None) -> Path:
    """``data.root`` as an absolute folder; DataError when it is missing."""
    # Normalised, so that clip ids of "../data/x.wav"-style paths come out relative to it.
    root = Path(os.path.normpath(spec.data_root(base).absolute()))
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"data.root: '{root}' {what}")
    return root


def resolve_in_root(root: Path, name: str, key: str) -> Path:
    """A file named by ``key`` (e.g. ``data.manifest``) inside ``root``; DataError if absent."""
    path = root / Path(name).expanduser()
    if not path.is_file():
        near = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        hint = f"; files in root: {', '.join(near[:10])}" if near else "; root holds no files"
        raise DataError(f"{key}: file '{path}' not found{hint}")
    return path


def check_columns(frame: pd.DataFrame, columns: dict[str, str | None], source: Path) -> None:
    """Raise DataError when a column a spec key names is absent; lists the available ones."""
    for key, column in columns.items():
        if column is not None and column not in frame.columns:
            raise DataError(
                f"{key}: column '{column}' not in {source}; "
                f"available columns: {', '.join(map(str, frame.columns))}"
            )


def drop_empty_labels(frame: pd.DataFrame, column: str, report: dict[str, int]) -> pd.DataFrame:
    """Drop rows whose label is NaN or blank (Common Voice leaves most ages empty)."""
    text = frame[column].astype("string").str.strip()
    empty = (text.isna() | (text == "")).to_numpy(dtype=bool)
    report["empty_label_dropped"] += int(empty.sum())
    return frame.loc[~empty]


def apply_filters(
    frame: pd.DataFrame, spec: ExperimentSpec, source: Path, report: dict[str, int]
) -> pd.DataFrame:
    """Keep the rows whose ``data.filters`` columns hold one of the allowed values."""
    filters = spec.data.filters
    check_columns(frame, {f"data.filters.{c}": c for c in filters}, source)
    keep = np.ones(len(frame), dtype=bool)
    for column, allowed in filters.items():
        values = frame[column].astype("string").str.strip()
        keep &= values.isin([str(a) for a in allowed]).fillna(False).to_numpy(dtype=bool)
    report["filtered_out"] += int((~keep).sum())
    return frame.loc[keep]


def finalize(
    frame: pd.DataFrame,
    spec: ExperimentSpec,
    *,
    source: Path,
    label_from: str,
    report: dict[str, int],
) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """Rename, type-check, balance and cap the labelled rows; returns them and class weights.

    ``frame`` holds ``clip_id`` and ``label``; ``label_from`` names where the label came from
    (a column or "folder name") for error messages.
    """
    labels = frame["label"].astype("string").str.strip()
    mapped = labels.replace(spec.data.label_map) if spec.data.label_map else labels
    report["relabelled"] += int((mapped != labels).fillna(False).sum())
    frame["label"] = mapped.astype(object)
    _check_unique_ids(frame, source)
    if spec.task == "regression":
        frame["label"] = _numeric_labels(frame, source, label_from)
    else:
        frame = _drop_rare(frame, spec, report)
        _check_classes(frame, source, label_from)
        frame = _downsample(frame, spec, report)
    frame = _cap(frame, spec, report)
    if spec.task == "classification":
        _check_classes(frame, source, label_from)
    report["kept"] = len(frame)
    weights = _class_weight(frame["label"]) if spec.data.balance == "class_weight" else None
    return frame.reset_index(drop=True), weights


def _check_unique_ids(frame: pd.DataFrame, source: Path) -> None:
    dup = frame["clip_id"][frame["clip_id"].duplicated()]
    if len(dup):
        raise DataError(
            f"{source}: {len(dup)} clips are listed more than once, e.g. '{dup.iloc[0]}'; "
            "each clip must appear once"
        )


def _numeric_labels(frame: pd.DataFrame, source: Path, label_from: str) -> pd.Series:
    """Labels as floats; the index still counts the rows of the file, for the message."""
    values = pd.to_numeric(frame["label"], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        pos = int(bad[0])
        raise DataError(
            f"{source}: {label_from} must be numeric for task 'regression'; "
            f"row {frame.index[pos] + 1} (clip '{frame['clip_id'].iloc[pos]}') "
            f"has {frame['label'].iloc[pos]!r}"
        )
    return values.astype(float)


def _check_classes(frame: pd.DataFrame, source: Path, label_from: str) -> None:
    if frame.empty:
        raise DataError(f"{source}: no labelled clips left after dropping and filtering")
    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        raise DataError(
            f"{source}: classification needs at least 2 classes in {label_from}; "
            f"found only {classes!r} in {len(frame)} clips"
        )


def _drop_rare(frame: pd.DataFrame, spec: ExperimentSpec, report: dict) -> pd.DataFrame:
    """``data.min_clips_per_class``: drop classes with fewer clips, or fewer clips (groups,
    with a group column) than the held-out split and the CV folds need."""
    floor = spec.data.min_clips_per_class
    if floor is None:
        return frame
    need = min_units_per_class(spec.search.cv.folds, spec.search.test_size)
    clips = frame.groupby("label")["clip_id"].size()
    units, _ = units_per_class(frame, spec)
    rare = set(clips.index[(clips < floor) | (units < need)])
    drop = frame["label"].isin(rare).to_numpy(dtype=bool)
    report["rare_class_dropped"] += int(drop.sum())
    return frame.loc[~drop]


def _downsample(frame: pd.DataFrame, spec: ExperimentSpec, report: dict) -> pd.DataFrame:
    if spec.data.balance != "downsample":
        return frame
    smallest = int(frame["label"].value_counts().min())
    kept = frame.groupby("label", sort=True).sample(n=smallest, random_state=spec.seed)
    report["downsampled_out"] += len(frame) - len(kept)
    return frame.loc[np.sort(kept.index.to_numpy())]


def _cap(frame: pd.DataFrame, spec: ExperimentSpec, report: dict) -> pd.DataFrame:
    """A seeded sample of ``data.max_clips`` rows that keeps class proportions roughly."""
    cap = spec.data.max_clips
    if cap is None or len(frame) <= cap:
        return frame
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(frame))
    if spec.task == "classification":
        # Rank rows within their class in random order; (rank + 0.5) / class size spreads
        # every class evenly over [0, 1), so the smallest keys are a stratified sample.
        shuffled = frame["label"].to_numpy()[order]
        ranks = pd.Series(shuffled).groupby(shuffled).cumcount().to_numpy()
        sizes = pd.Series(shuffled).map(pd.Series(shuffled).value_counts()).to_numpy()
        order = order[np.argsort((ranks + 0.5) / sizes, kind="stable")]
    chosen = np.sort(order[:cap])
    report["capped_out"] += len(frame) - cap
    return frame.iloc[chosen]


def _class_weight(labels: pd.Series) -> dict[str, float]:
    """Balanced weights ``n / (k * count)``, as scikit-learn's ``class_weight='balanced'``."""
    counts = labels.value_counts().sort_index()
    n, k = len(labels), len(counts)
    return {str(label): n / (k * int(count)) for label, count in counts.items()}


def metadata_columns(frame: pd.DataFrame, spec: ExperimentSpec, source: Path) -> pd.DataFrame:
    """Check the ``data.metadata`` columns exist; numeric ones become floats (NaN if empty).

    Categorical columns stay text: the estimator's encoder treats blanks as missing.

    Raises:
        DataError: a column is absent, or a numeric one holds a value that is not a number.
    """
    meta = spec.data.metadata
    check_columns(frame, {f"data.metadata.numeric ({c})": c for c in meta.numeric}, source)
    check_columns(frame, {f"data.metadata.categorical ({c})": c for c in meta.categorical}, source)
    frame = frame.copy()
    for column in meta.numeric:
        text = frame[column].astype("string").str.strip().replace("", pd.NA)
        values = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero((values.isna() & text.notna()).to_numpy(dtype=bool))
        if len(bad):
            pos = int(bad[0])
            raise DataError(
                f"data.metadata.numeric: column '{column}' of {source} must hold numbers; "
                f"row {frame.index[pos] + 1} has {text.iloc[pos]!r} ({len(bad)} such rows)"
            )
        frame[column] = values.astype(float)
    for column in meta.categorical:
        frame[column] = frame[column].astype(object)
    return frame
