"""Windows of many clips share model runs: the build's jobs of several clips and the batch
form of an extractor (``features.batch``), on tiny ONNX models and their numpy twins.

Covers: a job of several clips gives every clip the rows a clip-by-clip extraction gives
(and the cache packs a rerun reuses), bad clips inside a job are skipped and named while
their neighbours get rows, a clip that hangs inside a job costs only itself, one session per
worker process (counted through ``AUDIOML_SESSION_LOG``), and the batch protocol itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features import FeaturesSpec, SegmentsSpec, build_table, extract_signal
from features._registry import FEATURES, register_feature
from features._worker import clips_per_job
from features.batch import extract_signals
from features.context import SpectralContext
from features.onnx_model import load_session
from features.windows import _batches, embed_windows
from runner.errors import FeatureError
from tests.features.test_build_faults import with_fifo
from tests.runner._onnx_fixtures import conv_embedder, reference, weights

SR = 16000
DIM, FRAME = 6, 400
WIN, HOP = 8000, 4000  # 0.5-s windows every 0.25 s at 16 kHz
# Clip lengths in samples: shorter than a window (one window of its own length), exactly
# one window, hops that leave a tail (one more window ends the clip), and a longer clip.
LENGTHS = [4800, 8000, 20800, 32000, 12000, 26000]


def spec_of(model: Path, n_jobs: int = 1, batch_size: int = 32, **update: object) -> FeaturesSpec:
    embedding = {"model": str(model), "window_s": 0.5, "hop_s": 0.25, "pooling": ["mean", "max"],
                 "batch_size": batch_size}  # fmt: skip
    settings = {"sample_rate": SR, "extractors": ["rms", "embedding"], "n_jobs": n_jobs}
    return FeaturesSpec(**settings, embedding=embedding, **update)


def _signal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    y = 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.05 * rng.standard_normal(n)
    return y.astype(np.float32)


def corpus(folder: Path, lengths: list[int]) -> pd.DataFrame:
    """Float WAV clips (decoded back to exactly these samples), one per length."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, n in enumerate(lengths):
        path = folder / f"c{i}.wav"
        sf.write(path, _signal(n, i), SR, subtype="FLOAT")
        rows.append({"clip_id": f"c{i}", "path": str(path), "label": "a", "group": None})
    return pd.DataFrame(rows)


def _twin(y: np.ndarray) -> dict[str, np.ndarray]:
    """The numpy twin's pooled embedding of one clip (windows as ``frame_windows`` cuts)."""
    w = weights(DIM, FRAME)
    if len(y) <= WIN:
        starts, win = [0], len(y)
    else:
        starts = list(range(0, len(y) - WIN + 1, HOP))
        starts += [len(y) - WIN] if starts[-1] != len(y) - WIN else []
        win = WIN
    per_window = np.stack([reference(y[s : s + win], w).mean(axis=0) for s in starts])
    return {"mean": per_window.mean(axis=0), "max": per_window.max(axis=0)}


def assert_rows_are_the_twins(table, clips: pd.DataFrame, lengths: list[int]) -> None:
    frame = table.frame.set_index("clip_id")
    for clip_id, n in zip(clips["clip_id"], lengths, strict=True):
        i = int(clip_id[1:])
        for stat, expected in _twin(_signal(n, i)).items():
            got = frame.loc[clip_id, [f"embedding_{k:03d}_{stat}" for k in range(DIM)]]
            np.testing.assert_allclose(got.to_numpy(dtype=float), expected, rtol=1e-5)


def _build(clips: pd.DataFrame, spec: FeaturesSpec, cache: Path):
    return build_table(
        clips, spec, SegmentsSpec(), cache_dir=cache, n_jobs=spec.n_jobs, progress=False
    )


@pytest.mark.parametrize("batch_size", [32, 3], ids=["one-run-per-length", "runs-span-clips"])
def test_a_job_of_many_clips_gives_the_clip_by_clip_table(tmp_path: Path, batch_size) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    clips = corpus(tmp_path / "audio", LENGTHS)
    spec = spec_of(model, batch_size=batch_size)
    assert clips_per_job(spec, len(clips), 1) == 3  # two jobs of three clips
    table = _build(clips, spec, tmp_path / "cache")
    assert table.stats["extracted"] == len(clips) and table.skipped.empty
    assert_rows_are_the_twins(table, clips, LENGTHS)
    for clip_id, path in zip(clips["clip_id"], clips["path"], strict=True):
        alone, _ = extract_signal(sf.read(path, dtype="float32")[0], SR, spec, SegmentsSpec())
        row = table.frame.loc[table.frame["clip_id"] == clip_id, table.feature_columns]
        np.testing.assert_allclose(row.to_numpy()[0], alone.to_numpy()[0], rtol=1e-6)
    again = _build(clips, spec, tmp_path / "cache")  # per-clip packs: all hits
    assert again.stats["cache_hits"] == len(clips) and again.stats["extracted"] == 0
    assert again.frame.equals(table.frame)


def test_bad_clips_inside_a_job_are_named_and_neighbours_kept(tmp_path: Path) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    clips = corpus(tmp_path / "audio", LENGTHS[:4])
    silent = tmp_path / "audio" / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR, subtype="FLOAT")
    (garbage := tmp_path / "audio" / "garbage.wav").write_bytes(b"not audio at all" * 64)
    bad = pd.DataFrame(
        [
            {"clip_id": "silent", "path": str(silent), "label": "a", "group": None},
            {"clip_id": "garbage", "path": str(garbage), "label": "a", "group": None},
        ]
    )
    parts = [clips.iloc[:1], bad.iloc[:1], clips.iloc[1:3], bad.iloc[1:], clips.iloc[3:]]
    mixed = pd.concat(parts)
    spec = spec_of(model)
    assert clips_per_job(spec, len(mixed), 1) == 3  # each job holds a bad clip
    table = _build(mixed.reset_index(drop=True), spec, tmp_path / "cache")
    assert dict(zip(table.skipped["clip_id"], table.skipped["reason"], strict=True)) == {
        "silent": "digital silence (all samples zero)",
        "garbage": "not audio: format not recognised",
    }
    assert list(table.frame["clip_id"]) == ["c0", "c1", "c2", "c3"]
    assert_rows_are_the_twins(table, clips, LENGTHS[:4])


