"""Tempo and beat statistics from the onset envelope of the shared mel spectrogram."""

from __future__ import annotations

import librosa
import numpy as np

from features._registry import register_feature
from features.context import SpectralContext

__all__ = ["tempo"]


@register_feature("tempo")
def tempo(ctx: SpectralContext) -> dict[str, float]:
    """Global tempo and beat-synchronous statistics of one segment (scalars, not frames).

    Columns (not summarised by the table's statistics):

    * ``tempo_bpm``: ``librosa.beat.beat_track``'s tempo estimate, which equals
      ``librosa.feature.tempo(y=...)`` when ``n_mels`` is 128 (librosa's onset default).
    * ``tempo_beat_strength``: mean onset strength at the tracked beats divided by the mean
      onset strength (pulse clarity; 1 means beats are no stronger than the average frame).
    * ``tempo_beat_interval_std``: standard deviation of the intervals between beats in s.

    Fewer than one beat (two for the interval) gives 0 for the beat statistics.
    """
    onset = ctx.onset_envelope
    bpm, beats = librosa.beat.beat_track(
        onset_envelope=onset, sr=ctx.sr, hop_length=ctx.hop_length
    )
    mean_onset = float(onset.mean())
    strength = float(onset[beats].mean()) / mean_onset if len(beats) and mean_onset > 0 else 0.0
    intervals = np.diff(beats) * ctx.hop_length / ctx.sr
    return {
        "bpm": float(np.atleast_1d(bpm)[0]),
        "beat_strength": strength,
        "beat_interval_std": float(intervals.std()) if len(intervals) > 1 else 0.0,
    }
