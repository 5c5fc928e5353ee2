"""Tempo, beat and onset (spectral flux) features from the shared mel spectrogram."""

from __future__ import annotations

import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["onset", "tempo"]


@register_feature("tempo")
def tempo(ctx: SpectralContext) -> dict[str, float]:
    """Global tempo and beat-synchronous statistics of one segment (scalars, not frames).

    Columns (not summarised by the table's statistics):

    * ``tempo_bpm``: the tempo estimate of ``librosa.beat.beat_track``, which equals
      ``librosa.feature.tempo(y=...)`` when ``n_mels`` is 128 (librosa's onset default);
      beats come from ``features.beat`` (the same tracker on numpy, no numba compilation).
    * ``tempo_beat_strength``: mean onset strength at the tracked beats divided by the mean
      onset strength (pulse clarity; 1 means beats are no stronger than the average frame).
    * ``tempo_beat_interval_std``: standard deviation of the intervals between beats in s.

    Fewer than one beat (two for the interval) gives 0 for the beat statistics.
    """
    onset_env = ctx.onset_envelope
    bpm, beats = ctx.beats
    mean_onset = float(onset_env.mean())
    strength = (
        float(onset_env[beats].mean()) / mean_onset if len(beats) and mean_onset > 0 else 0.0
    )
    intervals = np.diff(beats) * ctx.hop_length / ctx.sr
    return {
        "bpm": bpm,
        "beat_strength": strength,
        "beat_interval_std": float(intervals.std()) if len(intervals) > 1 else 0.0,
    }


@register_feature("onset")
def onset(ctx: SpectralContext) -> np.ndarray:
    """Onset strength (spectral flux of the dB mel spectrogram) per frame ``(n_frames,)``.

    Equals ``librosa.onset.onset_strength(y=..., sr=...)``: the mean over mel bands of the
    positive first difference of ``mel_db``; the envelope the beat tracker reads.
    """
    return ctx.onset_envelope
