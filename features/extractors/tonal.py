"""Pitch-class and tonal-centroid features from the shared chromagram."""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["chroma", "tonnetz"]


@register_feature("chroma")
def chroma(ctx: SpectralContext) -> np.ndarray:
    """Chromagram ``(12, n_frames)``, rows C, C#, ..., B; equals
    ``librosa.feature.chroma_stft(y=...)``."""
    return ctx.chroma


@register_feature("tonnetz")
def tonnetz(ctx: SpectralContext) -> np.ndarray:
    """Tonal centroid features ``(6, n_frames)`` (Harte et al. 2006) of the shared chromagram.

    Equals ``librosa.feature.tonnetz(chroma=librosa.feature.chroma_stft(y=...))``. librosa's
    own default starts from a constant-Q chromagram, a second transform per segment; the
    STFT chromagram is what ``chroma`` already computed. Rows: fifths (x, y), minor thirds
    (x, y), major thirds (x, y).
    """
    return librosa.feature.tonnetz(chroma=ctx.chroma, sr=ctx.sr)
