"""decode_audio: formats, channels, sample rates and clear reasons for bad input."""

from __future__ import annotations

import io
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from features import decode_audio
from runner.errors import FeatureError
from tests.features.conftest import SR

TONE = (0.4 * librosa.tone(1000.0, sr=SR, duration=1.0)).astype(np.float32)

FORMATS = [
    pytest.param("wav", "PCM_16", 1e-4, id="wav16"),
    pytest.param("wav", "PCM_24", 1e-6, id="wav24"),
    pytest.param("wav", "FLOAT", 0.0, id="wav-float"),
    pytest.param("flac", "PCM_16", 1e-4, id="flac"),
    pytest.param("ogg", "VORBIS", None, id="ogg"),
    pytest.param(
        "mp3",
        "MPEG_LAYER_III",
        None,
        id="mp3",
        marks=pytest.mark.skipif(
            "MP3" not in sf.available_formats(), reason="libsndfile without MP3"
        ),
    ),
]


def peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize(("ext", "subtype", "tol"), FORMATS)
def test_formats_roundtrip(tmp_path: Path, ext: str, subtype: str, tol: float | None) -> None:
    path = tmp_path / f"tone.{ext}"
    sf.write(path, TONE, SR, subtype=subtype)
    y = decode_audio(path, SR)
    assert y.dtype == np.float32 and y.ndim == 1
    if tol is not None:  # lossless: sample-exact up to quantisation
        np.testing.assert_allclose(y, TONE, atol=tol)
    else:  # lossy codecs add delay/padding; the pitch and level survive
        assert abs(len(y) - len(TONE)) < 0.1 * SR
        assert peak_hz(y, SR) == pytest.approx(1000.0, abs=5.0)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)


def test_bytes_equal_path(tmp_path: Path) -> None:
    path = tmp_path / "tone.flac"
    sf.write(path, TONE, SR)
    np.testing.assert_array_equal(decode_audio(path.read_bytes(), SR), decode_audio(path, SR))


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    stereo = np.stack([TONE, 0.5 * TONE], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    np.testing.assert_allclose(decode_audio(path, SR), 0.75 * TONE, atol=1e-7)


@pytest.mark.parametrize("native", [8000, 16000, 44100, 48000])
def test_other_rates_are_resampled(tmp_path: Path, native: int) -> None:
    y = (0.4 * librosa.tone(500.0, sr=native, duration=1.0)).astype(np.float32)
    path = tmp_path / f"r{native}.wav"
    sf.write(path, y, native, subtype="PCM_16")
    out = decode_audio(path, SR)
    assert len(out) == pytest.approx(SR, abs=2)
    assert peak_hz(out, SR) == pytest.approx(500.0, abs=2.0)


def wav_bytes(y: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, SR, format="WAV", subtype=subtype)
    return buffer.getvalue()


BAD = [
    pytest.param(b"", "empty file", id="empty"),
    pytest.param(b"this is not audio at all " * 40, "not audio", id="text"),
    pytest.param(wav_bytes(TONE)[: len(wav_bytes(TONE)) // 2], "truncated", id="truncated-wav"),
    pytest.param(wav_bytes(TONE)[:30], "truncated or corrupt", id="header-only"),
    pytest.param(wav_bytes(TONE[:0]), "no audio samples", id="zero-frames"),
    pytest.param(wav_bytes(np.full(100, np.nan, np.float32), "FLOAT"), "non-finite", id="nan"),
]


@pytest.mark.parametrize(("data", "reason"), BAD)
def test_bad_input_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(FeatureError, match=reason):
        decode_audio(data, SR)


def test_truncated_flac(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, TONE, SR, format="FLAC")
    data = buffer.getvalue()
    with pytest.raises(FeatureError, match="truncated"):
        decode_audio(data[: len(data) // 2], SR)


def test_missing_path_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(FeatureError, match=r"nope\.wav: file not found"):
        decode_audio(missing, SR)
