"""Decoding audio files to mono float32 at one sample rate.

Every clip is decoded by :func:`decode_audio` exactly once: soundfile (libsndfile) reads WAV
(16/24/32-bit, float), FLAC, OGG/Vorbis and MP3; channels are averaged to mono *before*
resampling (cheaper, same result); any other rate is resampled once with soxr (``soxr_hq``).

Unusable input raises :class:`runner.errors.FeatureError` whose message is the reason only
(the caller knows the path): ``empty file (0 bytes)``, ``not audio: format not recognised``,
``truncated: ...``, ``no audio samples``, ``non-finite samples (NaN or inf)``.

Truncation is decided deterministically: a file is truncated when libsndfile reports that the
WAV data chunk is longer than the file, when the decoder stops before the frame count the
header declares (beyond one MP3 frame of slack), or when the decoder loses sync.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from runner.errors import FeatureError

__all__ = ["decode_audio", "read_bytes"]

# libsndfile notes e.g. "data : 88200 (should be 44078)" when the file ends inside the chunk.
_WAV_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers store these placeholders when they cannot seek back; not truncation.
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}
# MP3 headers may overestimate the length by up to one frame of 1152 samples.
_FRAME_SLACK = 1152


def read_bytes(path: str | Path) -> bytes:
    """Read a whole file.

    Raises:
        FeatureError: the file is missing or cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FeatureError("file not found") from None
    except IsADirectoryError:
        raise FeatureError("not a file (a directory)") from None
    except OSError as exc:
        raise FeatureError(f"cannot read file ({exc.strerror or exc})") from None


def _libsndfile_reason(exc: Exception) -> str:
    """Turn a libsndfile message into a short reason without the BytesIO repr."""
    text = str(exc)
    text = re.sub(r"^Error opening <[^>]*>:\s*", "", text)
    text = re.sub(r"^Error\s*:\s*", "", text).strip().rstrip(".")
    if any(hint in text for hint in ("lost sync", "malformed", "chunk", "unexpected end")):
        return f"truncated or corrupt: {text}"
    if "not recognised" in text or "not a regular file" in text:
        return "not audio: format not recognised"
    return f"not readable audio: {text}"


def _check_truncation(handle: sf.SoundFile, n_read: int) -> None:
    """Raise when the header promises more audio than the file holds."""
    match = _WAV_SHORT.search(handle.extra_info or "")
    if match and int(match.group(1)) not in _PLACEHOLDER_SIZES:
        declared, present = int(match.group(1)), int(match.group(2))
        if present < declared:
            raise FeatureError(
                f"truncated: data chunk declares {declared} bytes, file holds {present}"
            )
    if handle.frames > 0 and n_read + _FRAME_SLACK < handle.frames:
        raise FeatureError(f"truncated: header declares {handle.frames} frames, decoded {n_read}")


def _decode_native(data: bytes) -> tuple[np.ndarray, int]:
    """Decode bytes to a (frames, channels) float32 array at the file's own rate."""
    if not data:
        raise FeatureError("empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            frames = handle.read(dtype="float32", always_2d=True)
            _check_truncation(handle, len(frames))
            return frames, int(handle.samplerate)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FeatureError(_libsndfile_reason(exc)) from None


def decode_audio(source: str | Path | bytes, sample_rate: int) -> np.ndarray:
    """Decode an audio file (path or bytes) to mono float32 at ``sample_rate``.

    Args:
        source: a path, or the file's bytes (as posted to a served model).
        sample_rate: the target rate in Hz; other rates are resampled once (soxr_hq).

    Returns:
        A 1-D float32 array.

    Raises:
        FeatureError: empty, unreadable, truncated or non-audio input. For a path the
            message starts with the path.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode_bytes(bytes(source), sample_rate)
    try:
        return _decode_bytes(read_bytes(source), sample_rate)
    except FeatureError as exc:
        raise FeatureError(f"{source}: {exc}") from None


def _decode_bytes(data: bytes, sample_rate: int) -> np.ndarray:
    frames, native_rate = _decode_native(data)
    if frames.shape[0] == 0:
        raise FeatureError("no audio samples")
    # Downmix first: resampling one channel instead of several gives the same result.
    y = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    if not np.isfinite(y).all():
        raise FeatureError("non-finite samples (NaN or inf)")
    if native_rate != sample_rate:
        y = librosa.resample(y, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)
