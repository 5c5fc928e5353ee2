"""The ``embedding`` extractor on tiny ONNX models built here, against their numpy twins.

Covers exact values (windows, frames axis, pooling, resampling), batching, the signature
check's message, one session per process, and the cache key following the file's content.
"""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features import FeaturesSpec, SegmentsSpec, build_table, extract_signal, feature_layout
from features.cache import config_key
from features.onnx_model import load_session, model_problem, read_signature, threads_for
from features.windows import frame_windows
from tests.runner._onnx_fixtures import conv_embedder, reference, weights, wrong_signature

SR = 16000
DIM, FRAME = 6, 400


def _spec(model: Path, **embedding: object) -> FeaturesSpec:
    settings = {"model": str(model), "window_s": 0.5, "hop_s": 0.25, **embedding}
    return FeaturesSpec(
        sample_rate=SR, extractors=["rms", "embedding"], n_jobs=1, embedding=settings
    )


def _signal(rng: np.random.Generator, seconds: float = 1.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def _twin(y: np.ndarray, w: np.ndarray, starts: list[int], win: int) -> np.ndarray:
    """Per-window embeddings of the numpy twin: ``(n_windows, dim)``."""
    return np.stack([reference(y[s : s + win], w).mean(axis=0) for s in starts])


def _columns(frame: pd.DataFrame, stat: str) -> np.ndarray:
    return frame[[f"embedding_{k:03d}_{stat}" for k in range(DIM)]].to_numpy()[0]


@pytest.mark.parametrize("frames_axis", [False, True], ids=["batch-dim", "batch-frames-dim"])
def test_values_equal_the_numpy_twin(
    tmp_path: Path, rng: np.random.Generator, frames_axis: bool
) -> None:
    model = conv_embedder(
        tmp_path / "m.onnx", dim=DIM, frame=FRAME, channel_axis=frames_axis,
        frames_axis=frames_axis,
    )  # fmt: skip
    y = _signal(rng)  # 20800 samples: windows every 4000, then one aligned to the end
    spec = _spec(model, pooling=["mean", "std", "max"])
    frame, _ = extract_signal(y, SR, spec, SegmentsSpec())
    per_window = _twin(y, weights(DIM, FRAME), [0, 4000, 8000, 12000, 12800], 8000)
    for stat, fn in {"mean": np.mean, "std": np.std, "max": np.max}.items():
        np.testing.assert_allclose(_columns(frame, stat), fn(per_window, axis=0), rtol=1e-5)
    assert list(frame.columns[:4]) == [
        "rms_mean", "rms_std", "embedding_000_mean", "embedding_000_std",
    ]  # fmt: skip


def test_resampled_once_to_the_model_rate(tmp_path: Path, rng: np.random.Generator) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    y = _signal(rng, seconds=0.4, sr=22050)  # shorter than a window: one window
    spec = _spec(model).model_copy(update={"sample_rate": 22050})
    frame, _ = extract_signal(y, 22050, spec, SegmentsSpec())
    at_16k = librosa.resample(y, orig_sr=22050, target_sr=SR, res_type="soxr_hq")
    expected = reference(at_16k, weights(DIM, FRAME)).mean(axis=0)
    np.testing.assert_allclose(_columns(frame, "mean"), expected, rtol=1e-5)
    np.testing.assert_allclose(_columns(frame, "std"), 0.0, atol=1e-12)  # one window


def test_batch_size_changes_speed_not_values(tmp_path: Path, rng: np.random.Generator) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    y = _signal(rng, seconds=3.0)
    one, _ = extract_signal(y, SR, _spec(model, batch_size=1), SegmentsSpec())
    many, _ = extract_signal(y, SR, _spec(model, batch_size=5), SegmentsSpec())
    np.testing.assert_allclose(one.to_numpy(), many.to_numpy(), rtol=1e-6)
    assert config_key(_spec(model, batch_size=1), SegmentsSpec()) == config_key(
        _spec(model, batch_size=5), SegmentsSpec()
    )


def test_windows_cover_the_tail_and_pad_fixed_lengths() -> None:
    y = np.arange(10, dtype=np.float32)
    assert frame_windows(y, 1, 4.0, 3.0)[:, 0].tolist() == [0, 3, 6]  # 6..9 ends the signal
    assert frame_windows(y, 1, 4.0, 2.0)[:, 0].tolist() == [0, 2, 4, 6]
    assert frame_windows(y[:3], 1, 4.0, 2.0).shape == (1, 3)  # short: itself
    assert frame_windows(y[:3], 1, 4.0, 2.0, fixed=4).tolist() == [[0, 1, 2, 0]]


def test_embedding_is_a_feature_group(tmp_path: Path) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    columns, groups = feature_layout(_spec(model, pooling=["max"]))
    assert groups["embedding"] == [f"embedding_{k:03d}_max" for k in range(DIM)]
    assert columns == groups["rms"] + groups["embedding"]


def test_wrong_signature_is_refused_with_what_the_file_declares(tmp_path: Path) -> None:
    bad = wrong_signature(tmp_path / "bad.onnx")
    problem = model_problem(bad, _spec(bad).embedding)
    assert problem is not None and problem.startswith("features.embedding.model: bad.onnx")
    assert "'loudness' tensor(float) [batch]" in problem and "[batch, dim]" in problem


def test_fixed_length_model_must_match_window_s(tmp_path: Path) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    assert model_problem(model, _spec(model).embedding) is None
    assert model_problem(tmp_path / "absent.onnx", _spec(model).embedding) == (
        f"features.embedding.model: no file at {tmp_path / 'absent.onnx'}; give the path of "
        "an ONNX model (see docs/embeddings.md)"
    )


def test_one_session_per_process_reloaded_when_the_file_changes(tmp_path: Path) -> None:
    path = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    first, signature = load_session(path, 1)
    assert load_session(path, 1)[0] is first
    assert signature.describe() == (
        f"input 'waveform' float [batch, samples] -> output 'embedding' float [batch, {DIM}]"
    )
    conv_embedder(path, dim=DIM + 1, frame=FRAME, seed=1)
    os.utime(path, ns=(1, 1))  # a new file, even within the clock's resolution
    second, signature = load_session(path, 1)
    assert second is not first and signature.dim == DIM + 1
    assert read_signature(path).dim == DIM + 1


def test_threads_split_the_cores_between_workers() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_for(1) == cores
    assert threads_for(-1) == 1
    assert threads_for(cores + 3) == 1


def test_a_new_model_file_never_serves_stale_rows(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    clips = []
    for i in range(2):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, _signal(rng, seconds=1.0), SR)
        clips.append({"clip_id": f"c{i}", "path": str(path), "label": "a", "group": None})
    clips = pd.DataFrame(clips)
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    spec = _spec(model)

    def build() -> tuple[np.ndarray, dict]:
        table = build_table(clips, spec, SegmentsSpec(), cache_dir=tmp_path / "c", progress=False)
        return table.frame[table.groups["embedding"]].to_numpy(), table.stats

    before, stats = build()
    assert stats["extracted"] == 2
    again, stats = build()
    assert stats["cache_hits"] == 2 and np.array_equal(again, before)
    key = config_key(spec, SegmentsSpec())
    conv_embedder(model, dim=DIM, frame=FRAME, seed=7)  # same path and size, new weights
    new_key = config_key(spec, SegmentsSpec())
    assert new_key != key
    after, stats = build()
    assert stats["extracted"] == 2 and not np.allclose(after, before)
    moved = model.rename(tmp_path / "renamed.onnx")  # the same content elsewhere: same key
    assert config_key(_spec(moved), SegmentsSpec()) == new_key
