"""Audio loading, segmenting, librosa feature extractors, the feature table and its cache.

Public API::

    build_table(clips, features, segments, *, cache_dir, n_jobs=1, progress=True) -> FeatureTable
    extract_signal(y, sr, features, segments) -> (DataFrame, mel images | None)
    decode_audio(source, sample_rate) -> np.ndarray
    segment_signal(y, sr, segments) -> list[np.ndarray]

Extractors are registered in :data:`FEATURES` with :func:`register_feature`.
"""

from __future__ import annotations

import importlib
from typing import Any

from features._atomic import TEMP_PREFIX, atomic_write
from features._registry import (
    BUILTIN,
    FEATURES,
    ensure_loaded,
    extractor_files,
    file_artifact,
    register_feature,
    settings_problems,
)
from features.config import ALL_EXTRACTORS, VOICE_EXTRACTORS, FeaturesSpec, SegmentsSpec

# The rest loads librosa, scipy and pandas: imported on first use, so that the spec (and with
# it `audioml validate`) reads its configuration models without them.
_LAZY = {
    "FeatureTable": "features.table",
    "SpectralContext": "features.context",
    "build_table": "features.build",
    "decode_audio": "features.audio",
    "extract_signal": "features.extract",
    "feature_layout": "features.extract",
    "segment_signal": "features.segments",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'features' has no attribute {name!r}")


__all__ = [
    "ALL_EXTRACTORS",
    "BUILTIN",
    "FEATURES",
    "TEMP_PREFIX",
    "VOICE_EXTRACTORS",
    "FeatureTable",
    "FeaturesSpec",
    "SegmentsSpec",
    "SpectralContext",
    "atomic_write",
    "build_table",
    "decode_audio",
    "ensure_loaded",
    "extract_signal",
    "extractor_files",
    "feature_layout",
    "file_artifact",
    "register_feature",
    "segment_signal",
    "settings_problems",
]
