"""Synthetic audio and dataset layouts for tests (plain functions, importable anywhere).

Every dataset is written in the exact layout of the real one it stands for: GTZAN
``genres_original/<genre>/<genre>.00000.wav``, Common Voice ``train.tsv`` with ``clips/*.mp3``,
a labels JSON, and GTZAN's ``features_30_sec.csv``. All randomness comes from an ``rng``
argument (default: a fixed seed), so the same call writes the same files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from runner.data.demo_data import synth_speech

__all__ = [
    "CV_COLUMNS",
    "GTZAN_FEATURE_COLUMNS",
    "make_common_voice",
    "make_feature_table_csv",
    "make_folder_dataset",
    "make_labels_json",
    "write_audio",
    "write_noise",
    "write_speechlike",
    "write_tone",
]

#: Common Voice ``train.tsv`` columns (locale and segment appear from version 7 on).
CV_COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
              "accent", "locale", "segment")  # fmt: skip

_GTZAN_STATS = ("chroma_stft", "rms", "spectral_centroid", "spectral_bandwidth", "rolloff",
                "zero_crossing_rate", "harmony", "perceptr")  # fmt: skip
#: GTZAN ``features_30_sec.csv``: filename, length, 57 numeric columns, label.
GTZAN_FEATURE_COLUMNS: tuple[str, ...] = (
    "filename",
    "length",
    *(f"{name}_{stat}" for name in _GTZAN_STATS for stat in ("mean", "var")),
    "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, 21) for stat in ("mean", "var")),
    "label",
)
_AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties")
_SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(0)


def write_audio(path: Path, y: np.ndarray, sr: int, *, fmt: str | None = None) -> Path:
    """Write mono ``y`` in ``fmt`` (default: the path's suffix: wav, flac, ogg or mp3)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "wav").lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(y, -1, 1), sr, format=fmt.upper(), subtype=_SUBTYPES[fmt])
    return path


def write_tone(
    path: Path, freq: float, seconds: float = 1.0, sr: int = 16000, *,
    fmt: str | None = None, amplitude: float = 0.5,
) -> Path:  # fmt: skip
    """A pure sine of ``freq`` Hz (a 1 kHz tone's spectral centroid is about 1 kHz)."""
    t = np.arange(int(seconds * sr)) / sr
    return write_audio(path, amplitude * np.sin(2 * np.pi * freq * t), sr, fmt=fmt)


def write_noise(
    path: Path, seconds: float = 1.0, sr: int = 16000, *,
    rng: np.random.Generator | None = None, fmt: str | None = None, amplitude: float = 0.2,
) -> Path:  # fmt: skip
    """Seeded white noise."""
    y = amplitude * _rng(rng).standard_normal(int(seconds * sr))
    return write_audio(path, np.clip(y, -1, 1), sr, fmt=fmt)


def write_speechlike(
    path: Path, seconds: float = 1.0, sr: int = 16000, *,
    rng: np.random.Generator | None = None, fmt: str | None = None,
) -> Path:  # fmt: skip
    """Formant-filtered glottal pulses in syllables (the demo corpus's speech synthesis)."""
    y = synth_speech(_rng(rng), int(seconds * sr), sr)
    return write_audio(path, 0.5 * y / (np.max(np.abs(y)) + 1e-12), sr, fmt=fmt)


def make_folder_dataset(
    root: Path, classes: Sequence[str], n_per_class: int, sr: int = 16000,
    seconds: float = 0.5, fmt: str = "wav", *, rng: np.random.Generator | None = None,
) -> Path:  # fmt: skip
    """GTZAN layout: ``root/<class>/<class>.00000.wav``; class k is a tone near 220*(k+1) Hz."""
    rng = _rng(rng)
    for k, label in enumerate(classes):
        for i in range(n_per_class):
            freq = 220.0 * (k + 1) * rng.uniform(0.97, 1.03)
            write_tone(Path(root) / label / f"{label}.{i:05d}.{fmt}", freq, seconds, sr, fmt=fmt)
    return Path(root)


def _cv_rows(n_speakers: int, per_speaker: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for s in range(n_speakers):
        client = rng.bytes(64).hex()  # Common Voice client ids are 128 hex digits
        gender, age = ("male", "female")[s % 2], _AGES[s % len(_AGES)]
        for _ in range(per_speaker):
            rows.append({
                "client_id": client, "path": f"common_voice_en_{len(rows) + 1000:06d}.mp3",
                "sentence": f'He said "hello {len(rows)} times.', "up_votes": "2",
                "down_votes": "0", "age": age, "gender": gender, "accent": "us",
                "locale": "en", "segment": "",
            })  # fmt: skip
    return rows


def make_common_voice(
    root: Path, n_speakers: int = 4, clips_per_speaker: int = 3, with_empty_labels: bool = True,
    *, sr: int = 16000, seconds: float = 0.4, rng: np.random.Generator | None = None,
) -> Path:  # fmt: skip
    """Common Voice layout: ``root/train.tsv`` and ``root/clips/*.mp3``; returns the TSV.

    Speakers alternate male/female with age buckets in order (teens, twenties, ...). With
    ``with_empty_labels``, two extra clips have empty age, gender and accent, and one has
    gender ``other``, as real releases do. Sentences hold an unbalanced quote (real ones do).
    """
    rng = _rng(rng)
    rows = _cv_rows(n_speakers, clips_per_speaker, rng)
    if with_empty_labels:
        for extra in ({"age": "", "gender": "", "accent": ""},) * 2 + ({"gender": "other"},):
            rows.append({**rows[0], "path": f"common_voice_en_{len(rows) + 1000:06d}.mp3",
                         **extra})  # fmt: skip
    for row in rows:
        write_speechlike(Path(root) / "clips" / row["path"], seconds, sr, rng=rng)
    tsv = Path(root) / "train.tsv"
    # Common Voice writes plain tab-separated lines, never quoted or escaped.
    lines = ["\t".join(CV_COLUMNS)] + ["\t".join(row[c] for c in CV_COLUMNS) for row in rows]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tsv


def make_labels_json(
    root: Path, counts: Mapping[str, int] | None = None, *, name: str = "labels.json",
    sr: int = 16000, seconds: float = 0.4, rng: np.random.Generator | None = None,
) -> Path:  # fmt: skip
    """``root/audio/<label>_<i>.wav`` and ``root/labels.json`` mapping them to labels.

    ``counts`` defaults to 3 each of music, dialogue and both (music over dialogue).
    """
    rng = _rng(rng)
    labels: dict[str, str] = {}
    for label, n in (counts or {"music": 3, "dialogue": 3, "both": 3}).items():
        for i in range(n):
            rel = f"audio/{label}_{i:02d}.wav"
            if label == "dialogue":
                write_speechlike(Path(root) / rel, seconds, sr, rng=rng)
            else:
                write_tone(Path(root) / rel, rng.uniform(200, 800), seconds, sr)
            labels[rel] = label
    path = Path(root) / name
    path.write_text(json.dumps(labels, indent=1), encoding="utf-8")
    return path


def make_feature_table_csv(
    path: Path, n_rows: int, classes: Sequence[str], *, rng: np.random.Generator | None = None
) -> Path:
    """A GTZAN ``features_30_sec.csv``: filename, length, 57 numeric columns, label.

    Rows cycle through ``classes``; each class shifts the numeric columns a little so a model
    can learn them.
    """
    rng = _rng(rng)
    numeric = GTZAN_FEATURE_COLUMNS[2:-1]
    labels = [classes[i % len(classes)] for i in range(n_rows)]
    shift = np.array([classes.index(lab) for lab in labels], dtype=float)[:, None]
    values = rng.normal(size=(n_rows, len(numeric))) + shift
    frame = pd.DataFrame(values, columns=list(numeric))
    frame.insert(0, "filename", [f"{lab}.{i:05d}.wav" for i, lab in enumerate(labels)])
    frame.insert(1, "length", 661794)
    frame["label"] = labels
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return Path(path)
