"""The numpy beat tracker against librosa's, beat-level columns, and the cold-start claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest

from features import FeaturesSpec, SegmentsSpec, build_table, extract_signal, feature_layout
from features.beat import beat_track, sync_frames
from features.extract import MIN_BEATS
from tests.features.conftest import SR, drum_loop, write_clip

REPO = Path(__file__).resolve().parents[2]


def onset_of(y: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, sr=SR)
    return librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=SR)


def random_rhythm(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(SR * rng.uniform(2, 20))
    bpm = rng.uniform(60, 200)
    t = np.arange(n) / SR
    clicks = librosa.clicks(times=np.arange(rng.uniform(0, 1), n / SR, 60 / bpm), sr=SR, length=n)
    y = rng.uniform(0, 0.5) * np.sin(2 * np.pi * rng.uniform(100, 400) * t)
    y = y + rng.uniform(0.1, 1.0) * clicks + rng.uniform(0.001, 0.3) * rng.standard_normal(n)
    return y.astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_beat_track_equals_librosa(seed: int) -> None:
    import librosa.beat

    onset = onset_of(random_rhythm(seed))
    bpm, beats = beat_track(onset, SR, 512)
    their_bpm, their_beats = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=512)
    assert bpm == pytest.approx(float(np.atleast_1d(their_bpm)[0]))
    np.testing.assert_array_equal(beats, their_beats)


@pytest.mark.parametrize("seconds", [0.8, 1.0, 1.2])
def test_short_segment_whose_beat_window_outlasts_it(seconds: float) -> None:
    # At 120 bpm the local-score window spans 2 periods + 1 = 45 frames, more than a 1-s
    # segment has (44): the tracker once returned a beat one frame past the end.
    import librosa.beat

    n = int(SR * seconds)
    rng = np.random.default_rng(0)
    clicks = librosa.clicks(times=np.arange(0.05, seconds, 0.5), sr=SR, length=n)
    onset = onset_of((clicks + 0.01 * rng.standard_normal(n)).astype(np.float32))
    bpm, beats = beat_track(onset, SR, 512)
    their_bpm, their_beats = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=512)
    assert bpm == pytest.approx(float(np.atleast_1d(their_bpm)[0]))
    np.testing.assert_array_equal(beats, their_beats)
    assert len(beats) == 0 or beats.max() < len(onset)


def test_beat_track_of_silence_has_no_beats() -> None:
    bpm, beats = beat_track(np.zeros(200, dtype=np.float32), SR, 512)
    assert bpm == 0.0 and len(beats) == 0


def test_sync_frames_equals_librosa_util_sync(rng: np.random.Generator) -> None:
    frames = rng.standard_normal((3, 200))
    for beats in (np.array([10, 40, 41, 120, 199]), np.array([0, 50, 200])):
        np.testing.assert_allclose(
            sync_frames(frames, beats), librosa.util.sync(frames, beats, aggregate=np.mean)
        )


def test_beat_level_columns(rng: np.random.Generator) -> None:
    spec = FeaturesSpec(extractors=["mfcc", "rms", "tempo"], mfcc={"n_mfcc": 4}, beat_level=True)
    y = drum_loop(120.0, 8.0, rng)
    frame, _ = extract_signal(y, SR, spec, SegmentsSpec())
    columns, groups = feature_layout(spec)
    assert list(frame.columns) == columns
    assert groups["beat"][0] == "beat_count"
    assert "beat_rms_std" in groups["beat"] and "beat_mfcc_03_mean" in groups["beat"]
    assert not any(c.startswith("beat_tempo") for c in columns)  # scalars have no beat level
    assert frame["beat_count"].iloc[0] == pytest.approx(16, abs=2)
    # Averaging within beats smooths the kick/hat alternation: less spread across beats.
    assert frame["beat_rms_std"].iloc[0] < 0.5 * frame["rms_std"].iloc[0]


def test_too_few_beats_take_clip_level_values_and_are_counted(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    spec = FeaturesSpec(extractors=["rms", "centroid"], beat_level=True)
    steady = (0.3 * librosa.tone(300.0, sr=SR, duration=2.0)).astype(np.float32)
    frame, _ = extract_signal(steady, SR, spec, SegmentsSpec())
    assert frame["beat_count"].iloc[0] < MIN_BEATS
    for column in ("rms_mean", "rms_std", "centroid_mean"):
        assert frame[f"beat_{column}"].iloc[0] == frame[column].iloc[0]
    write_clip(tmp_path / "steady.wav", steady)
    write_clip(tmp_path / "loop.wav", drum_loop(120.0, 6.0, rng))
    clips = [
        {"clip_id": p.stem, "path": str(p), "label": p.stem, "group": None}
        for p in sorted(tmp_path.glob("*.wav"))
    ]
    import pandas as pd

    table = build_table(pd.DataFrame(clips), spec, SegmentsSpec(), cache_dir=tmp_path / "c")
    assert table.stats["few_beats"] == 1
    assert "beat" in table.groups
    warm = build_table(pd.DataFrame(clips), spec, SegmentsSpec(), cache_dir=tmp_path / "c")
    assert warm.stats["cache_hits"] == 2 and warm.stats["few_beats"] == 1


def test_tempo_and_beat_level_never_import_librosa_beat() -> None:
    code = (
        "import sys, numpy as np\n"
        "from features import FeaturesSpec, SegmentsSpec, extract_signal\n"
        "spec = FeaturesSpec(extractors=['tempo', 'onset', 'rms'], beat_level=True)\n"
        "y = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)\n"
        "extract_signal(y, 22050, spec, SegmentsSpec())\n"
        "assert 'librosa.beat' not in sys.modules, 'librosa.beat was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
