"""Checks of what a data source listed (no audio decoded): missing files, and classes too rare
for the held-out split and the folds. ``validate --check-data`` runs :func:`check_data`; the
sources drop rare classes by the same count, and ``prepare_dataset`` checks again after the
clips that failed extraction are gone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import DataError, format_error

if TYPE_CHECKING:
    import pandas as pd

    from runner.config.spec import ExperimentSpec
    from runner.data.sources import SourceResult

__all__ = ["check_data", "check_files", "check_rare", "min_units_per_class", "units_per_class"]

#: Missing files named in a --check-data message.
SHOWN = 5


def min_units_per_class(folds: int, test_size: float) -> int:
    """Clips (or groups) a class needs: one per CV fold in training, and one in the test."""
    return folds + max(1, math.ceil(folds * test_size / (1 - test_size) - 0.5))


def units_per_class(frame: pd.DataFrame, spec: ExperimentSpec) -> tuple[pd.Series, bool]:
    """Distinct splitting units per label: groups when the spec names a group column (a clip
    without one is its own group), else clips; and whether they are groups."""
    grouped = spec.data.group_column is not None and bool(frame["group"].notna().any())
    units = frame["group"].fillna(frame["clip_id"]) if grouped else frame["clip_id"]
    return units.groupby(frame["label"]).nunique(), grouped


def check_data(spec: ExperimentSpec, result: SourceResult) -> list[str]:
    """Raise :class:`DataError` for data the run would fail on; return notes worth showing.

    Args:
        spec: the validated spec.
        result: what its data source listed (no audio decoded).
    """
    notes = []
    if result.report.get("empty_label_dropped"):
        notes.append(
            f"{result.report['empty_label_dropped']} rows with an empty label are dropped"
        )
    if result.report.get("rare_class_dropped"):
        notes.append(
            f"{result.report['rare_class_dropped']} clips of classes rarer than "
            "data.min_clips_per_class (or the folds) are dropped"
        )
    if result.clips is not None:
        check_files(result)
    if spec.task == "classification":
        check_rare(spec, result.frame, result.source_file)
    return notes


def check_files(result: SourceResult) -> None:
    """Raise :class:`DataError` naming the listed audio files that do not exist."""
    import os

    paths = result.clips["path"].astype(str).tolist()
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        hint = (
            f"{len(missing)} of {len(paths)} listed audio files do not exist: "
            + ", ".join(missing[:SHOWN])
        )
        where = result.source_file
        raise DataError(
            format_error("path", Path(missing[0]), problem="does not exist", hint=hint, file=where)
        )


def check_rare(
    spec: ExperimentSpec, frame: pd.DataFrame, source_file: Path | str, *, after: str = ""
) -> None:
    """Raise :class:`DataError` when a class has fewer clips (or groups) than the held-out
    split and the folds need; ``after`` says what was lost on the way (skipped clips)."""
    counts, grouped = units_per_class(frame, spec)
    counts = counts.sort_index().sort_values(kind="stable")
    need = min_units_per_class(spec.search.cv.folds, spec.search.test_size)
    rare = counts[counts < need]
    if len(rare):
        what = f"groups (data.group_column '{spec.data.group_column}')" if grouped else "clips"
        listed = ", ".join(f"'{label}' has {n}" for label, n in rare.items())
        lost = f" after {after}" if after else ""
        must = (
            f"classes with at least {need} {what} each{lost} for search.cv.folds "
            f"{spec.search.cv.folds} with search.test_size {spec.search.test_size:g} "
            f"({listed})"
        )
        hint = "set data.min_clips_per_class to drop them, or lower the folds"
        labels = [str(label) for label in rare.index]
        raise DataError(format_error("label", labels, must=must, hint=hint, file=source_file))
