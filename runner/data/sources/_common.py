"""What every data source shares: the result type and the label clean-up pipeline.

A source reads its layout into a raw frame, drops empty labels and applies ``data.filters``
on the raw columns, then hands a frame with ``label`` and ``group`` columns to
:func:`finalize`, which renames labels, checks them, balances and caps the clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from runner.config.spec import ExperimentSpec
from runner.data.checks import min_units_per_class, units_per_class
from runner.errors import DataError, format_error

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
        raise DataError(format_error("data.root", root, problem=what))
    return root


def resolve_in_root(root: Path, name: str, key: str) -> Path:
    """A file named by ``key`` (e.g. ``data.manifest``) inside ``root``; DataError if absent."""
    path = root / Path(name).expanduser()
    if not path.is_file():
        near = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        hint = (
            f"files in data.root: {', '.join(near[:10])}" if near else "data.root holds no files"
        )
        raise DataError(format_error(key, path, problem="is not a file", hint=hint))
    return path


def check_columns(
    frame: pd.DataFrame, columns: Iterable[tuple[str, str | None]], source: Path
) -> None:
    """Raise DataError when a column a spec key names is absent; lists the available ones.

    Args:
        frame: the table read from ``source``.
        columns: ``(spec key, column)`` pairs; a None column is not asked for.
        source: the file read, named in the message.
    """
    for key, column in columns:
        if column is not None and column not in frame.columns:
            raise DataError(
                format_error(key, column, one_of=frame.columns, what="columns", file=source)
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
    check_columns(frame, ((f"data.filters.{c}", c) for c in filters), source)
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
        problem = f"is listed more than once ({len(dup)} repeated clips)"
        hint = "each clip must appear once"
        raise DataError(
            format_error("clip_id", dup.iloc[0], problem=problem, hint=hint, file=source)
        )


def _numeric_labels(frame: pd.DataFrame, source: Path, label_from: str) -> pd.Series:
    """Labels as floats; the index still counts the rows of the file, for the message."""
    values = pd.to_numeric(frame["label"], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        pos = int(bad[0])
        where = f"row {frame.index[pos] + 1}, {label_from}"
        raise DataError(
            format_error(
                where,
                frame["label"].iloc[pos],
                must="a number for task 'regression'",
                hint=f"clip '{frame['clip_id'].iloc[pos]}'",
                file=source,
            )
        )
    return values.astype(float)


def _check_classes(frame: pd.DataFrame, source: Path, label_from: str) -> None:
    if frame.empty:
        problem = "no labelled clips left after dropping and filtering"
        raise DataError(format_error(label_from, problem=problem, file=source))
    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        must = f"at least 2 classes for task 'classification' (found in {len(frame)} clips)"
        raise DataError(format_error(label_from, classes, must=must, file=source))


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
    check_columns(frame, (("data.metadata.numeric", c) for c in meta.numeric), source)
    check_columns(frame, (("data.metadata.categorical", c) for c in meta.categorical), source)
    frame = frame.copy()
    for column in meta.numeric:
        text = frame[column].astype("string").str.strip().replace("", pd.NA)
        values = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero((values.isna() & text.notna()).to_numpy(dtype=bool))
        if len(bad):
            pos = int(bad[0])
            where = f"row {frame.index[pos] + 1}, column '{column}'"
            must = "a number (data.metadata.numeric)"
            hint = f"{len(bad)} such rows"
            raise DataError(format_error(where, text.iloc[pos], must=must, hint=hint, file=source))
        frame[column] = values.astype(float)
    for column in meta.categorical:
        frame[column] = frame[column].astype(object)
    return frame
