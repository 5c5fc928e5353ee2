"""Cutting a decoded signal into the examples the models see.

Modes (``SegmentsSpec.mode``):

* ``whole``: the clip is one segment.
* ``fixed``: windows of ``length_s`` seconds every ``hop_s`` seconds (default hop: the
  length), starting at 0. A trailing window shorter than ``length_s`` is dropped, unless
  the clip is shorter than one window: then the whole clip is the only segment. Clips
  therefore always give at least one segment.
* ``last``: the last ``length_s`` seconds; a shorter clip is used whole.

Segments are views of the input (no copies). Sample counts are ``round(seconds * sr)``.
"""

from __future__ import annotations

import numpy as np

from features.config import SegmentsSpec

__all__ = ["segment_signal"]


def _samples(seconds: float | None, sr: int) -> int:
    return max(1, round(float(seconds or 0.0) * sr))


def segment_signal(y: np.ndarray, sr: int, segments: SegmentsSpec) -> list[np.ndarray]:
    """Cut ``y`` into segments as ``segments`` says.

    Args:
        y: a mono signal.
        sr: its sample rate.
        segments: the segmenting spec.

    Returns:
        A non-empty list of 1-D views of ``y`` in time order.
    """
    if segments.mode == "whole":
        return [y]
    length = _samples(segments.length_s, sr)
    if segments.mode == "last":
        return [y[-length:]] if len(y) > length else [y]
    hop = _samples(segments.hop, sr)
    starts = range(0, len(y) - length + 1, hop)
    windows = [y[start : start + length] for start in starts]
    return windows or [y]