def test_a_clip_that_hangs_inside_a_job_costs_only_itself(tmp_path: Path) -> None:
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    good = corpus(tmp_path / "audio", LENGTHS[:4])
    clips, _ = with_fifo(good, tmp_path / "audio", 1)  # nobody writes: open() blocks
    spec = spec_of(model, clip_timeout_s=1.5)
    table = _build(clips, spec, tmp_path / "cache")
    assert table.skipped["clip_id"].tolist() == ["pipe"]
    assert "timed out after 1.5 s" in table.skipped["reason"].iloc[0]
    assert list(table.frame["clip_id"]) == ["c0", "c1", "c2", "c3"]
    assert_rows_are_the_twins(table, good, LENGTHS[:4])


def test_one_session_per_worker_process(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "sessions.log"
    monkeypatch.setenv("AUDIOML_SESSION_LOG", str(log))
    model = conv_embedder(tmp_path / "m.onnx", dim=DIM, frame=FRAME)
    lengths = LENGTHS + LENGTHS[:2]
    clips = corpus(tmp_path / "audio", lengths)
    spec = spec_of(model, n_jobs=1)  # the build below starts 2 processes all the same
    assert clips_per_job(spec, len(clips), 2) == 2  # four jobs for two workers
    table = build_table(clips, spec, SegmentsSpec(), cache_dir=tmp_path / "c", n_jobs=2,
                        progress=False)  # fmt: skip
    assert_rows_are_the_twins(table, clips, lengths)
    lines = [line.split() for line in log.read_text().splitlines()]
    workers = [(pid, threads) for pid, name, threads in lines if pid != str(os.getpid())]
    assert len(workers) == 2 and len({pid for pid, _ in workers}) == 2  # never per job
    cores = len(os.sched_getaffinity(0))
    assert {int(threads) for _, threads in workers} == {max(1, cores // 2)}  # the plan's
    assert {name for _, name, _ in lines} == {"m.onnx"}


def test_windows_of_several_arrays_run_as_one_sequence(tmp_path: Path) -> None:
    session, signature = load_session(conv_embedder(tmp_path / "m.onnx", dim=DIM), 1)
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((n, 800)).astype(np.float32) for n in (2, 5, 1, 4)]
    whole = embed_windows(session, signature, np.concatenate(parts), 100)
    for size in (1, 3, 4, 12):  # batches that cut parts, end with them, or hold them all
        np.testing.assert_allclose(embed_windows(session, signature, parts, size), whole,
                                   rtol=1e-6)  # fmt: skip
    assert whole.shape == (12, DIM)
    batches = list(_batches(parts, 5))  # every run holds batch_size windows but the last
    assert [len(b) for b in batches] == [5, 5, 2]
    assert np.array_equal(np.concatenate(batches), np.concatenate(parts))


# The batch protocol itself, on an extractor registered here (a third-party extractor).
_CALLS: list[int] = []


@pytest.fixture
def probe() -> Iterator[str]:
    """``probe``: the segment's length and peak; its batch form records each call's size and
    fails a batch holding a segment of exactly 3000 samples (the clip's own error)."""

    def one(ctx: SpectralContext) -> dict[str, float]:
        if len(ctx.y) == 3000:
            raise FeatureError("probe refuses 3000 samples")
        return {"n": float(len(ctx.y)), "peak": float(np.max(np.abs(ctx.y)))}

    def many(contexts) -> list[dict[str, float]]:
        _CALLS.append(len(contexts))
        return [one(ctx) for ctx in contexts]

    register_feature("probe", batch=many)(one)
    _CALLS.clear()
    yield "probe"
    del FEATURES["probe"]


def test_batch_form_gets_every_segment_of_every_signal(probe: str) -> None:
    spec = FeaturesSpec(sample_rate=SR, extractors=["rms", probe])
    segments = SegmentsSpec(mode="fixed", length_s=0.5)
    signals = [_signal(n, i) for i, n in enumerate([16000, 8000, 24000])]
    out = extract_signals(signals, SR, spec, segments)
    assert _CALLS == [2 + 1 + 3]  # one call, all six segments
    for y, got in zip(signals, out, strict=True):
        alone, _ = extract_signal(y, SR, spec, segments)
        assert not isinstance(got, Exception) and got[0].equals(alone)


def test_a_failing_batch_is_run_per_clip_and_names_the_clip(probe: str) -> None:
    spec = FeaturesSpec(sample_rate=SR, extractors=["rms", probe])
    signals = [_signal(4000, 0), _signal(3000, 1), np.zeros(4000, np.float32), _signal(5000, 3)]
    out = extract_signals(signals, SR, spec, SegmentsSpec())
    assert _CALLS == [3]  # the silent signal never reached the batch; the batch raised
    assert str(out[1]) == "probe refuses 3000 samples" and isinstance(out[1], FeatureError)
    assert str(out[2]) == "digital silence (all samples zero)"
    for i in (0, 3):
        assert out[i][0]["probe_n"].tolist() == [float(len(signals[i]))]  # type: ignore[index]
