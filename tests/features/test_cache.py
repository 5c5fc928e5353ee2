"""The feature cache: hits, invalidation by content, incremental builds and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features._atomic
import features.cache
import features.stat_index
from features import FeaturesSpec, FeatureTable, SegmentsSpec, build_table
from features.cache import config_key
from features.stat_index import StatIndex
from tests.features.conftest import make_corpus, tone_plus_noise, write_clip

DAY_NS = 86_400 * 10**9


def build(clips: pd.DataFrame, features: FeaturesSpec, cache: Path, **kwargs) -> FeatureTable:
    return build_table(clips, features, SegmentsSpec(), cache_dir=cache, progress=False, **kwargs)


def packs(cache: Path) -> list[Path]:
    return sorted(cache.glob("v1/*/packs/*.parquet"))


def flip_silently(path: Path, column: str) -> None:
    """Flip one byte of ``column``'s data pages in a Parquet file such that pyarrow still
    reads the file without error, to different values (what a bad disk sector can do)."""
    data = path.read_bytes()
    original = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata
    index = original.schema.get_field_index(column)
    chunk = meta.row_group(0).column(index)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    # Values sit at the end of a page, after its header: try from the end backwards.
    for offset in range(start + chunk.total_compressed_size - 1, start, -1):
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        try:
            table = pq.read_table(pa.py_buffer(bytes(flipped)))
        except (OSError, pa.ArrowException):
            continue
        if not table.equals(original):
            path.write_bytes(bytes(flipped))
            return
    raise AssertionError(f"no silent flip found in {path}:{column}")


def test_cold_then_warm(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 4, rng)
    cold = build(clips, small_features, tmp_path / "cache")
    assert cold.stats["cache_misses"] == 4 and cold.stats["extracted"] == 4
    warm = build(clips, small_features, tmp_path / "cache")
    assert warm.stats["cache_hits"] == 4 and warm.stats["cache_misses"] == 0
    assert warm.stats["extracted"] == 0
    pd.testing.assert_frame_equal(cold.frame, warm.frame)
    assert cold.digest == warm.digest


def test_digest_stable_across_caches_and_sensitive_to_content(
    tmp_path: Path, rng, small_features
) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    a = build(clips, small_features, tmp_path / "c1")
    b = build(clips, small_features, tmp_path / "c2")
    assert a.digest == b.digest
    relabelled = build(clips.assign(label="other"), small_features, tmp_path / "c1")
    assert relabelled.digest != a.digest


def test_renamed_file_is_a_hit(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng)
    build(clips, small_features, tmp_path / "cache")
    moved = Path(clips.loc[0, "path"]).rename(tmp_path / "audio" / "renamed.wav")
    again = build(
        clips.assign(path=[str(moved), clips.loc[1, "path"]]), small_features, tmp_path / "cache"
    )
    assert again.stats["cache_hits"] == 2


def test_changed_content_same_name_is_noticed(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    before = build(clips, small_features, tmp_path / "cache")
    write_clip(Path(clips.loc[1, "path"]), tone_plus_noise(2500.0, 1.0, rng))  # same size
    after = build(clips, small_features, tmp_path / "cache")
    assert after.stats["cache_misses"] == 1 and after.stats["extracted"] == 1
    cols = before.feature_columns
    changed = ~np.isclose(before.frame[cols].to_numpy(), after.frame[cols].to_numpy()).all(axis=1)
    assert changed.tolist() == [False, True, False]


def test_fast_path_skips_hashing_but_not_changes(
    tmp_path: Path, rng, small_features, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    monkeypatch.setattr(features.stat_index, "RACY_NS", 0)  # files are trusted at once
    assert build(clips, small_features, tmp_path / "cache").stats["hashed"] == 3
    warm = build(clips, small_features, tmp_path / "cache")
    assert warm.stats["cache_hits"] == 3
    assert warm.stats["hashed"] == 0  # warm: stat only
    # Same size, and the old mtime restored: only ctime (not settable) reveals the change.
    target = Path(clips.loc[0, "path"])
    st = target.stat()
    write_clip(target, tone_plus_noise(3000.0, 1.0, rng))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    after = build(clips, small_features, tmp_path / "cache")
    assert after.stats["hashed"] == 1 and after.stats["cache_hits"] == 2
    assert after.stats["extracted"] == 1


def test_racy_entries_are_rehashed(
    tmp_path: Path, rng, small_features, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features.stat_index, "RACY_NS", 3600 * 10**9)  # everything is recent
    clips = make_corpus(tmp_path / "audio", 2, rng)
    build(clips, small_features, tmp_path / "cache")
    again = build(clips, small_features, tmp_path / "cache")
    assert again.stats["hashed"] == 2  # hashed again, but the content is known: cache hits
    assert again.stats["cache_hits"] == 2 and again.stats["extracted"] == 0


def test_stat_index_rules(tmp_path: Path) -> None:
    index = StatIndex(tmp_path)
    now = 10 * DAY_NS
    old = SimpleNamespace(st_size=10, st_mtime_ns=now - DAY_NS, st_ctime_ns=now - DAY_NS, st_ino=7)
    index.record("a.wav", old, "sha-a", checked_ns=now)
    assert index.lookup("a.wav", old) == "sha-a"
    assert index.lookup("b.wav", old) is None
    for change in ({"st_size": 11}, {"st_mtime_ns": now}, {"st_ctime_ns": now}, {"st_ino": 8}):
        assert index.lookup("a.wav", SimpleNamespace(**{**vars(old), **change})) is None
    fresh = SimpleNamespace(**{**vars(old), "st_mtime_ns": now - 1})
    index.record("c.wav", fresh, "sha-c", checked_ns=now)
    assert index.lookup("c.wav", fresh) is None  # modified just before hashing: racy
    index.save()
    reloaded = StatIndex(tmp_path)
    assert reloaded.lookup("a.wav", old) == "sha-a"
    flip_silently(tmp_path / "stat-index.parquet", "sha")  # reads fine, one hash is wrong
    with pytest.warns(UserWarning, match="stat-index.parquet: its entries do not match"):
        assert StatIndex(tmp_path).lookup("a.wav", old) is None  # a damaged index is ignored
    (tmp_path / "stat-index.parquet").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="Damaged feature cache file .*stat-index.parquet"):
        assert StatIndex(tmp_path).lookup("a.wav", old) is None


def test_incremental_extracts_only_new_clips(tmp_path: Path, rng, small_features) -> None:
    first = make_corpus(tmp_path / "audio", 5, rng)
    build(first, small_features, tmp_path / "cache")
    more = pd.concat([first, make_corpus(tmp_path / "audio", 2, rng, start=5)], ignore_index=True)
    table = build(more, small_features, tmp_path / "cache")
    assert table.stats["cache_hits"] == 5 and table.stats["extracted"] == 2
    assert table.stats["rows"] == 7 and len(packs(tmp_path / "cache")) == 2


def test_config_change_is_a_miss(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng)
    build(clips, small_features, tmp_path / "cache")
    other = small_features.model_copy(update={"stats": ["mean", "max"]})
    assert build(clips, other, tmp_path / "cache").stats["extracted"] == 2
    assert config_key(small_features, SegmentsSpec()) != config_key(other, SegmentsSpec())
    # Options that do not change rows share the cache.
    jobs = small_features.model_copy(update={"n_jobs": 2})
    assert config_key(small_features, SegmentsSpec()) == config_key(jobs, SegmentsSpec())


def test_crash_before_replace_leaves_no_valid_pack(
    tmp_path: Path, rng, small_features, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    reference = build(clips, small_features, tmp_path / "ref")

    real_replace = os.replace

    def killed(src: str | Path, dst: str | Path) -> None:
        if Path(dst).parent.name == "packs":
            raise KeyboardInterrupt("killed between the temp write and the rename")
        real_replace(src, dst)

    monkeypatch.setattr(features._atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        build(clips, small_features, tmp_path / "cache")
    monkeypatch.undo()
    assert packs(tmp_path / "cache") == []
    # A writer killed with SIGKILL leaves its temp file behind: it must be ignored too.
    pack_dir = tmp_path / "cache" / "v1" / config_key(small_features, SegmentsSpec()) / "packs"
    assert [p.name for p in pack_dir.iterdir()] == []  # the temp file was removed, too
    (pack_dir / ".tmp-0123-00000000000000000001-dead.parquet").write_bytes(b"PAR1partial")
    table = build(clips, small_features, tmp_path / "cache")
    assert table.stats["extracted"] == 3 and table.digest == reference.digest


def test_truncated_pack_is_not_loaded(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    reference = build(clips, small_features, tmp_path / "cache")
    (pack,) = packs(tmp_path / "cache")
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    with pytest.warns(UserWarning, match="Damaged feature cache file .*do not match"):
        table = build(clips, small_features, tmp_path / "cache")
    assert table.stats["extracted"] == 3 and table.digest == reference.digest


def test_flipped_byte_in_a_pack_is_caught_and_re_extracted(
    tmp_path: Path, rng, small_features
) -> None:
    clips = make_corpus(tmp_path / "audio", 3, rng)
    reference = build(clips, small_features, tmp_path / "cache")
    (pack,) = packs(tmp_path / "cache")
    flip_silently(pack, reference.feature_columns[-1])  # pyarrow reads it: a different number
    with pytest.warns(UserWarning, match=f"Damaged feature cache file .*{pack.name}"):
        table = build(clips, small_features, tmp_path / "cache")
    assert table.stats["extracted"] == 3
    pd.testing.assert_frame_equal(table.frame, reference.frame)
    assert table.digest == reference.digest
    (rewritten,) = packs(tmp_path / "cache")
    assert rewritten != pack and pack.with_name(pack.name + ".damaged").exists()
    warm = build(clips, small_features, tmp_path / "cache")  # the new pack verifies
    assert warm.stats["extracted"] == 0 and warm.digest == reference.digest


def test_pack_without_checksum_is_rewritten_with_one(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng)
    reference = build(clips, small_features, tmp_path / "cache")
    (pack,) = packs(tmp_path / "cache")
    legacy = pack.with_name(pack.name.split(".")[0] + ".parquet")  # the older name
    pack.rename(legacy)
    table = build(clips, small_features, tmp_path / "cache")
    assert table.stats["extracted"] == 0 and table.digest == reference.digest
    (rewritten,) = packs(tmp_path / "cache")
    assert rewritten != legacy and not legacy.exists()
    assert rewritten.name.split(".")[1] == features.cache.pack_digest(rewritten.read_bytes())


def test_foreign_pack_is_not_loaded(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng)
    build(clips, small_features, tmp_path / "a")
    build(clips, small_features.model_copy(update={"stats": ["max"]}), tmp_path / "b")
    (foreign,) = packs(tmp_path / "b")
    (own,) = packs(tmp_path / "a")
    own.unlink()
    foreign.rename(own.with_name(foreign.name))  # right place, intact, wrong config
    with pytest.warns(UserWarning, match="not this config"):
        table = build(clips, small_features, tmp_path / "a")
    assert table.stats["extracted"] == 2


def test_packs_are_compacted(
    tmp_path: Path, rng, small_features, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features.cache, "MAX_PACKS", 2)
    clips = make_corpus(tmp_path / "audio", 4, rng)
    for n in range(1, 5):
        table = build(clips.iloc[:n], small_features, tmp_path / "cache")
    assert len(packs(tmp_path / "cache")) <= 2
    assert build(clips, small_features, tmp_path / "cache").stats["cache_hits"] == 4
    assert table.stats["rows"] == 4
