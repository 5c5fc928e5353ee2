"""Fixed-size log-mel images for convolutional model families.

An image is the segment's ``mel_db`` (``n_mels`` x frames, dB re 1.0, floor 80 dB below the
peak) made exactly ``mel_image_frames`` wide:

* longer segments are centre-cropped (the middle is the least likely to hold fades);
* shorter segments are padded on the right (after the audio) with the image's own minimum dB
  value, i.e. with "the quietest thing in this segment", never with an arbitrary 0 dB.

Images are float32 and stored per clip as ``(n_segments, n_mels, mel_image_frames)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_mel_image"]


def fit_mel_image(mel_db: np.ndarray, frames: int) -> np.ndarray:
    """Centre-crop or right-pad ``mel_db`` to ``frames`` columns.

    Args:
        mel_db: ``(n_mels, n_frames)`` log-mel spectrogram.
        frames: the target width.

    Returns:
        float32 ``(n_mels, frames)``.
    """
    n_frames = mel_db.shape[1]
    if n_frames >= frames:
        start = (n_frames - frames) // 2
        return np.ascontiguousarray(mel_db[:, start : start + frames], dtype=np.float32)
    out = np.full((mel_db.shape[0], frames), mel_db.min(), dtype=np.float32)
    out[:, :n_frames] = mel_db
    return out
