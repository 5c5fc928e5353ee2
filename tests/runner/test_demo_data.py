"""The demo corpus: deterministic, in the folder layout, learnable but not trivially so."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runner.config.spec import ExperimentSpec
from runner.data.demo_data import CLASSES, synthesize_corpus
from runner.data.sources import load_source

FRAME, HOP = 512, 256
SIMPLE = ("rms", "zcr", "centroid")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The default corpus (60 clips x 4 s) and how long it took to write."""
    start = time.perf_counter()
    out = synthesize_corpus(tmp_path_factory.mktemp("demo") / "corpus")
    return out, time.perf_counter() - start


def clip_features(y: np.ndarray, sr: int) -> dict[str, float]:
    """A handful of frame-level summaries computed with numpy alone."""
    frames = y[np.arange(0, len(y) - FRAME + 1, HOP)[:, None] + np.arange(FRAME)]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    zcr = np.mean(np.abs(np.diff(np.signbit(frames).astype(int), axis=1)), axis=1)
    mag = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1))
    freqs = np.fft.rfftfreq(FRAME, 1 / sr)
    centroid = (mag @ freqs) / (mag.sum(axis=1) + 1e-12)
    log_mag = np.log(mag + 1e-6)
    return {
        "rms": rms.mean(),
        "zcr": zcr.mean(),
        "centroid": centroid.mean(),
        "rms_cv": rms.std() / (rms.mean() + 1e-12),  # speech pauses between phrases
        "low_energy": np.mean(rms < 0.1 * rms.max()),
        "centroid_std": centroid.std(),  # fricatives against vowels
        "zcr_std": zcr.std(),
        "flux": np.sqrt(np.mean(np.diff(log_mag, axis=0) ** 2, axis=1)).mean(),
    }


def feature_matrix(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows, labels = [], []
    for label in CLASSES:
        for path in sorted((root / label).glob("*.wav")):
            y, sr = sf.read(path)
            rows.append(clip_features(y, sr))
            labels.append(label)
    names = list(rows[0])
    return np.array([[r[n] for n in names] for r in rows]), np.array(labels), names


def best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """The best accuracy any single threshold (either direction) reaches on one feature."""
    positive = labels == labels[0]
    best = 0.0
    for threshold in np.unique(values):
        above = values >= threshold
        best = max(best, np.mean(above == positive), np.mean(above != positive))
    return best


def test_layout_format_and_speed(corpus: tuple[Path, float]) -> None:
    root, seconds = corpus
    assert seconds < 10, f"default corpus took {seconds:.1f} s"
    for label in CLASSES:
        files = sorted((root / label).glob("*.wav"))
        assert [f.name for f in files] == [f"{label}_{i:03d}.wav" for i in range(30)]
        info = sf.info(files[0])
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 64000)
        assert info.subtype == "PCM_16"
    peaks = [np.max(np.abs(sf.read(p)[0])) for p in root.glob("*/*.wav")]
    assert min(peaks) > 0.005 and max(peaks) <= 1.0
    assert min(peaks) < 0.05 < max(peaks) > 0.5  # some clips quiet, some loud


def test_same_bytes_on_every_run(corpus: tuple[Path, float], tmp_path: Path) -> None:
    root, _ = corpus
    again = synthesize_corpus(tmp_path / "again")
    for path in sorted(root.glob("*/*.wav")):
        assert (again / path.relative_to(root)).read_bytes() == path.read_bytes(), path.name
    other = synthesize_corpus(tmp_path / "other", seed=8, clips_per_class=1, duration_s=0.5)
    assert (other / "music" / "music_000.wav").read_bytes() != (
        root / "music" / "music_000.wav"
    ).read_bytes()


def test_folder_source_reads_the_corpus(corpus: tuple[Path, float]) -> None:
    root, _ = corpus
    spec = ExperimentSpec.model_validate(
        {"name": "demo", "data": {"source": "folder", "root": str(root)}}
    )
    clips = load_source(spec).clips
    assert clips["label"].value_counts().to_dict() == {"music": 30, "speech": 30}


def test_no_single_simple_feature_separates_the_classes(corpus: tuple[Path, float]) -> None:
    x, y, names = feature_matrix(corpus[0])
    for name in SIMPLE:
        accuracy = best_threshold_accuracy(x[:, names.index(name)], y)
        assert accuracy < 1.0, f"{name} alone separates music from speech"


def test_a_few_features_together_are_learnable(corpus: tuple[Path, float]) -> None:
    x, y, _ = feature_matrix(corpus[0])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0)
    accuracy = cross_val_score(model, x, y, cv=folds).mean()
    assert accuracy > 0.75, f"cross-validated accuracy {accuracy:.2f}"
