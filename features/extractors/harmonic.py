"""Harmonic-to-noise ratio per frame, from the shared power STFT.

Definition (Boersma 1993, "Accurate short-term analysis of the fundamental frequency and the
harmonics-to-noise ratio of a sampled sound", with integer lags): for each STFT frame the
autocorrelation is the inverse FFT of the frame's power spectrum (Wiener-Khinchin), with the
DC bin's constant contribution removed. It is normalised by its lag-0 value and divided by the
autocorrelation of the Hann window, which undoes the window's taper. ``r`` is the largest
normalised value at a lag within the pitch range 50-1000 Hz, clipped to [1e-6, 1 - 1e-6], and

    hnr = 10 * log10(r / (1 - r))   # dB, in [-60, 60]

A periodic frame gives ``r`` close to 1 (high HNR), noise gives ``r`` near 0 (negative HNR),
a silent frame is defined as -60 dB. The autocorrelation is circular over ``n_fft`` samples;
the window's own (equally circular) autocorrelation compensates most of that.

This costs one inverse FFT of the shared spectrum instead of the harmonic/percussive median
filtering (HPSS) that notebook code often uses for the same purpose.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.signal

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["F0_MAX", "F0_MIN", "hnr"]

F0_MIN = 50.0
F0_MAX = 1000.0
_R_CLIP = 1e-6


@lru_cache(maxsize=8)
def _window_autocorr(n_fft: int) -> np.ndarray:
    """Normalised circular autocorrelation of librosa's periodic Hann window."""
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(window)) ** 2, n=n_fft)
    return ac / ac[0]


def _lag_range(sr: int, n_fft: int) -> tuple[int, int]:
    low = max(2, int(sr / F0_MAX))
    high = min(n_fft // 2, int(np.ceil(sr / F0_MIN)))
    return low, max(low, high)


@register_feature("hnr")
def hnr(ctx: SpectralContext) -> np.ndarray:
    """Harmonic-to-noise ratio in dB per frame ``(n_frames,)`` (see the module docstring)."""
    low, high = _lag_range(ctx.sr, ctx.n_fft)
    power = ctx.power
    ac = np.fft.irfft(power, n=ctx.n_fft, axis=0)[: high + 1]
    # The DC bin adds power[0] / n_fft at every lag: remove the frame's mean like Praat does.
    ac = ac - power[0] / ctx.n_fft
    energy = ac[0]
    silent = energy <= 1e-20
    norm = ac[low : high + 1] / np.where(silent, 1.0, energy)
    best = (norm / _window_autocorr(ctx.n_fft)[low : high + 1, np.newaxis]).max(axis=0)
    best = np.clip(np.where(silent, _R_CLIP, best), _R_CLIP, 1.0 - _R_CLIP)
    return 10.0 * np.log10(best / (1.0 - best))
