"""Beat tracking on an onset envelope, on numpy: librosa.beat.beat_track's algorithm.

``import librosa.beat`` compiles librosa's numba kernels in every new process (one of them is
declared ``cache=False``, so numba's cache cannot help): about 2-3 s before the first beat in
each feature worker, served model and CLI run. This module computes the same thing with numpy
(Ellis 2007, "Beat tracking by dynamic programming", as librosa 0.11 implements it), so the
beat path never imports ``librosa.beat``:

1. tempo: ``librosa.feature.tempo`` on the envelope (autocorrelation tempogram with a
   log-normal prior around 120 bpm; plain numpy inside librosa);
2. local score: the envelope divided by its standard deviation, convolved with a Gaussian
   of +/- one beat period (librosa's loop leaves out the envelope's first frame; so does this);
3. the dynamic program: each frame's best predecessor between half and two beat periods
   back, penalised by ``tightness * log(interval / period)**2``. A frame only depends on
   frames at least half a period back, so blocks of half a period are solved at once;
4. the last beat (the last local maximum of the cumulative score above half the median of
   the maxima), back-linking, and trimming of weak leading and trailing beats.

``beat_track`` equals ``librosa.beat.beat_track(onset_envelope=..., sr=..., hop_length=...)``
(tempo and beat frames; tests/features/test_beat.py checks both).
"""

from __future__ import annotations

import librosa
import numpy as np

__all__ = ["TIGHTNESS", "beat_track", "sync_frames"]

TIGHTNESS = 100.0


def _local_score(onsets: np.ndarray, period: float) -> np.ndarray:
    norm = onsets / (onsets.std(ddof=1) + np.finfo(onsets.dtype).tiny)
    lags = np.arange(-period, period + 1)
    window = np.exp(-0.5 * (lags * 32.0 / period) ** 2)
    shifted = norm.astype(np.float64)
    shifted[0] = 0.0  # librosa's convolution loop never reaches the first frame
    # The centred slice of the full convolution: mode="same" returns the window's length
    # when the window (2 periods + 1) is longer than the envelope (a short segment).
    half = len(window) // 2
    full = np.convolve(shifted, window, mode="full")
    return full[half : half + len(onsets)].astype(onsets.dtype)


def _dynamic_program(score: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Back-links and cumulative scores (librosa's ``__beat_track_dp``), block-vectorised."""
    n = len(score)
    near = max(1, int(np.round(period / 2)))
    far = int(2 * period)
    lags = np.arange(near, far + 1)  # nearest first: ties go to the latest predecessor
    penalty = TIGHTNESS * (np.log(lags) - np.log(period)) ** 2
    cumscore = np.zeros(n, dtype=score.dtype)
    backlink = np.full(n, -1, dtype=np.int64)
    score64 = score.astype(np.float64)
    for start in range(0, n, near):
        frames = np.arange(start, min(start + near, n))
        locs = frames[:, np.newaxis] - lags[np.newaxis, :]
        valid = locs >= 0
        candidates = np.where(valid, cumscore[np.maximum(locs, 0)] - penalty, -np.inf)
        best = np.argmax(candidates, axis=1)
        found = valid[np.arange(len(frames)), best]
        best_score = candidates[np.arange(len(frames)), best]
        cumscore[frames] = np.where(found, score64[frames] + best_score, score64[frames])
        backlink[frames] = np.where(found, locs[np.arange(len(frames)), best], -1)
    # Until the first frame above 1 % of the best local score there is no back-link.
    above = np.flatnonzero(score >= 0.01 * score.max())
    first = int(above[0]) if len(above) else n
    backlink[:first] = -1
    return backlink, cumscore


def _last_beat(cumscore: np.ndarray) -> int:
    padded = np.pad(cumscore, 1, mode="edge")
    peaks = (padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:])
    if not peaks.any():
        return len(cumscore) - 1
    threshold = 0.5 * np.median(cumscore[peaks])
    good = np.flatnonzero(peaks & (cumscore >= threshold))
    return int(good[-1]) if len(good) else len(cumscore) - 1


def _trim(score: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Drop beats in the weak lead-in and tail (below half the RMS of the beat scores)."""
    # librosa slices the full convolution from 2 to the number of frames, i.e. to its end.
    smooth = np.convolve(score[beats], np.hanning(5))[2:]
    threshold = 0.5 * np.sqrt(np.mean(smooth**2)) if len(smooth) else 0.0
    strong = np.flatnonzero(score > threshold)
    if not len(strong):
        return beats[:0]
    return beats[(beats >= strong[0]) & (beats <= strong[-1])]


def beat_track(onset: np.ndarray, sr: int, hop_length: int) -> tuple[float, np.ndarray]:
    """Tempo in bpm and beat frame indices of one onset envelope.

    Returns ``(0.0, [])`` for an envelope without any onset, as librosa does.
    """
    if not onset.any():
        return 0.0, np.array([], dtype=np.int64)
    bpm = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop_length)[0])
    period = float(np.round(sr / hop_length * 60.0 / bpm))
    score = _local_score(onset, period)
    backlink, cumscore = _dynamic_program(score, period)
    beats = []
    frame = _last_beat(cumscore)
    while frame >= 0:
        beats.append(frame)
        frame = int(backlink[frame])
    return bpm, _trim(score, np.array(beats[::-1], dtype=np.int64))


def sync_frames(frames: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Mean of ``(n_rows, n_frames)`` within each beat interval ``(n_rows, n_beats + 1)``.

    Intervals run from frame 0 to the first beat, between beats, and from the last beat to
    the end: ``librosa.util.sync(frames, beats, aggregate=np.mean)`` as one reduceat.
    """
    n = frames.shape[-1]
    bounds = np.unique(np.r_[0, np.clip(beats, 0, n)])
    bounds = bounds[bounds < n]
    sums = np.add.reduceat(frames, bounds, axis=-1)
    return sums / np.diff(np.r_[bounds, n])
