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

from features._registry import FEATURES, ensure_loaded, register_feature
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
    "FEATURES",
    "VOICE_EXTRACTORS",
    "FeatureTable",
    "FeaturesSpec",
    "SegmentsSpec",
    "SpectralContext",
    "build_table",
    "decode_audio",
    "ensure_loaded",
    "extract_signal",
    "feature_layout",
    "register_feature",
    "segment_signal",
]
