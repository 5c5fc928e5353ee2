"""Time-domain features: framed like the STFT (``n_fft`` samples every ``hop_length``)."""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["rms", "zcr"]


@register_feature("zcr")
def zcr(ctx: SpectralContext) -> np.ndarray:
    """Zero-crossing rate per frame ``(n_frames,)``; equals
    ``librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)``.

    librosa marks crossings inside every (overlapping) frame, i.e. ``n_fft / hop`` times per
    sample. Marking them once on the edge-padded signal and differencing a running count
    gives the same per-frame counts in one pass.
    """
    half = ctx.n_fft // 2
    padded = np.pad(ctx.y, half, mode="edge")
    # crossing[k]: between samples k-1 and k; a frame starting at s counts k in (s, s+n_fft).
    counts = np.cumsum(librosa.zero_crossings(padded, pad=False), dtype=np.int64)
    starts = np.arange(1 + (len(padded) - ctx.n_fft) // ctx.hop_length) * ctx.hop_length
    return (counts[starts + ctx.n_fft - 1] - counts[starts]) / ctx.n_fft


@register_feature("rms")
def rms(ctx: SpectralContext) -> np.ndarray:
    """Root-mean-square amplitude of the raw signal per frame ``(n_frames,)``.

    Computed from the waveform, not the windowed STFT, so it equals
    ``librosa.feature.rms(y=...)`` (a cheap strided pass, no extra transform).
    """
    return librosa.feature.rms(y=ctx.y, frame_length=ctx.n_fft, hop_length=ctx.hop_length)[0]
