"""Synthetic corpora for the search benchmark, in the layouts the shipped specs read.

* ``radio_archive``: the demo generator scaled up to a radio archive of three classes
  (music, dialogue, speech over music) for experiments/music_dialogue.yaml (labels JSON).
  Each clip is a lead-in of another class followed by the labelled last ``tail_s`` seconds,
  so the spec's ``segments.mode: last`` is what finds the label.
* ``voices``: Common Voice shaped speakers (``clips/*.wav``, ``train.tsv`` with age buckets
  and gender, ``ages.csv`` with numeric ages) for experiments/gender.yaml and
  experiments/age_regression.yaml. Gender and age act on f0, formants, speaking rate and
  breathiness the way they do in people, with speaker-to-speaker spread.
* ``gtzan_audio``: GTZAN's ``features_30_sec.csv`` for experiments/genre_features.yaml, rebuilt
  from synthetic audio in ten genres (benchmarks/_genres.py) by the documented command
  (``audioml features experiments/genre.yaml`` with the extractor list of docs/experiments.md)
  and written under GTZAN's column names.
* ``gtzan_table``: the same file's shape from ``make_classification`` (no audio).

What makes each hard (so scores are not all 1.0): radio "both" clips carry the music bed
18 to 3 dB under the speech, and 30% of dialogue clips already sit on a tonal hum (the demo
generator's overlap); lead-ins mislead a model that looks at the whole clip. Voices: f0
spreads of 22-28 Hz within a gender (means 125 and 195 Hz) and formant scales that overlap,
3% of speakers' genders flipped (label noise), age effects that are a few Hz or a few
percent per decade and are dwarfed by speaker spread, room noise and random levels; splits
are grouped by speaker, so a model cannot learn voices. The genre table has 18 informative
columns of 57, two clusters per class and 5% flipped labels.

Every builder is deterministic in its ``seed`` and writes a ``corpus.json`` recording its
arguments; :func:`ensure` reuses a folder whose record matches instead of writing it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from benchmarks._genres import GENRES, synth_genre
from benchmarks._table import write_gtzan_like
from runner.data.demo_data import _add, _master, _phrase, _with_noise, synth_music, synth_speech

__all__ = ["BUILDERS", "ensure", "gtzan_audio", "gtzan_columns", "gtzan_table", "radio_archive",
           "voices"]  # fmt: skip

#: Bumped whenever a builder writes other audio for the same arguments (folders are rebuilt).
VERSION = 2

#: Common Voice's age buckets by decade (its own spelling of forties).
_AGE_BUCKETS = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties", "seventies",
                "eighties")  # fmt: skip
_ACCENTS = ("us", "england", "indian", "australia", "canada")


def _write(path: Path, y: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype="PCM_16")


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y**2)) + 1e-12)


def _radio_part(label: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    if label == "music":
        return synth_music(rng, n, sr)
    speech = synth_speech(rng, n, sr)
    if label == "dialogue":
        return speech
    bed = synth_music(rng, n, sr)
    gain = _rms(speech) / _rms(bed) * 10 ** (-rng.uniform(3, 18) / 20)
    return speech + gain * bed


def radio_archive(
    root: Path, *, clips: int = 600, seed: int = 0, lead_s: float = 2.0, tail_s: float = 10.0,
    sr: int = 22050,
) -> Path:  # fmt: skip
    """``root/labels.json`` and ``root/clips/*.wav``: a third each of music, dialogue, both.

    Returns:
        ``root``, the spec's ``data.root``.
    """
    classes = ("music", "dialogue", "both")
    labels = {}
    for i in range(clips):
        rng = np.random.default_rng([seed, i])
        label = classes[i % 3]
        lead = classes[(i % 3 + 1 + int(rng.integers(0, 2))) % 3]
        y = np.concatenate([
            _radio_part(lead, rng, round(lead_s * sr), sr),
            _radio_part(label, rng, round(tail_s * sr), sr),
        ])  # fmt: skip
        rel = f"clips/{label}_{i:04d}.wav"
        _write(root / rel, _master(y, rng, sr), sr)
        labels[rel] = label
    (root / "labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    return root


def _speaker(rng: np.random.Generator) -> dict[str, Any]:
    """A speaker's gender, age and the voice they give: f0 range, formant scale, rate."""
    female = bool(rng.random() < 0.5)
    # Common Voice is skewed young: 18 plus a gamma tail (median about 33).
    age = float(np.clip(18 + rng.gamma(2.0, 9.0), 18, 85))
    if female:  # f0 falls with age in women, from about 195 Hz
        f0 = 195 - 0.5 * max(0.0, age - 30) + rng.normal(0, 28)
        scale = 1.1 + rng.normal(0, 0.06)
    else:  # and rises late in men, from about 125 Hz
        f0 = 125 + 0.4 * max(0.0, age - 50) + rng.normal(0, 22)
        scale = 1.0 + rng.normal(0, 0.06)
    # Self-reported labels are not always the voice's (shared accounts, typos): 3% flipped.
    said = female != bool(rng.random() < 0.03)
    return {
        "gender": "female" if said else "male",
        "age": round(age),
        "f0": (0.8 * f0, 1.3 * f0, scale * (1 - 0.001 * (age - 18))),
        "rate": max(2.5, 5.8 - 0.025 * (age - 18) + rng.normal(0, 0.5)),
        "breath_snr": 32 - 0.25 * (age - 18) + rng.normal(0, 4),
    }


def _utterance(rng: np.random.Generator, n: int, sr: int, who: dict[str, Any]) -> np.ndarray:
    """Phrases of one speaker over ``n`` samples, breathiness growing with age."""
    out, at = np.zeros(n), int(sr * rng.uniform(0.05, 0.3))
    while at < n:
        phrase = _phrase(rng, sr, who["f0"], who["rate"] * rng.uniform(0.9, 1.1))
        _add(out, phrase, at)
        at += len(phrase) + int(sr * rng.uniform(0.1, 0.5))
    return _with_noise(rng, out, who["breath_snr"] + rng.normal(0, 2), sr)


def _bucket(age: int) -> str:
    return _AGE_BUCKETS[min(max(age // 10 - 1, 0), len(_AGE_BUCKETS) - 1)]


def voices(
    root: Path, *, speakers: int = 200, clips_per_speaker: int = 4, seed: int = 0,
    seconds: tuple[float, float] = (2.5, 4.5), sr: int = 16000,
) -> Path:  # fmt: skip
    """``root/clips/*.wav``, ``root/train.tsv`` (Common Voice columns, age buckets) and
    ``root/ages.csv`` (numeric ages), one row per clip; speakers' ids group the splits.

    Returns:
        ``root``, the spec's ``data.root``.
    """
    rows = []
    for s in range(speakers):
        rng = np.random.default_rng([seed, s])
        who, client = _speaker(rng), rng.bytes(16).hex()
        accent = _ACCENTS[int(rng.integers(0, len(_ACCENTS)))]
        for _ in range(clips_per_speaker):
            y = _utterance(rng, round(rng.uniform(*seconds) * sr), sr, who)
            path = f"common_voice_en_{len(rows):06d}.wav"
            _write(root / "clips" / path, _master(y, rng, sr), sr)
            rows.append({
                "client_id": client, "path": path, "age": who["age"],
                "gender": who["gender"], "accent": accent,
                "up_votes": int(rng.integers(2, 6)), "down_votes": int(rng.integers(0, 2)),
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "ages.csv", index=False)
    tsv = frame.assign(age=frame["age"].map(_bucket))
    tsv.to_csv(root / "train.tsv", sep="\t", index=False)
    return root


def gtzan_table(root: Path, *, rows: int = 1000, seed: int = 0) -> Path:
    """``root/features_30_sec.csv`` with GTZAN's shape (1,000 rows, 57 features, 10 genres)."""
    path = write_gtzan_like(root / "features_30_sec.csv", rows=rows, seed=seed)
    frame = pd.read_csv(path)
    frame.insert(1, "length", 661794)  # GTZAN's sample count: constant, the spec drops it
    frame.to_csv(path, index=False)
    return root


#: docs/experiments.md: the extractors and statistics that rebuild features_30_sec.csv.
GTZAN_REBUILD = ("features.extractors=[chroma,rms,centroid,bandwidth,rolloff,zcr,hpss,tempo,mfcc]",
                 "features.stats=[mean,var]", "features.beat_level=false")  # fmt: skip


def gtzan_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``audioml features`` output (the rebuild's columns) under GTZAN's names and order.

    GTZAN pools chroma's 12 rows: its mean is the mean of the 12 means, its variance the
    mean of ``var + mean^2`` over the rows minus the pooled mean squared.
    """
    means = table[[f"chroma_{k:02d}_mean" for k in range(12)]].to_numpy()
    vars_ = table[[f"chroma_{k:02d}_var" for k in range(12)]].to_numpy()
    pooled = means.mean(axis=1)
    out = {"filename": [Path(c).name for c in table["clip_id"]], "length": 0,
           "chroma_stft_mean": pooled,
           "chroma_stft_var": (vars_ + means**2).mean(axis=1) - pooled**2}  # fmt: skip
    names = {"rms": "rms", "centroid": "spectral_centroid", "bandwidth": "spectral_bandwidth",
             "rolloff": "rolloff", "zcr": "zero_crossing_rate"}  # fmt: skip
    for ours, theirs in names.items():
        for stat in ("mean", "var"):
            out[f"{theirs}_{stat}"] = table[f"{ours}_{stat}"]
    for part in ("harmony", "perceptr"):
        for stat in ("mean", "var"):
            out[f"{part}_{stat}"] = table[f"hpss_{part}_{stat}"]
    out["tempo"] = table["tempo_bpm"]
    for k in range(20):
        for stat in ("mean", "var"):
            out[f"mfcc{k + 1}_{stat}"] = table[f"mfcc_{k:02d}_{stat}"]
    out["label"] = table["label"]
    return pd.DataFrame(out)


def gtzan_audio(
    root: Path, *, rows: int = 1000, seconds: float = 10.0, seed: int = 0, sr: int = 22050
) -> Path:
    """``root/genres_original/<genre>/<genre>.000NN.wav`` (``rows`` clips, a tenth per
    genre) and ``root/features_30_sec.csv`` rebuilt from them as docs/experiments.md says.

    The table is made by the user's command in a subprocess (``audioml features`` on
    experiments/genre.yaml, its cache in ``root/cache``), then renamed to GTZAN's columns.
    """
    genres = list(GENRES)
    for i in range(rows):
        rng = np.random.default_rng([seed, i])
        genre = genres[i % len(genres)]
        y = synth_genre(rng, genre, round(seconds * sr), sr)
        _write(root / "genres_original" / genre / f"{genre}.{i // len(genres):05d}.wav",
               _master(y, rng, sr), sr)  # fmt: skip
    out = root / "rebuilt.parquet"
    sets = [f"data.root={root / 'genres_original'}", f"features.cache_dir={root / 'cache'}",
            *GTZAN_REBUILD]  # fmt: skip
    command = [sys.executable, "-m", "runner", "features", str(Path(__file__).parent.parent /
               "experiments" / "genre.yaml"), "--out", str(out)]  # fmt: skip
    subprocess.run([*command, *(a for kv in sets for a in ("--set", kv))], check=True)
    table = gtzan_columns(pd.read_parquet(out))
    table["length"] = round(seconds * sr)  # the sample count, as GTZAN's column
    table.to_csv(root / "features_30_sec.csv", index=False)
    return root


BUILDERS: dict[str, Callable[..., Path]] = {
    "gtzan_audio": gtzan_audio,
    "radio_archive": radio_archive,
    "voices": voices,
    "gtzan_table": gtzan_table,
}


def ensure(folder: Path, builder: str, **kwargs: Any) -> tuple[Path, bool]:
    """``folder`` holding the corpus ``BUILDERS[builder](**kwargs)`` writes, built only when
    its record is missing or differs. Returns (folder, whether it was built now)."""
    record = folder / "corpus.json"
    wanted = json.dumps({"builder": builder, "version": VERSION, **kwargs}, sort_keys=True)
    if record.exists() and record.read_text(encoding="utf-8") == wanted:
        return folder, False
    folder.mkdir(parents=True, exist_ok=True)
    BUILDERS[builder](folder, **kwargs)
    record.write_text(wanted, encoding="utf-8")  # last: a cut-short build is redone
    return folder, True
