"""Harmonic and percussive energy: GTZAN's ``harmony_*`` and ``perceptr_*`` columns.

GTZAN's features_30_sec.csv computes ``y_harm, y_perc = librosa.effects.hpss(y)`` and keeps
the mean and variance of each separated waveform. This extractor does the same from the
shared STFT: the magnitude is median-filtered across 31 frames (harmonic) and across 31 bins
(percussive), librosa's soft masks (power 2) split the complex STFT, and one inverse STFT
per part gives the waveforms. Columns (scalars per segment):

* ``hpss_harmony_mean``, ``hpss_harmony_var``, ``hpss_perceptr_mean``,
  ``hpss_perceptr_var``: GTZAN's four columns; they equal the statistics of
  ``librosa.effects.hpss(y)`` (same n_fft and hop);
* ``hpss_harmonic_ratio_db``: harmonic over percussive energy in dB (from the masked
  spectrograms, no waveform needed).

The median filters are the cost (two passes over the spectrogram). scipy's
``ndimage.median_filter`` selects the median of every window anew (about 1 s per 30-s clip
here); :func:`median_filter` keeps each window sorted as it slides, with identical values.
It is compiled by numba once per machine (``cache=True``: the compiled code is stored next
to this module, or in the user's numba cache folder when that is read-only).
"""

from __future__ import annotations

import librosa
import numba
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["KERNEL", "hpss", "median_filter", "split"]

KERNEL = 31  # librosa.decompose.hpss's default kernel_size


@numba.njit(cache=True, nogil=True)
def _running_median(padded: np.ndarray, size: int, out: np.ndarray) -> None:  # pragma: no cover
    """Median of every ``size``-wide window along each row of ``padded`` into ``out``.

    Keeps the window sorted: each step removes the sample that leaves (binary search) and
    slides the one that enters into place, O(size) per step instead of a selection.
    """
    half = size // 2
    window = np.empty(size, dtype=padded.dtype)
    for r in range(out.shape[0]):
        row = padded[r]
        window[:] = np.sort(row[:size])
        out[r, 0] = window[half]
        for j in range(1, out.shape[1]):
            old, new = row[j - 1], row[j + size - 1]
            k = np.searchsorted(window, old)
            if new > old:
                while k + 1 < size and window[k + 1] < new:
                    window[k] = window[k + 1]
                    k += 1
            else:
                while k > 0 and window[k - 1] > new:
                    window[k] = window[k - 1]
                    k -= 1
            window[k] = new
            out[r, j] = window[half]


def median_filter(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Median over ``size`` neighbours along ``axis`` of a 2-D array, reflecting at the edges.

    Equals ``scipy.ndimage.median_filter`` with a ``size`` window on that axis and
    ``mode="reflect"`` (numpy's "symmetric" padding), for odd ``size`` and finite values.
    """
    if axis == 0:
        return median_filter(np.ascontiguousarray(x.T), size, axis=1).T
    half = size // 2
    padded = np.pad(x, ((0, 0), (half, half)), mode="symmetric")
    out = np.empty_like(x)
    _running_median(padded, size, out)
    return out


def _softmask(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``librosa.util.softmask(x, ref, power=2)``: x^2 / (x^2 + ref^2), 0.5 where both ~0."""
    scale = np.maximum(x, ref)
    silent = scale < np.finfo(x.dtype).tiny
    scale[silent] = 1.0
    mask = (x / scale) ** 2
    ref_mask = (ref / scale) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mask = mask / (mask + ref_mask)
    mask[silent] = 0.5
    return mask


def split(ctx: SpectralContext) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive complex STFTs of the segment (librosa.decompose.hpss)."""
    mag = ctx.mag
    harmonic = median_filter(mag, KERNEL, axis=1)
    percussive = median_filter(mag, KERNEL, axis=0)
    return ctx.stft * _softmask(harmonic, percussive), ctx.stft * _softmask(percussive, harmonic)


@register_feature("hpss")
def hpss(ctx: SpectralContext) -> dict[str, float]:
    """GTZAN's harmonic and percussive waveform statistics (see the module docstring)."""
    harmonic, percussive = split(ctx)
    n = len(ctx.y)
    y_harm = librosa.istft(harmonic, hop_length=ctx.hop_length, n_fft=ctx.n_fft, length=n)
    y_perc = librosa.istft(percussive, hop_length=ctx.hop_length, n_fft=ctx.n_fft, length=n)
    e_harm = float(np.sum(np.abs(harmonic) ** 2, dtype=np.float64))
    e_perc = float(np.sum(np.abs(percussive) ** 2, dtype=np.float64))
    tiny = 1e-12
    return {
        "harmony_mean": float(np.mean(y_harm, dtype=np.float64)),
        "harmony_var": float(np.var(y_harm, dtype=np.float64)),
        "perceptr_mean": float(np.mean(y_perc, dtype=np.float64)),
        "perceptr_var": float(np.var(y_perc, dtype=np.float64)),
        "harmonic_ratio_db": 10.0 * np.log10((e_harm + tiny) / (e_perc + tiny)),
    }
