"""The manifest source: a CSV or TSV with one row per clip (Common Voice ``train.tsv``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

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
from runner.errors import DataError, format_error

__all__ = ["build_clips", "group_values", "load_manifest", "read_delimited", "sniff_delimiter"]

#: Columns a clips table always starts with; manifest columns of these names are renamed.
CORE_COLUMNS = ("clip_id", "path", "label", "group")


def sniff_delimiter(path: Path) -> str:
    """Tab for ``.tsv``, comma for ``.csv``, else guessed from the first lines."""
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = "".join(handle.readline() for _ in range(5))
    try:
        return csv.Sniffer().sniff(head, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_delimited(path: Path, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV/TSV; DataError naming the file when it is empty or malformed."""
    sep = sniff_delimiter(path)
    # Common Voice sentences hold unbalanced quotes; TSV files there are never quoted.
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        return pd.read_csv(path, sep=sep, quoting=quoting, encoding="utf-8-sig", **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(format_error("data.manifest", path, problem="is empty")) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        must = f"a {_kind(sep)} file ({exc})"
        raise DataError(format_error("data.manifest", path, must=must)) from None


def _kind(sep: str) -> str:
    return {"\t": "tab-separated", ",": "comma-separated"}.get(sep, f"'{sep}'-separated")


def load_manifest(spec: ExperimentSpec, *, base: Path | None = None) -> SourceResult:
    """Read the manifest named by ``data.manifest`` inside root; every column as text.

    Raises:
        DataError: root, manifest or a named column is missing, or too few classes remain.
    """
    root = resolve_root(spec, base)
    path = resolve_in_root(root, spec.data.manifest or "", "data.manifest")
    raw = read_delimited(path, dtype=str, keep_default_na=True)
    return build_clips(raw, spec, root=root, source=path)


def build_clips(
    raw: pd.DataFrame, spec: ExperimentSpec, *, root: Path, source: Path
) -> SourceResult:
    """Turn a text frame with path/label(/group) columns into a clips table.

    Shared by the manifest and labels JSON sources; audio paths are relative to
    ``root / data.audio_dir`` (default root) unless absolute.
    """
    data = spec.data
    label_col = data.label_column or "label"
    check_columns(
        raw,
        [
            ("data.path_column", data.path_column),
            ("data.label_column", label_col),
            ("data.group_column", data.group_column),
        ],
        source,
    )
    raw, report = select_rows(raw, spec, source, label_column=label_col)
    raw = _drop_empty_paths(raw, data.path_column, report)
    raw = metadata_columns(raw, spec, source)
    clips = _clips_frame(raw, spec, root)
    clips, weights = finalize(
        clips, spec, source=source, label_from=f"column '{label_col}'", report=report
    )
    return SourceResult(
        clips=clips, table=None, report=report, class_weight=weights, source_file=source
    )


def _drop_empty_paths(raw: pd.DataFrame, column: str, report: dict[str, int]) -> pd.DataFrame:
    text = raw[column].astype("string").str.strip()
    empty = (text.isna() | (text == "")).to_numpy(dtype=bool)
    report["empty_path_dropped"] += int(empty.sum())
    return raw.loc[~empty]


def _clips_frame(raw: pd.DataFrame, spec: ExperimentSpec, root: Path) -> pd.DataFrame:
    """clip_id, path, label, group, then the other columns (renamed ``meta_*`` on clashes)."""
    data = spec.data
    audio_dir = str(root / data.audio_dir) if data.audio_dir else str(root)
    ids, paths = [], []
    prefix = str(root) + os.sep
    for value in raw[data.path_column].astype(str):
        # Manifests written on Windows use backslashes; audio paths are always posix here.
        full = os.path.normpath(os.path.join(audio_dir, value.strip().replace("\\", "/")))
        paths.append(full)
        ids.append(full[len(prefix) :].replace(os.sep, "/") if full.startswith(prefix) else full)
    label_col = data.label_column or "label"
    group = raw[data.group_column] if data.group_column else None
    out = pd.DataFrame(
        {
            "clip_id": ids,
            "path": paths,
            "label": raw[label_col].astype(object).to_numpy(),
            "group": group_values(group, len(raw)),
        },
        index=raw.index,
    )
    used = {data.path_column, label_col, data.group_column}
    for column in raw.columns:
        if column not in used:
            name = f"meta_{column}" if column in CORE_COLUMNS else column
            out[name] = raw[column].to_numpy()
    return out


def group_values(values: pd.Series | None, n: int) -> list[str | None]:
    """Group ids as stripped text; None where the manifest has none."""
    if values is None:
        return [None] * n
    return [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in values]
