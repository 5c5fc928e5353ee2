"""The data source registry: a :class:`Source` record per ``data.source`` name.

The spec's checks read what a source offers (a manifest file, metadata columns, audio) from
its record, so a new layout is one module and one :func:`register_source` call, and no other
module tests a source's name (tests/runner/test_extension_points.py registers one). A record
names its reader as ``"module:function"`` or holds it: checking a spec imports no reader
(and no pandas); ``runner.data.sources.load_source`` imports the one it calls.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.registry import Registry

__all__ = ["SOURCES", "Source", "get_source", "register_source"]


@dataclass(frozen=True)
class Source:
    """``load(spec, base=...)`` returns a ``SourceResult``.

    Attributes:
        needs_manifest: reads the file ``data.manifest`` names.
        needs_label_column: needs ``data.label_column``.
        metadata: has columns a spec may use as model inputs (``data.metadata``).
        audio: lists audio files (else it holds pre-extracted feature rows).
    """

    name: str
    load: str | Callable[..., Any]
    needs_manifest: bool = True
    needs_label_column: bool = False
    metadata: bool = False
    audio: bool = True

    def reader(self) -> Callable[..., Any]:
        """The reader, imported on first use when named as ``"module:function"``."""
        if callable(self.load):
            return self.load
        module, _, function = self.load.partition(":")
        return getattr(importlib.import_module(module), function)


SOURCES: Registry[Source] = Registry("source", "data.source")
register_source, get_source = SOURCES.register, SOURCES.get_record


def with_metadata() -> list[str]:
    """The sources whose columns may be model inputs, in registration order."""
    return [s.name for s in SOURCES.values() if s.metadata]


register_source(Source("folder", "runner.data.sources.folder:load_folder", needs_manifest=False))
register_source(Source("manifest", "runner.data.sources.manifest:load_manifest",
                       needs_label_column=True, metadata=True))  # fmt: skip
register_source(Source("labels_json", "runner.data.sources.labels_json:load_labels_json"))
register_source(Source("feature_table", "runner.data.sources.feature_table:load_feature_table",
                       metadata=True, audio=False))  # fmt: skip
