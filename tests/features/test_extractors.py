"""Contract suite over every registered extractor, plus known answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import librosa
import numpy as np
import pytest

from features import FEATURES, SpectralContext, ensure_loaded
from tests.features.conftest import SR, tone_plus_noise

ensure_loaded()

N_MFCC = 20

# Extractors whose definition is a librosa call on the raw signal with default parameters.
DIRECT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mfcc": lambda y: librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC),
    "delta_mfcc": lambda y: librosa.feature.delta(librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC)),
    "centroid": lambda y: librosa.feature.spectral_centroid(y=y, sr=SR)[0],
    "bandwidth": lambda y: librosa.feature.spectral_bandwidth(y=y, sr=SR)[0],
    "rolloff": lambda y: librosa.feature.spectral_rolloff(y=y, sr=SR)[0],
    "flatness": lambda y: librosa.feature.spectral_flatness(y=y)[0],
    "spectral_contrast": lambda y: librosa.feature.spectral_contrast(y=y, sr=SR),
    "chroma": lambda y: librosa.feature.chroma_stft(y=y, sr=SR),
    "zcr": lambda y: librosa.feature.zero_crossing_rate(y)[0],
    "rms": lambda y: librosa.feature.rms(y=y)[0],
    "tempo": lambda y: np.array([librosa.feature.tempo(y=y, sr=SR)[0]]),
}
# Extractors with their own definition (documented in their module); known answers below.
OWN_DEFINITION = {"hnr"}


def make_ctx(y: np.ndarray) -> SpectralContext:
    return SpectralContext(y, SR, n_fft=2048, hop_length=512, n_mels=128, n_mfcc=N_MFCC)


def as_array(output: np.ndarray | Mapping[str, float], name: str) -> np.ndarray:
    if isinstance(output, Mapping):
        return np.array([output["bpm"]]) if name == "tempo" else np.array(list(output.values()))
    return np.asarray(output)


def test_every_extractor_is_covered() -> None:
    assert set(FEATURES) == set(DIRECT) | OWN_DEFINITION


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in sorted(FEATURES)])
def test_contract_finite_frames(name: str, signal: np.ndarray) -> None:
    ctx = make_ctx(signal)
    output = FEATURES[name](ctx)
    if isinstance(output, Mapping):
        assert output and all(np.isfinite(float(v)) for v in output.values())
        return
    assert isinstance(output, np.ndarray)
    assert output.ndim in (1, 2)
    assert output.shape[-1] == ctx.n_frames
    assert np.isfinite(output).all()


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in sorted(DIRECT)])
def test_equals_direct_librosa_call(name: str, signal: np.ndarray) -> None:
    ours = as_array(FEATURES[name](make_ctx(signal)), name).astype(np.float64)
    theirs = np.asarray(DIRECT[name](signal), dtype=np.float64)
    assert ours.shape == theirs.shape
    scale = max(float(np.abs(theirs).max()), 1e-12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


def test_contexts_share_one_stft(signal: np.ndarray) -> None:
    ctx = make_ctx(signal)
    for name in FEATURES:
        FEATURES[name](ctx)
    stft = ctx.stft
    for name in FEATURES:
        FEATURES[name](ctx)
    assert ctx.stft is stft


def tone_ctx(freq: float, rng: np.random.Generator, seconds: float = 2.0) -> SpectralContext:
    return make_ctx(tone_plus_noise(freq, seconds, rng))


def test_known_centroid_and_rolloff_of_1khz_tone() -> None:
    ctx = make_ctx((0.5 * librosa.tone(1000.0, sr=SR, duration=2.0)).astype(np.float32))
    inner = slice(4, -4)  # edge frames see the zero padding
    assert FEATURES["centroid"](ctx)[inner].mean() == pytest.approx(1000.0, rel=0.05)
    assert FEATURES["rolloff"](ctx)[inner].mean() == pytest.approx(1000.0, rel=0.1)


def test_known_zcr_and_rms_of_tone() -> None:
    ctx = make_ctx((0.5 * librosa.tone(1000.0, sr=SR, duration=2.0)).astype(np.float32))
    inner = slice(4, -4)
    assert FEATURES["zcr"](ctx)[inner].mean() == pytest.approx(2000.0 / SR, rel=0.02)
    assert FEATURES["rms"](ctx)[inner].mean() == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_known_chroma_of_a440(rng: np.random.Generator) -> None:
    chroma = FEATURES["chroma"](tone_ctx(440.0, rng))
    assert chroma.shape[0] == 12
    assert int(np.argmax(chroma.mean(axis=1))) == 9  # A


def test_known_flatness_noise_vs_tone(rng: np.random.Generator) -> None:
    noise = make_ctx((0.3 * rng.standard_normal(2 * SR)).astype(np.float32))
    tone = tone_ctx(1000.0, rng)
    assert FEATURES["flatness"](noise).mean() > 0.3 > 0.01 > FEATURES["flatness"](tone).mean()


def test_known_hnr_tone_noise_and_mixture(rng: np.random.Generator) -> None:
    tone = (0.4 * librosa.tone(220.0, sr=SR, duration=2.0)).astype(np.float32)
    noise = (0.3 * rng.standard_normal(len(tone))).astype(np.float32)
    inner = slice(4, -4)
    hnr_tone = FEATURES["hnr"](make_ctx(tone))[inner].mean()
    hnr_noise = FEATURES["hnr"](make_ctx(noise))[inner].mean()
    hnr_mix = FEATURES["hnr"](make_ctx(tone + 0.5 * noise))[inner].mean()
    assert hnr_tone > 20.0
    assert hnr_noise < 0.0
    assert hnr_noise < hnr_mix < hnr_tone


def test_hnr_of_silence_is_floor() -> None:
    frames = FEATURES["hnr"](make_ctx(np.zeros(SR, dtype=np.float32)))
    assert np.all(frames == pytest.approx(-60.0, abs=1e-3))


def test_known_tempo_of_click_train() -> None:
    clicks = librosa.clicks(times=np.arange(0.0, 12.0, 0.5), sr=SR, length=12 * SR)
    out = FEATURES["tempo"](make_ctx(clicks.astype(np.float32)))
    assert out["bpm"] == pytest.approx(120.0, rel=0.03)
    assert out["beat_strength"] > 1.0
    assert out["beat_interval_std"] < 0.05


def test_spectral_contrast_bands_follow_nyquist(rng: np.random.Generator) -> None:
    y = librosa.resample(tone_plus_noise(300.0, 1.0, rng), orig_sr=SR, target_sr=8000)
    ctx = SpectralContext(y, 8000, n_fft=512, hop_length=128, n_mels=40, n_mfcc=13)
    out = FEATURES["spectral_contrast"](ctx)
    assert out.shape[0] == 6  # 5 bands + the residual row
    assert np.isfinite(out).all()


def test_delta_mfcc_on_very_short_segments() -> None:
    y = np.random.default_rng(0).standard_normal(2048).astype(np.float32)
    out = FEATURES["delta_mfcc"](make_ctx(y))  # 5 frames: width 5
    assert out.shape == (N_MFCC, 5) and np.isfinite(out).all()
    short = SpectralContext(y[:600], SR, n_fft=512, hop_length=512, n_mels=40, n_mfcc=4)
    assert np.all(FEATURES["delta_mfcc"](short) == 0.0)  # 2 frames: no slope


def test_all_extractors_lists_the_registry() -> None:
    from features import ALL_EXTRACTORS, FEATURES, ensure_loaded

    ensure_loaded()
    assert sorted(ALL_EXTRACTORS) == sorted(FEATURES)
