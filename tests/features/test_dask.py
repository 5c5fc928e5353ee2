"""Extraction on a real Dask cluster: a scheduler and two workers started with Dask's own
commands on 127.0.0.1, the table compared with the local pool's, and a worker SIGKILLed
while it holds a task."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features import FeaturesSpec, FeatureTable
from tests._dask_cluster import Cluster, dask_cluster
from tests.features.conftest import build, make_corpus, tone_plus_noise, write_clip

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


def _features(cluster: Cluster, **kw: object) -> FeaturesSpec:
    settings = {"extractors": ["mfcc", "centroid", "rms"], "mfcc": {"n_mfcc": 8}, **kw}
    return FeaturesSpec(executor="dask", scheduler=cluster.address, **settings)


def _same_table(got: FeatureTable, want: FeatureTable) -> None:
    pd.testing.assert_frame_equal(got.frame, want.frame)
    assert got.digest == want.digest
    assert list(got.skipped["clip_id"]) == list(want.skipped["clip_id"])


@pytest.mark.slow
def test_dask_build_equals_the_local_one(tmp_path: Path, rng, cluster: Cluster) -> None:
    clips = make_corpus(tmp_path / "audio", 12, rng)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"RIFF not audio")
    clips = pd.concat(
        [clips, pd.DataFrame([{"clip_id": "broken", "path": str(tmp_path / "audio/broken.wav"),
                               "label": "low", "group": "g0", "extra": 0}])],
        ignore_index=True,
    )  # fmt: skip
    local_spec = _features(cluster).model_copy(update={"executor": "local"})
    local = build(clips, local_spec, tmp_path / "local", n_jobs=1)
    on_dask = build(clips, _features(cluster), tmp_path / "dask")
    _same_table(on_dask, local)
    assert on_dask.stats["extracted"] == 12 and on_dask.stats["skipped"] == 1
    assert "broken" in set(on_dask.skipped["clip_id"])
    # The executor is not part of the cache key: the local build reads the Dask build's packs.
    again = build(clips, local_spec, tmp_path / "dask")
    assert again.stats["cache_misses"] == 0  # the broken clip's reason is cached too
    _same_table(again, local)
    # The scheduler file works as the address too.
    by_file = _features(cluster).model_copy(update={"scheduler": str(cluster.scheduler_file)})
    _same_table(build(clips, by_file, tmp_path / "by-file"), local)


@pytest.mark.slow
def test_a_worker_killed_mid_build_costs_only_its_task(
    tmp_path: Path, rng, cluster: Cluster
) -> None:
    """The first task holds a 5-minute clip (about a second of work); the worker running it
    is SIGKILLed while it does, and the scheduler runs the task again on the other one."""
    clips = make_corpus(tmp_path / "audio", 16, rng, seconds=2.0)
    long = write_clip(tmp_path / "audio" / "long.wav", tone_plus_noise(440.0, 300.0, rng))
    first = {"clip_id": "long", "path": str(long), "label": "low", "group": "g0", "extra": 0}
    clips = pd.concat([pd.DataFrame([first]), clips], ignore_index=True)
    features = _features(cluster, extractors=["mfcc", "centroid", "rms", "hpss"])
    local = build(clips, features.model_copy(update={"executor": "local"}), tmp_path / "local")
    result: dict[str, FeatureTable] = {}
    builder = threading.Thread(
        target=lambda: result.setdefault("table", build(clips, features, tmp_path / "dask"))
    )
    builder.start()
    with distributed.Client(cluster.address, timeout="30s") as watcher:
        name = _holder_of_first_task(watcher, deadline=time.monotonic() + 120)
        assert builder.is_alive(), "the build ended before a worker could be killed"
        victim = cluster.workers[name]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    builder.join(timeout=300)
    assert victim.returncode == -signal.SIGKILL
    table = result["table"]
    assert table.skipped.empty, table.skipped
    _same_table(table, local)
    assert table.stats["extracted"] == len(clips)


def _holder_of_first_task(client: distributed.Client, *, deadline: float) -> str:
    """The name of the worker running task 0 (the long clip's), once it runs."""
    while time.monotonic() < deadline:
        names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        for address, keys in client.processing().items():
            if any(str(k).startswith("audioml-features-") and str(k).endswith("-0")
                   for k in keys):  # fmt: skip
                return names[address]
        time.sleep(0.02)
    raise AssertionError("no worker ran the first extraction task in time")


@pytest.mark.slow
def test_features_command_with_executor_dask_writes_the_local_table(
    tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audioml features demo --executor dask --scheduler ADDR` as a user types it: the
    table it writes equals the local command's (the flags are --set shorthands)."""
    from runner.cli import main
    from runner.data.demo_data import synthesize_corpus

    corpus = synthesize_corpus(tmp_path / "demo-data", clips_per_class=6, duration_s=2.0)
    monkeypatch.chdir(tmp_path)
    common = ["--set", f"data.root={corpus}", "-q"]
    local, dask = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    assert main(["features", "demo", *common, "--out", str(local),
                 "--set", f"features.cache_dir={tmp_path / 'c1'}"]) == 0  # fmt: skip
    assert main(["features", "demo", *common, "--out", str(dask), "--executor", "dask",
                 "--scheduler", cluster.address,
                 "--set", f"features.cache_dir={tmp_path / 'c2'}"]) == 0  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(dask), pd.read_parquet(local))
    assert len(pd.read_parquet(local)) == 12


@pytest.mark.slow
def test_dask_tasks_run_embedding_windows_of_many_clips_together(
    tmp_path: Path, cluster: Cluster
) -> None:
    """A task's clips go through the embedding's batch form together, as a local job's do:
    every clip gets its numpy twin's rows and a broken clip among them is named."""
    from tests.features.test_embedding_batches import (
        LENGTHS,
        assert_rows_are_the_twins,
        corpus,
        spec_of,
    )
    from tests.runner._onnx_fixtures import conv_embedder

    model = conv_embedder(tmp_path / "m.onnx", dim=6, frame=400)
    lengths = LENGTHS * 3  # 19 clips for 2 workers: tasks of 3 clips (features._dask)
    clips = corpus(tmp_path / "audio", lengths)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"RIFF not audio")
    broken = {"clip_id": "broken", "path": str(tmp_path / "audio/broken.wav"), "label": "a",
              "group": None}  # fmt: skip
    with_broken = pd.concat([clips.iloc[:2], pd.DataFrame([broken]), clips.iloc[2:]])
    spec = spec_of(model).model_copy(update={"executor": "dask", "scheduler": cluster.address})
    table = build(with_broken.reset_index(drop=True), spec, tmp_path / "dask")
    assert table.skipped["clip_id"].tolist() == ["broken"]
    assert list(table.frame["clip_id"]) == list(clips["clip_id"])
    assert_rows_are_the_twins(table, clips, lengths)
