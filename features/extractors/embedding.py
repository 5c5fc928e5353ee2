"""A pretrained network's embedding: any ONNX model, waveform in, embedding out.

Configured under ``features.embedding`` (:class:`features.config.EmbeddingSpec`). Per
segment: the samples are resampled once to ``embedding.sample_rate`` (soxr, as decoding
does), cut into windows of ``window_s`` every ``hop_s`` (``features.windows.frame_windows``:
a segment shorter than a window is one window), run through the model ``batch_size`` windows
at a time, and each embedding dimension is pooled over the windows with ``pooling`` (mean,
std, max).

Columns: ``embedding_<k>_<stat>`` with a three-digit 0-based dimension (``embedding_000_mean``,
``embedding_000_std``, ``embedding_001_mean``, ...), not summarised again by
``features.stats``. They form the feature group ``embedding``, which the feature-group search
switches on and off like the handcrafted groups.

The session is this process's own, loaded on first use and kept
(``features.onnx_model.load_session``), with intra-op threads set to the cores divided by
``features.n_jobs``, which the build sets to the extraction processes it starts. Does not
read the shared STFT.

Importing this module loads neither librosa nor onnxruntime (numpy only): validation
imports it to ask the record's check (``features._registry.Builtin.light``).

Batch form (:func:`embedding_many`): the build hands it the segments of many clips at once
(``features.batch``), and the windows of all of them go through the session together,
``batch_size`` per run, so short clips of one window each still fill the batches. Windows of
one length run together (a segment shorter than a window is a window of its own length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from features._registry import register_feature
from features.onnx_model import (
    describe_model,
    load_session,
    model_check,
    model_files,
    model_stamp,
    resolve_model_path,
    threads_for,
)
from features.windows import embed_windows, window_views

if TYPE_CHECKING:
    from features.config import EmbeddingSpec
    from features.context import SpectralContext

__all__ = ["embedding", "embedding_many", "embedding_matrices"]

_POOL = {"mean": np.mean, "std": np.std, "max": np.max}


def _windows(ctx: SpectralContext, spec: EmbeddingSpec, fixed: int | None) -> list[np.ndarray]:
    import librosa  # here, not above: validation imports this module (see the docstring)

    y = ctx.y
    if ctx.sr != spec.sample_rate:
        y = librosa.resample(y, orig_sr=ctx.sr, target_sr=spec.sample_rate, res_type="soxr_hq")
    return window_views(y, spec.sample_rate, spec.window_s, spec.hop, fixed)


def embedding_matrices(contexts: Sequence[SpectralContext]) -> list[np.ndarray]:
    """The model's embedding of every window of each segment, ``(n_windows, dim)`` float64
    each; the windows of all segments go through the session together.

    Raises:
        ValueError: the contexts carry no ``features.embedding`` config.
    """
    if not contexts:
        return []
    features = contexts[0].features
    if features is None or features.embedding is None:
        raise ValueError("extractor 'embedding' needs features.embedding (see docs/embeddings.md)")
    spec = features.embedding
    session, signature = load_session(resolve_model_path(spec.model), threads_for(features.n_jobs))
    windows = [_windows(ctx, spec, signature.samples) for ctx in contexts]
    by_length: dict[int, list[int]] = {}
    for i, parts in enumerate(windows):  # a segment's parts share one window length
        by_length.setdefault(parts[0].shape[1], []).append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(contexts)
    for members in by_length.values():
        group = [part for i in members for part in windows[i]]
        embedded = embed_windows(session, signature, group, spec.batch_size)
        ends = np.cumsum([sum(len(part) for part in windows[i]) for i in members])
        for i, part in zip(members, np.split(embedded, ends[:-1]), strict=True):
            out[i] = part
    return out


def _pooled(matrix: np.ndarray, pooling: Sequence[str]) -> dict[str, float]:
    pooled = {stat: _POOL[stat](matrix, axis=0) for stat in pooling}
    return {
        f"{k:03d}_{stat}": float(pooled[stat][k])
        for k in range(matrix.shape[1])
        for stat in pooling
    }


def embedding_many(contexts: Sequence[SpectralContext]) -> list[dict[str, float]]:
    """:func:`embedding` of each context, the windows of all of them run together."""
    matrices = embedding_matrices(contexts)
    if not matrices:
        return []
    pooling = contexts[0].features.embedding.pooling  # type: ignore[union-attr]  # checked
    return [_pooled(matrix, pooling) for matrix in matrices]


@register_feature(
    "embedding", batch=embedding_many, stamp=model_stamp, check=model_check, files=model_files,
    describe=describe_model,
)  # fmt: skip
def embedding(ctx: SpectralContext) -> dict[str, float]:
    """Each embedding dimension pooled over the windows: ``{"<k>_<stat>": value}``."""
    return embedding_many([ctx])[0]
