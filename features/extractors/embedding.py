"""A pretrained network's embedding: any ONNX model, waveform in, embedding out.

Configured under ``features.embedding`` (:class:`features.config.EmbeddingSpec`). Per
segment: the samples are resampled once to ``embedding.sample_rate`` (soxr, as decoding
does), cut into windows of ``window_s`` every ``hop_s`` (``features.onnx_model.frame_windows``:
a segment shorter than a window is one window), run through the model ``batch_size`` windows
at a time, and each embedding dimension is pooled over the windows with ``pooling`` (mean,
std, max).

Columns: ``embedding_<k>_<stat>`` with a three-digit 0-based dimension (``embedding_000_mean``,
``embedding_000_std``, ``embedding_001_mean``, ...), not summarised again by
``features.stats``. They form the feature group ``embedding``, which the feature-group search
switches on and off like the handcrafted groups.

The session is this process's own, loaded on first use and kept
(``features.onnx_model.load_session``), with intra-op threads set to the cores divided by
``features.n_jobs`` extraction processes. Does not read the shared STFT.
"""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext
from features.onnx_model import (
    embed_windows,
    frame_windows,
    load_session,
    resolve_model_path,
    threads_for,
)

__all__ = ["embedding", "embedding_matrix"]

_POOL = {"mean": np.mean, "std": np.std, "max": np.max}


def embedding_matrix(ctx: SpectralContext) -> np.ndarray:
    """The model's embedding of every window of the segment, ``(n_windows, dim)`` float64.

    Raises:
        ValueError: the context carries no ``features.embedding`` config.
    """
    features = ctx.features
    if features is None or features.embedding is None:
        raise ValueError("extractor 'embedding' needs features.embedding (see docs/embeddings.md)")
    spec = features.embedding
    session, signature = load_session(resolve_model_path(spec.model), threads_for(features.n_jobs))
    y = ctx.y
    if ctx.sr != spec.sample_rate:
        y = librosa.resample(y, orig_sr=ctx.sr, target_sr=spec.sample_rate, res_type="soxr_hq")
    windows = frame_windows(y, spec.sample_rate, spec.window_s, spec.hop, signature.samples)
    return embed_windows(session, signature, windows, spec.batch_size)


@register_feature("embedding")
def embedding(ctx: SpectralContext) -> dict[str, float]:
    """Each embedding dimension pooled over the windows: ``{"<k>_<stat>": value}``."""
    matrix = embedding_matrix(ctx)
    pooling = ctx.features.embedding.pooling  # type: ignore[union-attr]  # checked above
    pooled = {stat: _POOL[stat](matrix, axis=0) for stat in pooling}
    return {
        f"{k:03d}_{stat}": float(pooled[stat][k])
        for k in range(matrix.shape[1])
        for stat in pooling
    }
