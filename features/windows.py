"""Windows of a segment and their embeddings, ``batch_size`` windows per session run.

Used by the ``embedding`` extractor (``features.extractors.embedding``), whose batch form
hands :func:`embed_windows` the windows of many clips' segments at once. Windows stay strided
views of their signals (:func:`window_views`) until a batch is copied for its run, so
overlapping windows never multiply the memory of a job's audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from features.onnx_model import ModelSignature

__all__ = ["embed_windows", "frame_windows", "window_views"]


def window_views(
    y: np.ndarray, sr: int, window_s: float, hop_s: float, fixed: int | None = None
) -> list[np.ndarray]:
    """:func:`frame_windows` as strided views of ``y`` (the windows on the hop grid, then the
    tail window if any): overlapping windows are never copied."""
    win = fixed or max(1, round(window_s * sr))
    hop = max(1, round(hop_s * sr))
    if len(y) < win:
        return [(np.pad(y, (0, win - len(y))) if fixed else y)[None, :]]
    view = np.lib.stride_tricks.sliding_window_view(y, win)
    if (len(y) - win) % hop == 0:
        return [view[::hop]]
    return [view[::hop], view[-1:]]


def frame_windows(
    y: np.ndarray, sr: int, window_s: float, hop_s: float, fixed: int | None = None
) -> np.ndarray:
    """Windows ``(n_windows, samples)`` of ``y``: every ``hop_s``, plus one aligned to the end
    when the hops leave a tail uncovered. A signal shorter than one window is one window
    (zero-padded to ``fixed`` samples when the model takes a fixed length).
    """
    views = window_views(y, sr, window_s, hop_s, fixed)
    return views[0] if len(views) == 1 else np.concatenate(views)


def _batches(parts: list[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The rows of ``parts`` as if concatenated, ``size`` at a time, as contiguous float32:
    only one batch is ever copied (overlapping windows are views of their signal)."""
    pending: list[np.ndarray] = []
    count = 0
    for part in parts:
        start = 0
        while start < len(part):
            take = min(size - count, len(part) - start)
            pending.append(part[start : start + take])
            count, start = count + take, start + take
            if count == size:
                yield np.concatenate(pending, dtype=np.float32)
                pending, count = [], 0
    if pending:
        yield np.concatenate(pending, dtype=np.float32)


def embed_windows(
    session: Any,
    signature: ModelSignature,
    windows: np.ndarray | list[np.ndarray],
    batch_size: int,
) -> np.ndarray:
    """Embeddings ``(n_windows, dim)`` float64 of ``windows`` (one array, or several of one
    window length taken in order), ``batch_size`` windows per run (the model's fixed batch
    size when it has one); a frames axis is averaged."""
    batch = signature.batch or batch_size
    out = []
    for chunk in _batches([windows] if isinstance(windows, np.ndarray) else windows, batch):
        n = len(chunk)
        if signature.batch and n < batch:  # a fixed batch: pad, then drop the padding
            chunk = np.concatenate([chunk, np.zeros((batch - n, chunk.shape[1]), np.float32)])
        if len(signature.input_shape) == 3:
            chunk = chunk[:, None, :]
        (result,) = session.run([signature.output_name], {signature.input_name: chunk})
        result = np.asarray(result, dtype=np.float64)[:n]
        out.append(result.mean(axis=1) if result.ndim == 3 else result)
    return np.concatenate(out)
