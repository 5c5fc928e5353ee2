"""extract_signal: columns, finiteness, refusals, segments and mel images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import FeaturesSpec, SegmentsSpec, extract_signal, feature_layout
from features.extract import SILENCE_PEAK
from features.mel import fit_mel_image
from runner.errors import FeatureError
from tests.features.conftest import SR, tone_plus_noise


def test_columns_names_and_groups(signal: np.ndarray, all_features: FeaturesSpec) -> None:
    frame, images = extract_signal(signal, SR, all_features, SegmentsSpec())
    columns, groups = feature_layout(all_features)
    assert list(frame.columns) == columns
    assert list(groups) == all_features.extractors
    assert sum(len(cols) for cols in groups.values()) == len(columns)
    assert "mfcc_00_mean" in columns and "mfcc_19_p90" in columns
    assert "chroma_11_std" in columns and "zcr_mean" in columns
    assert groups["tempo"] == ["tempo_bpm", "tempo_beat_strength", "tempo_beat_interval_std"]
    assert len(groups["spectral_contrast"]) == 7 * 3
    assert images is None
    assert frame.shape == (1, len(columns))
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert np.isfinite(frame.to_numpy()).all()


def test_segments_give_rows(rng: np.random.Generator, small_features: FeaturesSpec) -> None:
    y = tone_plus_noise(300.0, 5.0, rng)
    frame, _ = extract_signal(y, SR, small_features, SegmentsSpec(mode="fixed", length_s=2.0))
    assert len(frame) == 2
    last, _ = extract_signal(y, SR, small_features, SegmentsSpec(mode="last", length_s=2.0))
    np.testing.assert_allclose(
        last.to_numpy()[0],
        extract_signal(y[-2 * SR :], SR, small_features, SegmentsSpec())[0].to_numpy()[0],
    )


def test_other_rate_is_resampled(rng: np.random.Generator, small_features: FeaturesSpec) -> None:
    import librosa

    y = tone_plus_noise(500.0, 1.0, rng)
    y16 = librosa.resample(y, orig_sr=SR, target_sr=16000)
    frame, _ = extract_signal(y16, 16000, small_features, SegmentsSpec())
    back = librosa.resample(y16, orig_sr=16000, target_sr=SR, res_type="soxr_hq")
    direct, _ = extract_signal(back, SR, small_features, SegmentsSpec())
    pd.testing.assert_frame_equal(frame, direct)


@pytest.mark.parametrize(
    ("y", "reason"),
    [
        pytest.param(np.zeros(SR, np.float32), "digital silence", id="silence"),
        pytest.param(np.full(SR, SILENCE_PEAK / 2, np.float32), "digital silence", id="near-zero"),
        pytest.param(np.ones(1000, np.float32) * 0.1, "shorter than one frame", id="short"),
        pytest.param(np.array([0.1, np.nan] * SR, np.float32), "non-finite", id="nan"),
        pytest.param(np.ones((2, SR), np.float32), "mono 1-D", id="stereo"),
    ],
)
def test_refused_signals(y: np.ndarray, reason: str, small_features: FeaturesSpec) -> None:
    with pytest.raises(FeatureError, match=reason):
        extract_signal(y, SR, small_features, SegmentsSpec())


def test_silent_segment_inside_clip_is_finite(
    rng: np.random.Generator, all_features: FeaturesSpec
) -> None:
    y = np.concatenate([np.zeros(2 * SR, np.float32), tone_plus_noise(400.0, 2.0, rng)])
    frame, _ = extract_signal(y, SR, all_features, SegmentsSpec(mode="fixed", length_s=2.0))
    assert len(frame) == 2 and np.isfinite(frame.to_numpy()).all()


def test_mel_images(rng: np.random.Generator) -> None:
    features = FeaturesSpec(extractors=["rms"], mel_image=True, mel_image_frames=32, n_mels=40)
    y = tone_plus_noise(400.0, 3.0, rng)
    frame, images = extract_signal(y, SR, features, SegmentsSpec(mode="fixed", length_s=1.0))
    assert images is not None and images.shape == (3, 40, 32) and images.dtype == np.float32
    assert len(frame) == 3


def test_fit_mel_image_pads_with_minimum_and_centre_crops() -> None:
    mel = np.arange(12, dtype=np.float64).reshape(2, 6) - 80.0
    padded = fit_mel_image(mel, 8)
    np.testing.assert_array_equal(padded[:, :6], mel)
    assert np.all(padded[:, 6:] == mel.min())
    np.testing.assert_array_equal(fit_mel_image(mel, 2), mel[:, 2:4])
