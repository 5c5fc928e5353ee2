"""Cepstral features: MFCCs and their deltas, from the shared dB mel spectrogram."""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["delta_mfcc", "mfcc"]

# librosa.feature.delta's default window; shorter segments use the largest odd width that fits.
_DELTA_WIDTH = 9


@register_feature("mfcc")
def mfcc(ctx: SpectralContext) -> np.ndarray:
    """MFCCs ``(n_mfcc, n_frames)``; equals ``librosa.feature.mfcc(y=...)``."""
    return ctx.mfcc


@register_feature("delta_mfcc")
def delta_mfcc(ctx: SpectralContext) -> np.ndarray:
    """First-order MFCC deltas ``(n_mfcc, n_frames)`` (``librosa.feature.delta``, width 9).

    Segments with fewer than 9 frames use the largest odd width that fits; with fewer than 3
    frames there is no slope to estimate and the deltas are 0.
    """
    n_frames = ctx.mfcc.shape[1]
    width = min(_DELTA_WIDTH, n_frames if n_frames % 2 else n_frames - 1)
    if width < 3:
        return np.zeros_like(ctx.mfcc)
    return librosa.feature.delta(ctx.mfcc, width=width)
