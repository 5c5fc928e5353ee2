"""build_table: bad clips, the table layout, parallel extraction and mel images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features import (
    FeaturesSpec,
    SegmentsSpec,
    decode_audio,
    extract_signal,
)
from runner.errors import FeatureError
from tests.features.conftest import SR, build, make_corpus, tone_plus_noise, write_clip


def add_bad_clips(folder: Path, rng: np.random.Generator) -> pd.DataFrame:
    """One clip of every bad kind, with the reason each must be skipped for."""
    folder.mkdir(parents=True, exist_ok=True)
    good = tone_plus_noise(300.0, 1.0, rng)
    (folder / "zero.wav").write_bytes(b"")
    (folder / "text.wav").write_text("not audio, a text file\n" * 50)
    full = write_clip(folder / "full.wav", good).read_bytes()
    (folder / "truncated.wav").write_bytes(full[: len(full) // 2])
    write_clip(folder / "short.wav", good[:500])
    write_clip(folder / "silence.wav", np.zeros(SR, np.float32))
    kinds = {
        "zero": "empty file",
        "text": "not audio",
        "truncated": "truncated",
        "short": "shorter than one frame",
        "silence": "digital silence",
        "missing": "file not found",
    }
    return pd.DataFrame(
        [
            {
                "clip_id": k,
                "path": str(folder / f"{k}.wav"),
                "label": "x",
                "group": None,
                "reason": r,
            }
            for k, r in kinds.items()
        ]
    )


def test_layout_and_bad_clips(tmp_path: Path, rng, small_features) -> None:
    good = make_corpus(tmp_path / "audio", 3, rng)
    bad = add_bad_clips(tmp_path / "audio", rng)
    clips = pd.concat([good, bad.drop(columns="reason")], ignore_index=True)
    table = build(clips, small_features, tmp_path / "cache")
    frame = table.frame
    assert list(frame.columns[:4]) == ["clip_id", "segment", "label", "group"]
    assert list(frame.columns[4:]) == table.feature_columns
    assert isinstance(frame.index, pd.RangeIndex)
    assert list(frame["clip_id"]) == list(good["clip_id"])
    assert list(frame["label"]) == list(good["label"])
    assert list(frame["group"]) == list(good["group"])
    assert list(table.groups) == small_features.extractors
    assert list(table.skipped.columns) == ["clip_id", "path", "reason"]
    skipped = table.skipped.set_index("clip_id")
    for row in bad.itertuples():
        assert row.reason in skipped.loc[row.clip_id, "reason"]
        assert skipped.loc[row.clip_id, "path"] == row.path
    assert table.stats["skipped"] == 6 and table.stats["clips"] == 3
    assert table.stats["rows"] == 3 and table.stats["columns"] == len(table.feature_columns)
    assert table.mel_path is None


def test_bad_clips_are_cached_but_missing_files_are_rechecked(
    tmp_path: Path, rng, small_features
) -> None:
    bad = add_bad_clips(tmp_path / "audio", rng).drop(columns="reason")
    build(bad, small_features, tmp_path / "cache")
    warm = build(bad, small_features, tmp_path / "cache")
    assert warm.stats["cache_hits"] == 5 and warm.stats["cache_misses"] == 0
    write_clip(tmp_path / "audio" / "missing.wav", tone_plus_noise(500.0, 1.0, rng))
    found = build(bad, small_features, tmp_path / "cache")
    assert found.stats["extracted"] == 1 and list(found.frame["clip_id"]) == ["missing"]


def test_table_rows_equal_extract_signal(tmp_path: Path, rng, all_features) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng, seconds=2.5)
    segments = SegmentsSpec(mode="fixed", length_s=1.0)
    table = build(clips, all_features, tmp_path / "cache", segments=segments)
    assert list(table.frame["segment"]) == [0, 1, 0, 1]
    y = decode_audio(clips["path"][1], SR)
    direct, _ = extract_signal(y, SR, all_features, segments)
    got = table.frame.loc[table.frame["clip_id"] == "c001", table.feature_columns]
    np.testing.assert_array_equal(got.to_numpy(), direct.to_numpy())


def test_parallel_equals_serial(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "audio", 6, rng)
    serial = build(clips, small_features, tmp_path / "c1", n_jobs=1)
    parallel = build(clips, small_features, tmp_path / "c2", n_jobs=2)
    pd.testing.assert_frame_equal(serial.frame, parallel.frame)
    assert serial.digest == parallel.digest and len(serial.digest) == 64


def test_mel_images_aligned_and_memmapped(tmp_path: Path, rng) -> None:
    features = FeaturesSpec(extractors=["rms"], mel_image=True, mel_image_frames=24, n_mels=32)
    clips = make_corpus(tmp_path / "audio", 3, rng, seconds=2.0)
    segments = SegmentsSpec(mode="fixed", length_s=1.0)
    table = build(clips, features, tmp_path / "cache", segments=segments)
    images = table.load_mel()
    assert images.shape == (6, 32, 24) and images.dtype == np.float32
    np.testing.assert_array_equal(table.load_mel(np.array([4, 1])), images[[4, 1]])
    _, direct = extract_signal(decode_audio(clips["path"][2], SR), SR, features, segments)
    np.testing.assert_array_equal(images[4:6], direct)
    assert isinstance(np.load(table.mel_path, mmap_mode="r"), np.memmap)


def test_damaged_clip_mel_is_repaired(tmp_path: Path, rng) -> None:
    features = FeaturesSpec(extractors=["rms"], mel_image=True, mel_image_frames=16, n_mels=16)
    clips = make_corpus(tmp_path / "audio", 2, rng)
    first = build(clips, features, tmp_path / "cache")
    reference = first.load_mel()
    first.mel_path.unlink()
    clip_mels = sorted(first.mel_path.parent.parent.glob("*.npy"))
    clip_mels[0].write_bytes(clip_mels[0].read_bytes()[:40])  # truncated by an outside hand
    again = build(clips, features, tmp_path / "cache")
    np.testing.assert_array_equal(again.load_mel(), reference)


def test_no_mel_images_without_the_option(tmp_path: Path, rng, small_features) -> None:
    table = build(make_corpus(tmp_path / "a", 1, rng), small_features, tmp_path / "cache")
    with pytest.raises(FeatureError) as off:
        table.load_mel()
    assert str(off.value) == (
        "features.mel_image: is off: this feature table has no mel images; "
        "set features.mel_image: true and build the table again"
    )


def test_malformed_clips_table(tmp_path: Path, rng, small_features) -> None:
    clips = make_corpus(tmp_path / "a", 2, rng)
    with pytest.raises(FeatureError) as info:
        build(clips.drop(columns="group"), small_features, tmp_path / "cache")
    assert str(info.value) == (
        "clips table: lacks the column(s) group; it needs clip_id, path, label, group"
    )
    twice = pd.concat([clips, clips], ignore_index=True)
    with pytest.raises(FeatureError) as info:
        build(twice, small_features, tmp_path / "cache")
    assert str(info.value) == (
        "clip_id: 'c000' is listed more than once in the clips table; "
        "clip ids must be unique (rows repeating an earlier id: 2)"
    )


def test_regression_labels_and_stereo_flac(tmp_path: Path, rng, small_features) -> None:
    y = tone_plus_noise(440.0, 1.0, rng)
    path = tmp_path / "s.flac"
    sf.write(path, np.stack([y, y], axis=1), 44100)
    clips = pd.DataFrame([{"clip_id": "s", "path": str(path), "label": 3.5, "group": np.nan}])
    table = build(clips, small_features, tmp_path / "cache")
    assert table.frame["label"].tolist() == [3.5] and table.stats["clips"] == 1


def test_flipped_bits_in_cached_mel_images_are_caught(tmp_path: Path, rng) -> None:
    """A flipped bit in an .npy reads as another number without error: the checksum beside
    each image file catches it, warns, and the images are made again, equal to the first."""
    features = FeaturesSpec(extractors=["rms"], mel_image=True, mel_image_frames=16, n_mels=16)
    clips = make_corpus(tmp_path / "audio", 2, rng)
    first = build(clips, features, tmp_path / "cache")
    reference = np.array(first.load_mel())

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[-7] ^= 0x10  # inside the float data, past the .npy header
        path.write_bytes(bytes(data))

    flip(first.mel_path)  # the aligned table
    with pytest.warns(UserWarning, match="Damaged feature cache file .*tables"):
        again = build(clips, features, tmp_path / "cache")
    np.testing.assert_array_equal(again.load_mel(), reference)

    again.mel_path.unlink()
    clip_file = sorted(again.mel_path.parent.parent.glob("*.npy"))[0]
    flip(clip_file)  # one clip's images: re-extracted
    with pytest.warns(UserWarning, match=f"Damaged feature cache file .*{clip_file.name}"):
        third = build(clips, features, tmp_path / "cache")
    np.testing.assert_array_equal(third.load_mel(), reference)
    assert (clip_file.parent / (clip_file.name + ".b2")).read_text() != ""
