"""Ten synthetic music genres, GTZAN's names, from the demo generator's instruments.

Each genre is a distribution over the same knobs (tempo, mode, drum pattern and level,
distortion, pad and melody, a rapped voice, noise), with ranges that overlap between genres
the way rock, metal and country or disco and pop overlap in GTZAN: no single feature
separates them, and a clip drawn near a neighbour's range sounds like the neighbour.
"""

from __future__ import annotations

import numpy as np

from runner.data.demo_data import MAJOR, MINOR, _chords, _drums, _melody, _with_noise, synth_speech

__all__ = ["GENRES", "synth_genre"]

#: name: (bpm range, P(major), P(drums), drum level, distortion range, P(four on the
#: floor), chord level, P(sparse melody), P(voice), noise SNR range in dB)
GENRES: dict[str, tuple] = {
    "blues": ((60, 110), 0.4, 0.7, 0.6, (0.0, 2.0), 0.0, 0.7, 0.6, 0.2, (15, 35)),
    "classical": ((50, 130), 0.6, 0.05, 0.3, (0.0, 0.0), 0.0, 1.0, 0.5, 0.0, (20, 45)),
    "country": ((85, 135), 0.85, 0.9, 0.6, (0.0, 1.0), 0.1, 0.8, 0.3, 0.3, (20, 40)),
    "disco": ((108, 132), 0.7, 1.0, 0.9, (0.0, 1.0), 0.9, 0.8, 0.1, 0.2, (20, 40)),
    "hiphop": ((75, 105), 0.35, 1.0, 1.2, (0.0, 1.5), 0.2, 0.4, 0.7, 0.8, (15, 35)),
    "jazz": ((80, 190), 0.5, 0.6, 0.35, (0.0, 0.5), 0.0, 0.9, 0.5, 0.05, (15, 40)),
    "metal": ((100, 200), 0.15, 1.0, 1.0, (3.0, 9.0), 0.3, 1.0, 0.1, 0.1, (10, 30)),
    "pop": ((90, 130), 0.75, 0.95, 0.8, (0.0, 1.5), 0.5, 0.8, 0.2, 0.5, (20, 40)),
    "reggae": ((60, 95), 0.6, 0.95, 0.7, (0.0, 1.0), 0.0, 0.7, 0.4, 0.3, (15, 35)),
    "rock": ((95, 160), 0.5, 1.0, 0.9, (1.5, 5.0), 0.2, 0.9, 0.2, 0.2, (12, 35)),
}  # fmt: skip


def _unit(y: np.ndarray) -> np.ndarray:
    return y / (np.max(np.abs(y)) + 1e-12)


def synth_genre(rng: np.random.Generator, genre: str, n: int, sr: int) -> np.ndarray:
    """One clip of ``n`` samples in ``genre`` (a key of :data:`GENRES`)."""
    bpm, major, drums, level, dist, floor, pad, sparse, voice, snr = GENRES[genre]
    beat = 60.0 / rng.uniform(*bpm)
    key = int(rng.integers(45, 58))
    scale = MAJOR if rng.random() < major else MINOR
    y = _unit(_melody(rng, n, sr, key, scale, beat, sparse=rng.random() < sparse))
    y = y + pad * rng.uniform(0.5, 1.2) * _unit(_chords(rng, n, sr, key, scale, beat))
    drive = rng.uniform(*dist)
    if drive > 0:  # overdrive on the instruments, before the drums: guitars, not the kit
        y = np.tanh((1 + drive) * _unit(y)) / np.tanh(1 + drive)
    if rng.random() < drums:
        half_time = genre == "reggae" or rng.random() < 0.1
        kit = _drums(rng, n, sr, beat * (2 if half_time else 1), floor=rng.random() < floor)
        y = _unit(y) + level * rng.uniform(0.6, 1.4) * _unit(kit)
    if rng.random() < voice:
        y = _unit(y) + rng.uniform(0.3, 0.9) * _unit(synth_speech(rng, n, sr))
    return _with_noise(rng, _unit(y), rng.uniform(*snr), sr)
