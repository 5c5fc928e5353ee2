"""Audio loading, segmenting, librosa feature extractors, the feature table and its cache.

Public API::

    build_table(clips, features, segments, *, cache_dir, n_jobs=1, progress=True) -> FeatureTable
    extract_signal(y, sr, features, segments) -> (DataFrame, mel images | None)
    decode_audio(source, sample_rate) -> np.ndarray
    segment_signal(y, sr, segments) -> list[np.ndarray]

Extractors are registered in :data:`FEATURES` with :func:`register_feature`.
"""

from features._registry import FEATURES, ensure_loaded, register_feature
from features.audio import decode_audio
from features.build import build_table
from features.config import ALL_EXTRACTORS, VOICE_EXTRACTORS, FeaturesSpec, SegmentsSpec
from features.context import SpectralContext
from features.extract import extract_signal, feature_layout
from features.segments import segment_signal
from features.table import FeatureTable

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
