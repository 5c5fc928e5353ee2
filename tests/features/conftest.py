"""Fixtures for the feature tests: seeded RNG, synthetic signals and small WAV corpora."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features import ALL_EXTRACTORS, FeaturesSpec, FeatureTable, SegmentsSpec, build_table

SR = 22050
ALL_EXTRACTORS = list(ALL_EXTRACTORS)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def tone_plus_noise(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A tone with a little seeded noise (float32, 22.05 kHz)."""
    y = 0.4 * librosa.tone(freq, sr=SR, duration=seconds)
    return (y + 0.01 * rng.standard_normal(len(y))).astype(np.float32)


def pulse_train(f0: float, seconds: float) -> np.ndarray:
    """Unit impulses every 1/f0 s (f0 divides 22.05 kHz: every period is whole samples)."""
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    y[:: round(SR / f0)] = 0.5
    return y


def drum_loop(bpm: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Kick on every beat, hi-hat noise bursts on the off-beats, a little background noise."""
    n = int(seconds * SR)
    beat = 60.0 / bpm
    t = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (60 + 90 * np.exp(-t * 30)) * t) * np.exp(-t * 25)
    hat = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / 200)
    y = 0.005 * rng.standard_normal(n)
    for k in range(int(seconds / beat)):
        start = int(k * beat * SR)
        y[start : start + len(kick)] += 0.8 * kick[: n - start]
        off = int((k + 0.5) * beat * SR)
        if off < n:
            y[off : off + len(hat)] += 0.2 * hat[: n - off]
    return y.astype(np.float32)


@pytest.fixture
def signal(rng: np.random.Generator) -> np.ndarray:
    """2 s of a rising chirp with noise: exercises every extractor."""
    y = 0.3 * librosa.chirp(fmin=220, fmax=3520, sr=SR, duration=2.0)
    return (y + 0.02 * rng.standard_normal(len(y))).astype(np.float32)


@pytest.fixture
def all_features() -> FeaturesSpec:
    return FeaturesSpec(extractors=ALL_EXTRACTORS, stats=["mean", "std", "p90"])


@pytest.fixture
def small_features() -> FeaturesSpec:
    """A cheap config for cache tests."""
    return FeaturesSpec(extractors=["mfcc", "centroid", "rms", "hnr"], mfcc={"n_mfcc": 8})


@pytest.fixture
def whole() -> SegmentsSpec:
    return SegmentsSpec()


def write_clip(path: Path, y: np.ndarray, sr: int = SR, **kwargs: object) -> Path:
    sf.write(path, y, sr, **kwargs)
    return path


def make_corpus(
    folder: Path, n: int, rng: np.random.Generator, *, start: int = 0, seconds: float = 1.0
) -> pd.DataFrame:
    """``n`` labelled tone clips ``c<start>..`` as 16-bit WAV files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + n):
        path = write_clip(folder / f"c{i:03d}.wav", tone_plus_noise(200.0 + 60 * i, seconds, rng))
        rows.append(
            {
                "clip_id": f"c{i:03d}",
                "path": str(path),
                "label": "low" if i % 2 else "high",
                "group": f"g{i % 3}",
                "extra": i,
            }
        )
    return pd.DataFrame(rows)


def build(clips: pd.DataFrame, features: FeaturesSpec, cache: Path, **kwargs) -> FeatureTable:
    """``build_table`` quietly, on whole clips unless ``segments=`` is given."""
    kwargs.setdefault("segments", SegmentsSpec())
    return build_table(clips, features, cache_dir=cache, progress=False, **kwargs)
