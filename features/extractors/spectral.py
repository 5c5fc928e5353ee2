"""Spectral shape features from the shared STFT magnitude.

Each equals the librosa function called on the raw signal with the same ``n_fft`` and
``hop_length`` (librosa computes a magnitude STFT for all of them).
"""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["bandwidth", "centroid", "contrast_bands", "flatness", "rolloff", "spectral_contrast"]

_ROLL_PERCENT = 0.85
_CONTRAST_FMIN = 200.0
_CONTRAST_BANDS = 6


@register_feature("centroid")
def centroid(ctx: SpectralContext) -> np.ndarray:
    """Spectral centroid in Hz ``(n_frames,)``."""
    return ctx.centroid


@register_feature("bandwidth")
def bandwidth(ctx: SpectralContext) -> np.ndarray:
    """Spectral bandwidth (p=2) in Hz ``(n_frames,)``; equals
    ``librosa.feature.spectral_bandwidth(y=...)``.

    librosa builds a (bins x frames) matrix of squared deviations from the centroid. For p=2
    the same value is ``sqrt(E[f^2] - E[f]^2)`` under the normalised magnitude: two
    matrix-vector products in float64 (no cancellation problem at audio frequencies).
    Silent frames get 0, as in librosa.
    """
    silent = ctx.mag_total <= np.finfo(ctx.mag.dtype).tiny
    second = np.einsum("f,ft->t", ctx.freqs**2, ctx.mag) / np.where(silent, 1.0, ctx.mag_total)
    variance = second - ctx.centroid**2
    return np.where(silent, 0.0, np.sqrt(np.maximum(variance, 0.0)))


@register_feature("rolloff")
def rolloff(ctx: SpectralContext) -> np.ndarray:
    """Frequency below which 85 % of the spectral magnitude lies, in Hz ``(n_frames,)``.

    Equals ``librosa.feature.spectral_rolloff(y=...)``: the first bin whose cumulative
    magnitude reaches 85 % of the total. librosa masks with NaN and takes ``nanmin``;
    the running sum is monotone, so counting the bins below the threshold is the same.
    Silent frames give 0 Hz, as in librosa.
    """
    cumulative = np.cumsum(ctx.mag, axis=0)  # same float32 sums as librosa
    threshold = _ROLL_PERCENT * cumulative[-1]
    first = np.count_nonzero(cumulative < threshold, axis=0)
    return ctx.freqs[np.minimum(first, len(ctx.freqs) - 1)]


@register_feature("flatness")
def flatness(ctx: SpectralContext) -> np.ndarray:
    """Spectral flatness (geometric / arithmetic mean of power) ``(n_frames,)``."""
    return librosa.feature.spectral_flatness(S=ctx.mag)[0]


def contrast_bands(sr: int) -> int:
    """Octave bands of spectral contrast that fit below Nyquist: 6 (librosa's default) from
    12.8 kHz up, fewer at low rates (5 at 8 kHz)."""
    bands = _CONTRAST_BANDS
    while bands > 1 and _CONTRAST_FMIN * 2.0 ** (bands - 1) >= sr / 2:
        bands -= 1
    return bands


@register_feature("spectral_contrast")
def spectral_contrast(ctx: SpectralContext) -> np.ndarray:
    """Octave-band spectral contrast in dB ``(n_bands + 1, n_frames)``; 7 rows at 22.05 kHz."""
    return librosa.feature.spectral_contrast(S=ctx.mag, sr=ctx.sr, n_bands=contrast_bands(ctx.sr))
