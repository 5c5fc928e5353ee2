"""Pitch-class features from the shared power STFT."""

from __future__ import annotations

import warnings

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["chroma"]


@register_feature("chroma")
def chroma(ctx: SpectralContext) -> np.ndarray:
    """Chromagram ``(12, n_frames)``, rows C, C#, ..., B.

    Equals ``librosa.feature.chroma_stft(y=...)`` including its tuning estimate, which is
    made from the same shared power spectrum. A segment without any pitched peak (e.g.
    silence) gets tuning 0, as librosa does, without its warning for every such segment.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to estimate tuning")
        return librosa.feature.chroma_stft(S=ctx.power, sr=ctx.sr)
