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

``max_duration_s`` bounds what is decoded: only that many seconds of frames are read from the
file (a file of several hours is never held in memory whole), and :class:`Decoded` says
whether the file was cut.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import librosa
import numpy as np
import soundfile as sf

from features.errors import FeatureError

__all__ = ["Decoded", "decode_audio", "decode_clip", "read_bytes"]

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


@dataclass(frozen=True)
class Decoded:
    """A decoded clip: mono float32 samples, and how long the file was when it was cut."""

    y: np.ndarray
    cut_from_s: float | None = None  # the file's duration when only its start was read


def _check_truncation(handle: sf.SoundFile, n_read: int, wanted: int) -> None:
    """Raise when the header promises more audio than the file holds."""
    match = _WAV_SHORT.search(handle.extra_info or "")
    if match and int(match.group(1)) not in _PLACEHOLDER_SIZES:
        declared, present = int(match.group(1)), int(match.group(2))
        if present < declared:
            raise FeatureError(
                f"truncated: data chunk declares {declared} bytes, file holds {present}"
            )
    if wanted > 0 and n_read + _FRAME_SLACK < wanted:
        raise FeatureError(f"truncated: header declares {handle.frames} frames, decoded {n_read}")


def _decode_native(
    source: BinaryIO, max_duration_s: float | None
) -> tuple[np.ndarray, int, float | None]:
    """Decode to (frames, channels) float32 at the file's own rate, at most ``max_duration_s``.

    Returns the frames, the rate, and the file's duration in seconds when it was cut.
    """
    try:
        with sf.SoundFile(source) as handle:
            rate = int(handle.samplerate)
            limit = -1 if max_duration_s is None else max(1, int(max_duration_s * rate))
            frames = handle.read(limit, dtype="float32", always_2d=True)
            cut = limit > 0 and len(frames) == limit and len(handle.read(1, always_2d=True)) > 0
            wanted = handle.frames if limit < 0 else min(handle.frames, limit)
            _check_truncation(handle, len(frames), wanted)
            cut_from = (handle.frames if handle.frames > limit else float("nan")) if cut else None
            return frames, rate, None if cut_from is None else cut_from / rate
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise FeatureError(_libsndfile_reason(exc)) from None


def decode_audio(
    source: str | Path | bytes, sample_rate: int, *, max_duration_s: float | None = None
) -> np.ndarray:
    """Decode an audio file (path or bytes) to mono float32 at ``sample_rate``.

    Args:
        source: a path, or the file's bytes (as posted to a served model).
        sample_rate: the target rate in Hz; other rates are resampled once (soxr_hq).
        max_duration_s: read at most this many seconds from the start (None: all).

    Returns:
        A 1-D float32 array.

    Raises:
        FeatureError: empty, unreadable, truncated or non-audio input. For a path the
            message starts with the path.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_clip(io.BytesIO(bytes(source)), sample_rate, max_duration_s).y
    try:
        return decode_clip(io.BytesIO(read_bytes(source)), sample_rate, max_duration_s).y
    except FeatureError as exc:
        raise FeatureError(f"{source}: {exc}") from None


def decode_clip(source: BinaryIO, sample_rate: int, max_duration_s: float | None) -> Decoded:
    """Decode an open, seekable binary file (from its current position) like ``decode_audio``.

    Only the first ``max_duration_s`` seconds are read and decoded.

    Raises:
        FeatureError: as :func:`decode_audio` (the message is the reason only).
    """
    start = source.tell()
    if not source.read(1):
        raise FeatureError("empty file (0 bytes)")
    source.seek(start)
    frames, native_rate, cut_from = _decode_native(source, max_duration_s)
    if frames.shape[0] == 0:
        raise FeatureError("no audio samples")
    # Downmix first: resampling one channel instead of several gives the same result.
    y = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    del frames
    if not np.isfinite(y).all():
        raise FeatureError("non-finite samples (NaN or inf)")
    if native_rate != sample_rate:
        y = librosa.resample(y, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")
    return Decoded(np.ascontiguousarray(y, dtype=np.float32), cut_from)
