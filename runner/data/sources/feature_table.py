"""The feature table source: pre-extracted features in CSV or Parquet (GTZAN features_*.csv).

The label column becomes ``label``; ``data.path_column`` or a ``filename`` column becomes
``clip_id``; ``data.drop_columns`` are dropped, ``data.metadata`` columns are kept with their
roles (they come last) and every other column must be numeric.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from runner.config.spec import ExperimentSpec
from runner.data.sources._common import (
    SourceResult,
    check_columns,
    finalize,
    metadata_columns,
    resolve_in_root,
    resolve_root,
    select_rows,
)
from runner.data.sources.manifest import group_values, read_delimited
from runner.errors import DataError, format_error

__all__ = ["load_feature_table", "read_table"]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def read_table(path: Path, text_columns: list[str]) -> pd.DataFrame:
    """Read CSV/TSV (``text_columns`` as text, the rest typed) or Parquet."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            must = f"a Parquet file ({exc})"
            raise DataError(format_error("data.manifest", path, must=must)) from None
    # Only the columns that exist may be named in dtype=; read the header first.
    header = read_delimited(path, nrows=0).columns
    dtypes = {c: str for c in text_columns if c in header}
    return read_delimited(path, dtype=dtypes)


def _id_column(spec: ExperimentSpec, columns: pd.Index) -> str | None:
    for name in (spec.data.path_column, "filename"):
        if name in columns:
            return name
    return None


def load_feature_table(spec: ExperimentSpec, *, base: Path | None = None) -> SourceResult:
    """Read a feature table; returns ``clip_id, label, group`` then float feature columns.

    Raises:
        DataError: the file or a named column is missing, or a kept column is not numeric.
    """
    data = spec.data
    root = resolve_root(spec, base)
    path = resolve_in_root(root, data.manifest or "", "data.manifest")
    label_col = data.label_column or "label"
    text = [label_col, data.path_column, "filename", *data.metadata.categorical]
    raw = read_table(path, text + ([data.group_column] if data.group_column else []))
    check_columns(
        raw,
        [
            ("data.label_column", label_col),
            ("data.group_column", data.group_column),
            *(("data.drop_columns", c) for c in data.drop_columns),
        ],
        path,
    )
    raw, report = select_rows(raw, spec, path, label_column=label_col)
    raw = metadata_columns(raw, spec, path)
    table = _table(raw, spec, path)
    table, weights = finalize(
        table, spec, source=path, label_from=f"column '{label_col}'", report=report
    )
    return SourceResult(
        clips=None, table=table, report=report, class_weight=weights, source_file=path
    )


def _table(raw: pd.DataFrame, spec: ExperimentSpec, path: Path) -> pd.DataFrame:
    data = spec.data
    label_col = data.label_column or "label"
    id_col = _id_column(spec, raw.columns)
    ids = raw[id_col].astype(str).str.strip() if id_col else raw.index.astype(str)
    meta = data.metadata.columns
    used = {label_col, id_col, data.group_column, *data.drop_columns, *meta}
    features = raw[[c for c in raw.columns if c not in used]]
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        hint = (
            "add them to data.drop_columns, data.metadata.categorical (or name them as "
            "data.label_column / data.group_column)"
        )
        problem = "are not numeric, so not features"
        raise DataError(format_error("columns", bad, problem=problem, hint=hint, file=path))
    out = pd.DataFrame(
        {
            "clip_id": list(ids),
            "label": raw[label_col].astype(object).to_numpy(),
            "group": group_values(raw[data.group_column] if data.group_column else None, len(raw)),
        },
        index=raw.index,
    )
    return pd.concat([out, features.astype(float), raw[meta]], axis=1)
