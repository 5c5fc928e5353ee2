"""Honest splits: a held-out test split cut once, and CV folds, both at clip/group level.

Rows are segments; every split is decided per clip (and per group when the spec names a
group column), so the windows of one clip or the clips of one speaker never straddle a fold
or the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from runner.errors import DataError, format_error

__all__ = ["SPLIT_PROBLEM", "Split", "cv_folds", "holdout_split"]

#: ``frame.attrs`` key: why the table cannot be split, as `validate --check-data` says it
#: (set by runner.data.dataset, which knows the spec's folds and where the rows came from).
SPLIT_PROBLEM = "audioml.split_problem"


@dataclass(frozen=True)
class Split:
    """Row positions of the training and test parts of a table."""

    train: np.ndarray
    test: np.ndarray


def _units(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per clip: its label and its group (the clip itself when there is none)."""
    clips = frame.groupby("clip_id", sort=False).agg(
        label=("label", "first"), group=("group", "first")
    )
    clips["group"] = clips["group"].where(clips["group"].notna(), clips.index.to_series())
    return clips.astype({"group": str})


def _rows_of(frame: pd.DataFrame, clip_ids: np.ndarray) -> np.ndarray:
    return np.flatnonzero(frame["clip_id"].isin(set(clip_ids)).to_numpy())


def holdout_split(frame: pd.DataFrame, *, test_size: float, task: str, seed: int) -> Split:
    """Cut the held-out test split once, stratified and grouped where it applies."""
    units = _units(frame)
    try:
        test_idx = _test_units(units, test_size=test_size, task=task, seed=seed)
    except ValueError as exc:  # too few clips or groups of a class for scikit-learn
        if SPLIT_PROBLEM in frame.attrs:  # the cause, as `validate --check-data` names it
            raise DataError(frame.attrs[SPLIT_PROBLEM]) from None
        raise DataError(
            format_error(
                "search.test_size", test_size, problem=f"cannot cut the test split: {exc}"
            )
        ) from None
    test_clips = units.index.to_numpy()[np.sort(test_idx)]
    test = _rows_of(frame, test_clips)
    train = np.setdiff1d(np.arange(len(frame)), test)
    return Split(train=train, test=test)


def _test_units(units: pd.DataFrame, *, test_size: float, task: str, seed: int) -> np.ndarray:
    grouped = units["group"].nunique() < len(units)
    stratify = units["label"] if task == "classification" else None
    if grouped and stratify is not None:
        n_splits = max(2, round(1 / test_size))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return next(splitter.split(units, units["label"], units["group"]))[1]
    if grouped:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        return next(splitter.split(units, groups=units["group"]))[1]
    idx = np.arange(len(units))
    return train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)[1]


def check_folds(frame: pd.DataFrame, *, folds: int, task: str) -> None:
    """Refuse a table whose smallest class (or group count) cannot fill every fold."""
    units = _units(frame)
    if task == "classification":
        counts = units["label"].value_counts()
        if counts.min() < folds:
            fewest = f"at most {counts.min()}, the clips of class '{counts.idxmin()}' in training"
            hint = "add clips or lower the folds"
            raise DataError(format_error("search.cv.folds", folds, must=fewest, hint=hint))
    if units["group"].nunique() < folds:
        fewest = f"at most {units['group'].nunique()}, the groups in training"
        hint = "add groups or lower the folds"
        raise DataError(format_error("search.cv.folds", folds, must=fewest, hint=hint))


def cv_folds(frame: pd.DataFrame, *, folds: int, task: str, seed: int) -> list[Split]:
    """K folds over ``frame`` (the training part): positions relative to ``frame``."""
    check_folds(frame, folds=folds, task=task)
    units = _units(frame)
    grouped = units["group"].nunique() < len(units)
    y = units["label"].to_numpy()
    if task == "classification":
        splitter = (
            StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            if grouped
            else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        )
    else:
        splitter = (
            GroupKFold(n_splits=folds)
            if grouped
            else KFold(folds, shuffle=True, random_state=seed)
        )
    out = []
    clip_ids = units.index.to_numpy()
    groups = units["group"].to_numpy() if grouped else None
    for train_idx, test_idx in splitter.split(units, y, groups):
        out.append(
            Split(
                train=_rows_of(frame, clip_ids[train_idx]),
                test=_rows_of(frame, clip_ids[test_idx]),
            )
        )
    return out
