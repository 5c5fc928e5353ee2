"""Fundamental frequency by YIN on the shared framing: level, spread, range, voicing, jitter.

Frames are the STFT's (``n_fft`` samples every ``hop_length``, centred, zero padded), so
frame ``t`` of f0 lines up with frame ``t`` of every other extractor. Per frame, f0 is
``librosa.yin(y, fmin=50, fmax=1000, sr=sr, frame_length=n_fft, hop_length=hop)``: the
first dip of the cumulative mean normalised difference below 0.1 (else its global minimum),
refined by parabolic interpolation. The depth of that dip is the frame's aperiodicity (0 for
a perfectly periodic frame, about 1 for noise); a frame is voiced when it is below
:data:`VOICED_APERIODICITY` and the frame is not silent (RMS within 50 dB of the loudest).

Columns (scalars per segment, f0 in Hz, over voiced frames; all 0 when none is voiced):

* ``pitch_f0_mean_hz``, ``pitch_f0_median_hz``, ``pitch_f0_std_hz``;
* ``pitch_f0_range_hz``: 95th minus 5th percentile (robust to single octave errors);
* ``pitch_f0_std_semitones``: spread on the log scale, comparable across voices;
* ``pitch_voiced_fraction``: voiced frames / frames;
* ``pitch_jitter_local``: mean absolute difference of the periods of consecutive voiced
  frames divided by the mean period (Praat's "jitter (local)" formula applied to frame
  periods rather than glottal cycles: it measures frame-to-frame period perturbation).

pYIN would give voicing probabilities but costs about 30 times more per frame.
"""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext
from features.extractors.harmonic import F0_MAX, F0_MIN

__all__ = ["TROUGH_THRESHOLD", "VOICED_APERIODICITY", "pitch", "yin_frames"]

TROUGH_THRESHOLD = 0.1  # librosa.yin's default
VOICED_APERIODICITY = 0.2
_SILENT_DB = 50.0


def _cmnd(frames: np.ndarray, min_period: int, max_period: int) -> np.ndarray:
    """YIN's cumulative mean normalised difference (equation 8 of de Cheveigné and Kawahara,
    2002) of ``frames`` ``(frame_length, n_frames)`` for lags ``min_period..max_period``."""
    acf = librosa.autocorrelate(frames, max_size=max_period + 1, axis=0)
    energy = np.cumsum(np.square(frames), axis=0)
    energy[0] = 0.0  # as librosa.yin computes it, so that f0 stays librosa's to the bit
    lags = np.arange(1, max_period + 1)
    # d(k) = 2 (ACF(0) - ACF(k)) - sum_{m<k} y(m)^2, with d(0) = 0
    diff = 2.0 * (acf[:1] - acf[1 : max_period + 1]) - energy[:max_period]
    mean = np.cumsum(diff, axis=0) / lags[:, None]
    numerator = diff[min_period - 1 : max_period]
    denominator = mean[min_period - 1 : max_period]
    return numerator / (denominator + np.finfo(denominator.dtype).tiny)


def _parabolic_shift(cmnd: np.ndarray) -> np.ndarray:
    """Offset of the parabola through each lag and its two neighbours (0 at the edges, and
    where the optimum would lie more than one lag away)."""
    shifts = np.zeros_like(cmnd)
    prev, mid, nxt = cmnd[:-2], cmnd[1:-1], cmnd[2:]
    a = nxt + prev - 2.0 * mid
    b = (nxt - prev) / 2.0
    inside = np.abs(b) < np.abs(a)
    np.divide(-b, a, out=shifts[1:-1], where=inside)
    return shifts


def yin_frames(ctx: SpectralContext) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz and aperiodicity per frame, both ``(n_frames,)``; f0 equals ``librosa.yin``."""
    sr, frame_length = ctx.sr, ctx.n_fft
    fmax = min(F0_MAX, sr / 4)
    half = frame_length // 2
    padded = np.pad(ctx.y, (half, half))
    frames = librosa.util.frame(padded, frame_length=frame_length, hop_length=ctx.hop_length)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / F0_MIN)), frame_length - 1)
    cmnd = _cmnd(frames, min_period, max_period)
    shifts = _parabolic_shift(cmnd)
    trough = np.zeros(cmnd.shape, dtype=bool)
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    trough[-1] = cmnd[-1] < cmnd[-2]  # librosa.util.localmin's edge rule
    trough[0] = cmnd[0] < cmnd[1]
    below = trough & (cmnd < TROUGH_THRESHOLD)
    period = np.where(below.any(axis=0), np.argmax(below, axis=0), np.argmin(cmnd, axis=0))
    columns = np.arange(cmnd.shape[1])
    aperiodicity = cmnd[period, columns]
    f0 = sr / (min_period + period + shifts[period, columns])
    return f0, aperiodicity


def _voiced(ctx: SpectralContext, aperiodicity: np.ndarray) -> np.ndarray:
    frames = librosa.util.frame(
        np.pad(ctx.y, ctx.n_fft // 2), frame_length=ctx.n_fft, hop_length=ctx.hop_length
    )
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=0))
    loud = rms > rms.max() * 10.0 ** (-_SILENT_DB / 20.0)
    return (aperiodicity < VOICED_APERIODICITY) & loud


@register_feature("pitch")
def pitch(ctx: SpectralContext) -> dict[str, float]:
    """f0 statistics over voiced frames (see the module docstring); scalars, in Hz."""
    f0, aperiodicity = yin_frames(ctx)
    voiced = _voiced(ctx, aperiodicity)
    out = dict.fromkeys(
        ("f0_mean_hz", "f0_median_hz", "f0_std_hz", "f0_range_hz", "f0_std_semitones"), 0.0
    )
    out["voiced_fraction"] = float(voiced.mean())
    out["jitter_local"] = 0.0
    if not voiced.any():
        return out
    hz = f0[voiced].astype(np.float64)
    p5, median, p95 = np.percentile(hz, [5.0, 50.0, 95.0])
    out.update(
        f0_mean_hz=float(hz.mean()),
        f0_median_hz=float(median),
        f0_std_hz=float(hz.std()),
        f0_range_hz=float(p95 - p5),
        f0_std_semitones=float(np.std(12.0 * np.log2(hz))),
    )
    periods = 1.0 / f0.astype(np.float64)
    pairs = voiced[1:] & voiced[:-1]
    if pairs.any():
        diffs = np.abs(np.diff(periods))[pairs]
        out["jitter_local"] = float(diffs.mean() / periods[voiced].mean())
    return out
