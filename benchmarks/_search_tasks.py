"""The search benchmark's tasks: a shipped spec, the synthetic corpus it runs on (built by
benchmarks/_corpora.py) and the overrides that point it there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHE", "TASKS", "Task"]

#: Corpora and the runner's feature cache, kept between benchmark runs.
CACHE = Path("~/.cache/audioml-bench").expanduser()


@dataclass(frozen=True)
class Task:
    """A shipped spec, the corpus it runs on, and the overrides that point it there."""

    spec: str
    corpus: str  # folder under <cache>/corpora
    builder: str
    sizes: dict
    overrides: tuple[str, ...] = ()
    note: str = ""


TASKS = {
    "music_dialogue": Task(
        "experiments/music_dialogue.yaml", "radio", "radio_archive", {"clips": 900},
        note="900 clips of 12 s (2 s lead-in + 10 s labelled), 3 classes",
    ),
    "age": Task(
        "experiments/age_regression.yaml", "voices", "voices",
        {"speakers": 250, "clips_per_speaker": 4}, ("search.target_transform=log",),
        note="1,000 clips of 2.5-4.5 s, 250 speakers aged 18-85",
    ),
    "gender": Task(
        "experiments/gender.yaml", "voices", "voices",
        {"speakers": 250, "clips_per_speaker": 4},
        note="the age task's 1,000 clips, gender balanced by downsampling",
    ),
    "genre_features": Task(
        "experiments/genre_features.yaml", "gtzan_audio", "gtzan_audio", {"rows": 1000},
        note="features_30_sec.csv rebuilt by `audioml features` from 1,000 synthetic clips of "
        "10 s in GTZAN's 10 genres (57 columns under GTZAN's names)",
    ),
}  # fmt: skip
