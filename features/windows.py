"""Windows of a segment and their embeddings, ``batch_size`` windows per session run.

Used by the ``embedding`` extractor (``features.extractors.embedding``), whose batch form
hands :func:`embed_windows` the windows of many clips' segments at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.onnx_model import ModelSignature

__all__ = ["embed_windows", "frame_windows"]


def frame_windows(
    y: np.ndarray, sr: int, window_s: float, hop_s: float, fixed: int | None = None
) -> np.ndarray:
    """Windows ``(n_windows, samples)`` of ``y``: every ``hop_s``, plus one aligned to the end
    when the hops leave a tail uncovered. A signal shorter than one window is one window
    (zero-padded to ``fixed`` samples when the model takes a fixed length). A strided view
    of ``y`` when the hops end on its last sample, else a copy with the tail window.
    """
    win = fixed or max(1, round(window_s * sr))
    hop = max(1, round(hop_s * sr))
    if len(y) < win:
        return (np.pad(y, (0, win - len(y))) if fixed else y)[None, :]
    view = np.lib.stride_tricks.sliding_window_view(y, win)
    if (len(y) - win) % hop == 0:
        return view[::hop]
    return np.concatenate([view[::hop], view[-1:]])


def embed_windows(
    session: Any, signature: ModelSignature, windows: np.ndarray, batch_size: int
) -> np.ndarray:
    """Embeddings ``(n_windows, dim)`` float64, ``batch_size`` windows per run (the model's
    fixed batch size when it has one); a frames axis is averaged."""
    batch = signature.batch or batch_size
    out = []
    for start in range(0, len(windows), batch):
        chunk = np.ascontiguousarray(windows[start : start + batch], dtype=np.float32)
        n = len(chunk)
        if signature.batch and n < batch:  # a fixed batch: pad, then drop the padding
            chunk = np.concatenate([chunk, np.zeros((batch - n, chunk.shape[1]), np.float32)])
        if len(signature.input_shape) == 3:
            chunk = chunk[:, None, :]
        (result,) = session.run([signature.output_name], {signature.input_name: chunk})
        result = np.asarray(result, dtype=np.float64)[:n]
        out.append(result.mean(axis=1) if result.ndim == 3 else result)
    return np.concatenate(out)
