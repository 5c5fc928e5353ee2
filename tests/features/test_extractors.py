"""Contract suite over every registered extractor, plus known answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import librosa
import numpy as np
import pytest

from features import ALL_EXTRACTORS, FEATURES, SpectralContext, ensure_loaded
from features._registry import MODEL_EXTRACTORS, missing_requirement
from features.extractors.hpss import median_filter
from features.extractors.pitch import yin_frames
from tests.features.conftest import SR, drum_loop, pulse_train, tone_plus_noise

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
    "mel": lambda y: librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR)),
    "onset": lambda y: librosa.onset.onset_strength(y=y, sr=SR),
    "tonnetz": lambda y: librosa.feature.tonnetz(chroma=librosa.feature.chroma_stft(y=y, sr=SR)),
}
# Scalar extractors whose columns are statistics of a library call: checked one by one below.
SCALAR_DIRECT = {"pitch", "hpss", "praat", "egemaps"}
# Extractors with their own definition (documented in their module); known answers below.
OWN_DEFINITION = {"hnr"}


def make_ctx(y: np.ndarray) -> SpectralContext:
    return SpectralContext(y, SR, n_fft=2048, hop_length=512, n_mels=128, n_mfcc=N_MFCC)


def as_array(output: np.ndarray | Mapping[str, float], name: str) -> np.ndarray:
    if isinstance(output, Mapping):
        return np.array([output["bpm"]]) if name == "tempo" else np.array(list(output.values()))
    return np.asarray(output)


def test_every_extractor_is_covered() -> None:
    # Model extractors need a model file: tests/features/test_embedding.py checks them.
    assert set(FEATURES) - set(MODEL_EXTRACTORS) == set(DIRECT) | SCALAR_DIRECT | OWN_DEFINITION


def needs_package(name: str) -> None:
    """Skip (with the reason) an optional extractor whose package is not installed here."""
    if reason := missing_requirement(name):
        pytest.skip(reason)


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in sorted(set(FEATURES) - set(MODEL_EXTRACTORS))]
)
def test_contract_finite_frames(name: str, signal: np.ndarray) -> None:
    needs_package(name)
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
    for name in ALL_EXTRACTORS:
        FEATURES[name](ctx)
    stft, chroma, beats = ctx.stft, ctx.chroma, ctx.beats
    for name in ALL_EXTRACTORS:
        FEATURES[name](ctx)
    assert ctx.stft is stft and ctx.chroma is chroma and ctx.beats is beats


def test_pitch_f0_equals_librosa_yin(signal: np.ndarray) -> None:
    f0, _ = yin_frames(make_ctx(signal))
    theirs = librosa.yin(signal, fmin=50, fmax=1000, sr=SR, frame_length=2048, hop_length=512)
    np.testing.assert_allclose(f0, theirs, rtol=1e-6)


def test_hpss_equals_librosa_effects_hpss(signal: np.ndarray) -> None:
    out = FEATURES["hpss"](make_ctx(signal))
    harmonic, percussive = librosa.effects.hpss(signal)
    expected = {
        "harmony_mean": harmonic.mean(),
        "harmony_var": harmonic.var(),
        "perceptr_mean": percussive.mean(),
        "perceptr_var": percussive.var(),
    }
    for key, value in expected.items():
        assert out[key] == pytest.approx(float(value), rel=1e-3, abs=1e-7), key


def test_hpss_median_filter_equals_scipy(signal: np.ndarray) -> None:
    import scipy.ndimage

    mag = make_ctx(signal).mag
    # Ties everywhere: silent frames, a constant band, values drawn from five levels.
    ties = np.random.default_rng(0).integers(0, 5, size=(97, 211)).astype(np.float32)
    ties[:, 40:90] = 0.0
    ties[7] = 1.0
    for x in (mag, ties):
        for axis, size in ((1, (1, 31)), (0, (31, 1))):
            ours = median_filter(x, 31, axis=axis)
            theirs = scipy.ndimage.median_filter(x, size, mode="reflect")
            np.testing.assert_array_equal(ours, theirs)


def test_praat_equals_parselmouth(signal: np.ndarray) -> None:
    needs_package("praat")
    import parselmouth
    from parselmouth.praat import call

    out = FEATURES["praat"](make_ctx(signal))
    sound = parselmouth.Sound(signal.astype(np.float64), sampling_frequency=SR)
    hz = sound.to_pitch(pitch_floor=75, pitch_ceiling=600).selected_array["frequency"]
    points = call(sound, "To PointProcess (periodic, cc)", 75, 600)
    jitter = call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    shimmer = call([sound, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    f1 = call(sound.to_formant_burg(), "Get mean", 1, 0, 0, "hertz")
    assert out["f0_mean_hz"] == pytest.approx(hz[hz > 0].mean())
    assert out["jitter_local"] == pytest.approx(jitter)
    assert out["shimmer_local"] == pytest.approx(shimmer)
    assert out["f1_hz"] == pytest.approx(f1)


def test_egemaps_equals_opensmile(signal: np.ndarray) -> None:
    needs_package("egemaps")
    import opensmile

    out = FEATURES["egemaps"](make_ctx(signal))
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    theirs = smile.process_signal(signal, SR).iloc[0]
    assert len(out) == 88
    np.testing.assert_allclose(np.array(list(out.values())), theirs.to_numpy(), rtol=1e-6)


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
    from features import VOICE_EXTRACTORS

    assert sorted([*ALL_EXTRACTORS, *VOICE_EXTRACTORS, *MODEL_EXTRACTORS]) == sorted(FEATURES)


def test_known_pitch_of_150hz_pulse_train() -> None:
    out = FEATURES["pitch"](make_ctx(pulse_train(150.0, 2.0)))
    assert out["f0_mean_hz"] == pytest.approx(150.0, rel=0.005)
    assert out["f0_range_hz"] < 1.0
    assert out["voiced_fraction"] > 0.9
    assert out["jitter_local"] < 1e-3


def test_known_pitch_of_noise_is_unvoiced(rng: np.random.Generator) -> None:
    out = FEATURES["pitch"](make_ctx((0.2 * rng.standard_normal(2 * SR)).astype(np.float32)))
    assert out["voiced_fraction"] < 0.1


def test_known_praat_of_150hz_pulse_train() -> None:
    needs_package("praat")
    out = FEATURES["praat"](make_ctx(pulse_train(150.0, 2.0)))
    assert out["f0_mean_hz"] == pytest.approx(150.0, rel=0.01)
    assert out["jitter_local"] < 1e-3
    assert out["hnr_db"] > 20.0


def test_known_egemaps_f0_of_150hz_pulse_train() -> None:
    needs_package("egemaps")
    out = FEATURES["egemaps"](make_ctx(pulse_train(150.0, 2.0)))
    # eGeMAPS reports f0 in semitones above 27.5 Hz.
    hz = 27.5 * 2.0 ** (out["F0semitoneFrom27.5Hz_sma3nz_amean"] / 12.0)
    assert hz == pytest.approx(150.0, rel=0.02)


def test_known_tempo_of_120_bpm_drum_loop(rng: np.random.Generator) -> None:
    ctx = make_ctx(drum_loop(120.0, 10.0, rng))
    out = FEATURES["tempo"](ctx)
    assert out["bpm"] == pytest.approx(120.0, rel=0.03)
    _, beats = ctx.beats
    intervals = np.diff(beats) * 512 / SR
    assert np.median(intervals) == pytest.approx(0.5, rel=0.05)


def test_known_hpss_of_tone_and_clicks() -> None:
    tone = (0.3 * librosa.tone(440.0, sr=SR, duration=3.0)).astype(np.float32)
    clicks = librosa.clicks(times=np.arange(0.1, 3.0, 0.25), sr=SR, length=3 * SR)
    assert FEATURES["hpss"](make_ctx(tone))["harmonic_ratio_db"] > 10.0
    assert FEATURES["hpss"](make_ctx(clicks.astype(np.float32)))["harmonic_ratio_db"] < -5.0


@pytest.mark.parametrize(("n_fft", "hop"), [(2048, 512), (1024, 1000), (512, 512), (512, 1024)])
def test_hpss_equals_librosa_at_any_framing(signal: np.ndarray, n_fft: int, hop: int) -> None:
    """The percussive waveform is the segment minus the harmonic one only where frames
    overlap; at other framings it is inverted on its own, still equal to librosa's."""
    ctx = SpectralContext(signal, SR, n_fft=n_fft, hop_length=hop, n_mels=128, n_mfcc=N_MFCC)
    out = FEATURES["hpss"](ctx)
    stft = librosa.stft(signal, n_fft=n_fft, hop_length=hop)
    harm, perc = librosa.decompose.hpss(stft)
    for key, part in (("harmony", harm), ("perceptr", perc)):
        y = librosa.istft(part, n_fft=n_fft, hop_length=hop, length=len(signal))
        assert out[f"{key}_var"] == pytest.approx(float(y.var()), rel=1e-3), key
        assert out[f"{key}_mean"] == pytest.approx(float(y.mean()), rel=1e-3, abs=1e-7), key
