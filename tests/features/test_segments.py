"""segment_signal: whole, fixed windows (trailing partial window dropped) and last N s."""

from __future__ import annotations

import numpy as np
import pytest

from features import SegmentsSpec, segment_signal

SR = 1000
Y = np.arange(10 * SR, dtype=np.float32)  # 10 s, sample value = index


def test_whole_is_the_clip() -> None:
    (segment,) = segment_signal(Y, SR, SegmentsSpec())
    assert segment is Y or np.shares_memory(segment, Y)


@pytest.mark.parametrize(
    ("length", "hop", "count"),
    [(3.0, None, 3), (3.0, 1.0, 8), (2.0, 2.0, 5), (2.5, 2.5, 4), (10.0, None, 1), (4.0, 5.0, 2)],
)
def test_fixed_window_count(length: float, hop: float | None, count: int) -> None:
    windows = segment_signal(Y, SR, SegmentsSpec(mode="fixed", length_s=length, hop_s=hop))
    assert len(windows) == count
    step = round((hop or length) * SR)
    for i, window in enumerate(windows):
        assert len(window) == round(length * SR)
        assert window[0] == i * step


def test_fixed_shorter_clip_is_one_window() -> None:
    windows = segment_signal(Y[:1500], SR, SegmentsSpec(mode="fixed", length_s=3.0))
    assert len(windows) == 1 and len(windows[0]) == 1500


def test_last_seconds() -> None:
    (tail,) = segment_signal(Y, SR, SegmentsSpec(mode="last", length_s=2.0))
    np.testing.assert_array_equal(tail, Y[-2 * SR :])


def test_last_shorter_clip_is_whole() -> None:
    (tail,) = segment_signal(Y[:1000], SR, SegmentsSpec(mode="last", length_s=2.0))
    np.testing.assert_array_equal(tail, Y[:1000])
