"""build_table survives its workers: a worker killed mid-clip, a clip that hangs, long files.

The faults are real: a named pipe (os.mkfifo) named like a WAV file blocks the worker that
opens it exactly as a stalled file system would, and the test SIGKILLs the very worker
process that holds the pipe open.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import (
    FeaturesSpec,
    FeatureTable,
    SegmentsSpec,
    decode_audio,
    extract_signal,
)
from features.cache import FeatureStore, cached_layout, config_key
from tests.features.conftest import SR, build, make_corpus, tone_plus_noise, write_clip


def with_fifo(clips: pd.DataFrame, folder: Path, position: int) -> tuple[pd.DataFrame, Path]:
    """``clips`` with a named pipe ``pipe.wav`` inserted at ``position``."""
    fifo = folder / "pipe.wav"
    os.mkfifo(fifo)
    row = pd.DataFrame([{"clip_id": "pipe", "path": str(fifo), "label": "x", "group": "g0"}])
    parts = [clips.iloc[:position], row, clips.iloc[position:]]
    return pd.concat(parts, ignore_index=True), fifo


def cached_keys(cache: Path, features: FeaturesSpec) -> set[str]:
    key = config_key(features, SegmentsSpec())
    columns, _ = cached_layout(cache, key, features)
    rows = FeatureStore(cache, key, columns, None).load()
    return set(rows.loc[rows["reason"].isna(), "key"])


def holder_of(fifo: Path, timeout_s: float = 30.0) -> int:
    """The pid of this process's worker that has ``fifo`` open: a child, or a child of this
    process's fork server (the pool's context when Keras is loaded)."""
    deadline = time.monotonic() + timeout_s
    me = os.getpid()
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if me not in _ancestors(int(pid), 2):
                    continue
                fds = Path(f"/proc/{pid}/fd")
                if any(os.readlink(fd) == str(fifo) for fd in fds.iterdir()):
                    return int(pid)
            except OSError:  # the process ended meanwhile
                continue
        time.sleep(0.01)
    raise AssertionError(f"no worker opened {fifo}")


def _ancestors(pid: int, levels: int) -> list[int]:
    out = []
    for _ in range(levels):
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(status.split("PPid:\t", 1)[1].split("\n", 1)[0])
        out.append(pid)
    return out


def assert_good_clips_kept(table: FeatureTable, good: pd.DataFrame, cache: Path, feats) -> None:
    assert list(table.frame["clip_id"]) == list(good["clip_id"])
    assert table.stats["extracted"] == len(good)
    shas = {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in good["path"]}
    assert cached_keys(cache, feats) >= shas


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_worker_killed_mid_clip_costs_that_clip(tmp_path: Path, rng, small_features, n_jobs):
    good = make_corpus(tmp_path / "audio", 5, rng)
    clips, fifo = with_fifo(good, tmp_path / "audio", 1)
    killed: list[int] = []

    def kill_the_reader() -> None:
        with open(fifo, "wb"):  # returns once a worker has opened the pipe to read it
            pid = holder_of(fifo)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_the_reader, daemon=True)
    killer.start()
    table = build(clips, small_features, tmp_path / "cache", n_jobs=n_jobs)
    killer.join(10)
    assert killed, "the test did not kill a worker"
    skipped = table.skipped.set_index("clip_id")
    assert list(skipped.index) == ["pipe"]
    assert "worker process died (SIGKILL)" in skipped.loc["pipe", "reason"]
    assert_good_clips_kept(table, good, tmp_path / "cache", small_features)


def test_hanging_clip_times_out_and_the_build_goes_on(tmp_path: Path, rng, small_features):
    good = make_corpus(tmp_path / "audio", 4, rng)
    clips, _ = with_fifo(good, tmp_path / "audio", 0)  # nobody ever writes: open() blocks
    feats = small_features.model_copy(update={"clip_timeout_s": 2.0})
    started = time.monotonic()
    table = build(clips, feats, tmp_path / "cache", n_jobs=2)
    assert time.monotonic() - started < 60
    assert table.skipped["clip_id"].tolist() == ["pipe"]
    assert "timed out after 2 s" in table.skipped["reason"].iloc[0]
    assert_good_clips_kept(table, good, tmp_path / "cache", feats)
    # Not cached as bad: the next run tries the clip again, the good ones are hits.
    again = build(clips, feats, tmp_path / "cache", n_jobs=1)
    assert again.stats["cache_hits"] == len(good) and again.stats["extracted"] == 0
    assert again.skipped["clip_id"].tolist() == ["pipe"]


def test_long_file_is_read_only_to_max_duration(tmp_path: Path, rng, small_features):
    clips = make_corpus(tmp_path / "audio", 2, rng)
    long = tone_plus_noise(440.0, 5.0, rng)
    write_clip(Path(clips.loc[1, "path"]), long)
    feats = small_features.model_copy(update={"max_duration_s": 2.0})
    table = build(clips, feats, tmp_path / "cache")
    assert table.stats["cut"] == 1
    assert table.notes["clip_id"].tolist() == ["c001"]
    assert table.notes["note"].iloc[0] == "cut: read the first 2 s of 5 s"
    decoded = decode_audio(clips.loc[1, "path"], SR)  # the whole file, as written (16-bit)
    head, _ = extract_signal(decoded[: 2 * SR], SR, feats, SegmentsSpec())
    whole, _ = extract_signal(decoded, SR, feats, SegmentsSpec())
    row = table.frame.loc[table.frame["clip_id"] == "c001", table.feature_columns]
    np.testing.assert_allclose(row.to_numpy()[0], head.to_numpy()[0], rtol=1e-6, atol=1e-9)
    assert not np.allclose(row.to_numpy()[0], whole.to_numpy()[0])
    # The note is cached with the rows: a warm run still reports the cut.
    warm = build(clips, feats, tmp_path / "cache")
    assert warm.stats["extracted"] == 0 and warm.stats["cut"] == 1
    # Without a limit the whole file is read, under another cache config.
    full = build(clips, feats.model_copy(update={"max_duration_s": None}), tmp_path / "cache")
    assert full.stats["cut"] == 0 and full.stats["extracted"] == 2
