"""The folder source: one sub-folder per class under root (GTZAN ``genres_original``)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pandas as pd

from runner.config.spec import ExperimentSpec
from runner.data.sources._common import (
    SourceResult,
    finalize,
    resolve_root,
    select_rows,
)
from runner.errors import DataError, format_error

__all__ = ["list_audio_files", "load_folder", "not_a_file", "scan_audio_files"]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_audio_files(folder: Path, extensions: list[str]) -> list[Path]:
    """Audio files under ``folder`` (recursively), sorted, hidden files and folders skipped."""
    return scan_audio_files(folder, extensions)[0]


def scan_audio_files(
    folder: Path, extensions: list[str]
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """:func:`list_audio_files`, and the entries named like audio that are not readable
    files, each with why (broken symlink, symlink loop, FIFO, a folder named ``x.wav``)."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files, left_out = [], []
    for p in folder.rglob("*"):
        if p.suffix.lower() not in wanted or _hidden(p, folder):
            continue
        reason = not_a_file(p)
        if reason is None:
            files.append(p)
        else:
            left_out.append((p, reason))
    files.sort(key=lambda p: p.relative_to(folder).as_posix())
    left_out.sort(key=lambda entry: entry[0].relative_to(folder).as_posix())
    return files, left_out


def not_a_file(path: Path | str) -> str | None:
    """Why ``path`` is not a regular file to read audio from, or None when it is one (or
    does not exist at all, which the feature engine reports as ``file not found``)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken symlink (its target does not exist)" if os.path.islink(path) else None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        return f"cannot read file ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not an audio file"
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return f"not a regular file ({kind}): reading it could block"


def load_folder(spec: ExperimentSpec, *, base: Path | None = None) -> SourceResult:
    """List ``root/<class>/**/<clip>`` files; the label is the class folder's name.

    Raises:
        DataError: root is missing, or no file with one of ``data.extensions`` is found.
    """
    root = resolve_root(spec, base)
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if class_dir.name.startswith("."):
            continue
        for path in list_audio_files(class_dir, spec.data.extensions):
            rows.append((path.relative_to(root).as_posix(), str(path), class_dir.name))
    if not rows:
        problem = f"holds no {', '.join(spec.data.extensions)} files in class sub-folders"
        hint = "set data.extensions to look for others"
        raise DataError(format_error("data.root", root, problem=problem, hint=hint))
    raw = pd.DataFrame(rows, columns=["clip_id", "path", "label"])
    raw, report = select_rows(raw, spec, root, label_column=None)
    raw["group"] = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    if spec.task == "classification" and raw["label"].nunique() == 1:
        _hint_one_class(root, raw["label"].iloc[0])
    clips, weights = finalize(raw, spec, source=root, label_from="folder name", report=report)
    return SourceResult(
        clips=clips, table=None, report=report, class_weight=weights, source_file=root
    )


def _hint_one_class(root: Path, only: str) -> None:
    """One class folder holding more folders usually means root is one level too high."""
    inner = sorted(p.name for p in (root / only).iterdir() if p.is_dir())
    if inner:
        problem = f"has a single class folder '{only}' with sub-folders ({', '.join(inner[:5])})"
        hint = f"did you mean data.root: {root / only}?"
        raise DataError(format_error("data.root", root, problem=problem, hint=hint))
