"""What ``audioml predict`` reads and writes: the clips of DATA, and its output files.

DATA is one of:

* a folder: every audio file under it, recursively (hidden files and folders skipped);
* a CSV/TSV manifest with a path column (paths relative to the manifest's folder, or
  absolute); its other columns travel with the clips, so a model that reads metadata
  columns finds them;
* a labels JSON (``{"relative/file.wav": "label", ...}`` or a list of objects with a
  ``path`` key), the format the ``labels_json`` data source reads; labels are ignored.

Clip ids (the ``path`` column of every output) are paths relative to the DATA root: the
folder itself, or the folder holding the manifest or JSON, which is what the
``labels_json`` source expects when that folder is its ``data.root``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features import TEMP_PREFIX, atomic_write
from runner.config.spec import DataSpec
from runner.data.sources.folder import not_a_file, scan_audio_files
from runner.data.sources.manifest import read_delimited
from runner.errors import DataError, format_error

__all__ = ["PredictInput", "check_writable", "list_inputs", "write_csv", "write_json"]

#: The endings listed in a DATA folder: the folder source's defaults.
EXTENSIONS: list[str] = DataSpec.model_fields["extensions"].default_factory()  # type: ignore[misc]


@dataclass
class PredictInput:
    """The clips to predict and where they came from.

    Attributes:
        clips: ``clip_id`` (relative to ``root``), ``path`` (absolute), ``label`` and
            ``group`` (empty), then the manifest's other columns (text).
        root: the folder clip ids are relative to.
        source: the folder, manifest or JSON read.
        duplicates: rows dropped because they named a clip already listed.
        left_out: ``path`` (as clip ids are) and ``reason`` of every entry named like audio
            that is not a file to read: broken symlink, symlink loop, FIFO, a folder.
    """

    clips: pd.DataFrame
    root: Path
    source: Path
    duplicates: int = 0
    left_out: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"path": [], "reason": []}, dtype=object)
    )


def list_inputs(data: Path, *, path_column: str = "path") -> PredictInput:
    """The clips DATA names (see the module docstring).

    Raises:
        DataError: DATA is missing, unreadable, lacks the path column, or lists no clip.
    """
    data = Path(os.path.normpath(Path(data).expanduser().absolute()))
    if data.is_dir():
        files, left_out = scan_audio_files(data, EXTENSIONS)
        names = [p.relative_to(data).as_posix() for p in [*files, *(p for p, _ in left_out)]]
        return _clips(pd.DataFrame({"path": names}), data, data, "path")
    if not data.is_file():
        hint = "give a folder, a CSV/TSV or a JSON"
        raise DataError(format_error("DATA", data, problem="does not exist", hint=hint))
    if data.suffix.lower() == ".json":
        return _clips(_json_frame(data), data.parent, data, "path")
    raw = read_delimited(data, dtype=str, keep_default_na=False)
    if path_column not in raw.columns:
        raise DataError(
            format_error(
                "--path-column", path_column, one_of=raw.columns, what="columns", file=data
            )
        )
    return _clips(raw, data.parent, data, path_column)


def _json_frame(path: Path) -> pd.DataFrame:
    try:
        payload = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(format_error("DATA", path, must=f"a readable JSON file ({exc})")) from None
    if isinstance(payload, dict):
        return pd.DataFrame({"path": [str(k) for k in payload]})
    if isinstance(payload, list) and all(isinstance(o, dict) and "path" in o for o in payload):
        return pd.DataFrame(payload).astype(object)
    must = (
        'an object mapping audio paths to labels ({"a.wav": "music"}) '
        'or a list of {"path": ...} objects'
    )
    raise DataError(format_error("DATA", payload, must=must, file=path))


def _clips(raw: pd.DataFrame, root: Path, source: Path, column: str) -> PredictInput:
    """Resolve paths against ``root``; one row per distinct clip, in DATA order."""
    names = raw[column].astype(str).str.strip().str.replace("\\", "/", regex=False)
    keep = (names != "") & (names.str.lower() != "nan")
    raw, names = raw.loc[keep], names[keep]
    full = [os.path.normpath(os.path.join(root, n)) for n in names]
    prefix = str(root) + os.sep
    ids = [f[len(prefix) :].replace(os.sep, "/") if f.startswith(prefix) else f for f in full]
    clips = pd.DataFrame(
        {"clip_id": ids, "path": full, "label": None, "group": None}, dtype=object
    )
    for name in raw.columns:
        if name != column and name not in clips.columns:
            clips[name] = raw[name].to_numpy()
    repeated = clips["clip_id"].duplicated()
    clips = clips.loc[~repeated].reset_index(drop=True)
    # Listed, reported, never opened: a FIFO would block a worker until its timeout.
    reasons = clips["path"].map(not_a_file)
    left_out = pd.DataFrame(
        {"path": clips.loc[reasons.notna(), "clip_id"], "reason": reasons[reasons.notna()]},
        dtype=object,
    ).reset_index(drop=True)
    clips = clips.loc[reasons.isna()].reset_index(drop=True)
    if clips.empty and len(left_out):
        first = left_out.iloc[0]
        raise DataError(
            f"{source}: no clips to predict: {len(left_out)} entries are not audio files "
            f"(first: {first['path']}: {first['reason']})"
        )
    if clips.empty:
        raise DataError(
            f"{source}: no clips to predict (looked for {', '.join(EXTENSIONS)} files)"
            if source.is_dir()
            else f"{source}: no clips to predict (the path column is empty)"
        )
    return PredictInput(clips, root, source, int(repeated.sum()), left_out)


def check_writable(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before any clip is read.

    The folder is created if missing (as the atomic write would) and a temporary file is
    made in it: the one test that holds for read-only mounts, ACLs and root alike.

    Raises:
        DataError: naming ``option``: the path is a folder, or its folder cannot be written.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        hint = "give a file name"
        raise DataError(format_error(option, path, problem="is a folder", hint=hint))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=TEMP_PREFIX):
            pass
    except OSError as exc:
        problem = f"cannot be written in {path.parent} ({exc.strerror or exc})"
        raise DataError(format_error(option, path, problem=problem)) from None


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV atomically (a reader never sees a partial file)."""
    # pandas writes the shortest repr of each float: read back, it equals the one computed.
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_json(payload: object, path: Path) -> Path:
    """Write ``payload`` as indented UTF-8 JSON atomically."""
    text = json.dumps(payload, indent=1, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
