"""Log-mel band energies from the shared mel spectrogram."""

from __future__ import annotations

import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["mel"]


@register_feature("mel")
def mel(ctx: SpectralContext) -> np.ndarray:
    """Log-mel band energies in dB ``(n_mels, n_frames)`` (columns ``mel_<band>_<stat>``).

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(y=..., n_mels=n_mels))``
    (ref 1.0, top_db 80): the spectrogram MFCCs are computed from. Mean log-mel band energy
    is the simplest speaker-gender baseline; 128 bands x the statistics is a wide table, so
    ``features.n_mels: 40`` is a common choice for this extractor.
    """
    return ctx.mel_db
