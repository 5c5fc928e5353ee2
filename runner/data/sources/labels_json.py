"""The labels JSON source: ``{"relative/file.wav": "music", ...}`` in a file inside root.

A list of objects (``[{"path": ..., "label": ..., ...}, ...]``) is accepted too; extra keys
become metadata columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from runner.config.spec import ExperimentSpec
from runner.data.sources._common import SourceResult, resolve_in_root, resolve_root
from runner.data.sources.manifest import build_clips
from runner.errors import DataError, format_error

__all__ = ["load_labels_json"]

#: The accepted shapes of the file, as a message names them.
_SHAPES = (
    'an object mapping audio paths to labels ({"a.wav": "music"}) '
    'or a list of {"path": ..., "label": ...} objects'
)


def load_labels_json(spec: ExperimentSpec, *, base: Path | None = None) -> SourceResult:
    """Read the JSON labels file named by ``data.manifest``; audio paths are relative to root.

    Raises:
        DataError: the file is missing, is not UTF-8 JSON, or has neither accepted shape.
    """
    root = resolve_root(spec, base)
    path = resolve_in_root(root, spec.data.manifest or "", "data.manifest")
    try:
        payload = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(format_error("data.manifest", path, must=f"JSON ({exc})")) from None
    except UnicodeDecodeError as exc:
        must = f"UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        hint = "save it as UTF-8"
        raise DataError(format_error("data.manifest", path, must=must, hint=hint)) from None
    raw = _frame(payload, path)
    # The JSON names its own keys, so the spec's column names do not apply here.
    data = spec.data.model_copy(update={"path_column": "path", "label_column": "label"})
    return build_clips(raw, spec.model_copy(update={"data": data}), root=root, source=path)


def _frame(payload: Any, path: Path) -> pd.DataFrame:
    if isinstance(payload, dict):
        for name, label in payload.items():
            if isinstance(label, (dict, list)):
                must = "a label (a string, a number or null)"
                raise DataError(format_error(name, label, must=must, file=path))
        rows = [(str(k), None if v is None else str(v)) for k, v in payload.items()]
        return pd.DataFrame(rows, columns=["path", "label"], dtype=object)
    if not isinstance(payload, list):
        raise DataError(format_error("data.manifest", payload, must=_SHAPES, file=path))
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            must = 'an object {"path": ..., "label": ...}'
            raise DataError(format_error(f"entry {i}", item, must=must, file=path))
    frame = pd.DataFrame(payload)
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        # The key is absent from every entry (an entry without a label is dropped, not wrong).
        must = f"an object with keys 'path' and 'label' (missing {', '.join(missing)})"
        raise DataError(format_error("entry 0", payload[0], must=must, file=path))
    # Text like a manifest read with dtype=str, so labels and filters compare as strings.
    return frame.map(lambda v: None if v is None or v != v else str(v))
