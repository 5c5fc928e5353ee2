"""The chromagram's tuning estimate equals librosa's, bit for bit (features/tuning.py)."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest

from features.tuning import estimate_tuning
from tests.features.conftest import SR, drum_loop, pulse_train, tone_plus_noise


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    detuned = librosa.tone(440.0 * 2 ** (0.3 / 12), sr=SR, duration=2.0)  # +30 cents
    chord = sum(librosa.tone(f, sr=SR, duration=2.0) for f in (262.0, 330.0, 392.0, 5000.0))
    return {
        "noise": rng.standard_normal(2 * SR),
        "detuned_a": detuned,
        "chord_and_a_high_tone": chord,
        "pulse_train": pulse_train(150.0, 2.0),
        "drum_loop": drum_loop(120.0, 4.0, rng),
        "tone_plus_noise": tone_plus_noise(220.0, 2.0, rng),
        "near_silence": np.full(SR, 1e-9),
    }


@pytest.mark.parametrize("name", list(_signals()))
@pytest.mark.parametrize(("n_fft", "sr"), [(2048, SR), (1024, SR), (4096, 16000), (512, 8000)])
def test_equals_librosa_estimate_tuning(name: str, n_fft: int, sr: int) -> None:
    y = _signals()[name].astype(np.float32)
    power = np.abs(librosa.stft(y, n_fft=n_fft)) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on an empty pitch set
        expected = librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=12)
    assert estimate_tuning(power, sr, n_fft) == expected


def test_a_detuned_tone_reads_its_detuning() -> None:
    y = librosa.tone(440.0 * 2 ** (0.3 / 12), sr=SR, duration=2.0).astype(np.float32)
    power = np.abs(librosa.stft(y)) ** 2
    assert estimate_tuning(power, SR, 2048) == pytest.approx(0.3, abs=0.05)  # 30 cents sharp
