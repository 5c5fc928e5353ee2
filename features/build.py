"""``build_table``: clips -> FeatureTable, from the cache where possible.

Steps: validate the clips table; stat every file and take its content hash from the stat
index when safe (``features.stat_index``); load the cached rows of this config; send every
clip whose hash is unknown or not cached to the worker processes, which hash it and extract
it unless its content turns out to be cached (rich progress bar, results streamed into new
cache packs every :data:`FLUSH_EVERY` clips); assemble the rows in input order. The build
process itself never reads a clip, so a file that blocks on reading blocks only a worker.

Skipped clips (never an exception): missing or unreadable files (``file not found``; not
cached, checked again every run) and every :class:`FeatureError` reason of decoding or
extraction (cached per content hash, so a warm run does not retry them). Unexpected
extractor exceptions (``extraction failed: ...``), a worker that died on the clip and a
clip past ``features.clip_timeout_s`` are reported and retried next run; the build goes on.
Files longer than ``features.max_duration_s`` are read only that far; ``stats["cut"]``
counts them and ``FeatureTable.notes`` lists them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features._progress import progress_bar
from features._registry import plugins
from features._worker import ClipJob, ClipResult, ClipWorker
from features.assemble import assemble, build_mel_table
from features.cache import FeatureStore, cached_layout, config_key, dedupe_rows
from features.config import FeaturesSpec, SegmentsSpec
from features.errors import FeatureError, format_error
from features.executors import execute
from features.extract import few_beats
from features.stat_index import StatIndex
from features.table import FeatureTable, table_digest

__all__ = ["FLUSH_EVERY", "build_table"]

FLUSH_EVERY = 256
_REQUIRED = ["clip_id", "path", "label", "group"]


@dataclass
class _Plan:
    """What to do with each clip: its content key, or a reason it is skipped up front.

    ``stats`` holds the stat of every clip on disk, to record the hashes the workers find.
    """

    keys: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    stats: dict[str, os.stat_result] = field(default_factory=dict)
    checked_ns: int = field(default_factory=time.time_ns)


def _check_clips(clips: pd.DataFrame, keep: Sequence[str] = ()) -> None:
    missing = [c for c in [*_REQUIRED, *keep] if c not in clips.columns]
    if missing:
        problem = f"lacks the column(s) {', '.join(missing)}"
        kept = f", and the kept columns {', '.join(keep)}" if keep else ""
        hint = f"it needs {', '.join(_REQUIRED)}{kept}"
        raise FeatureError(format_error("clips table", problem=problem, hint=hint))
    duplicated = clips["clip_id"].astype(str).duplicated()
    if duplicated.any():
        first = str(clips.loc[duplicated, "clip_id"].iloc[0])
        problem = "is listed more than once in the clips table"
        hint = f"clip ids must be unique (rows repeating an earlier id: {int(duplicated.sum())})"
        raise FeatureError(format_error("clip_id", first, problem=problem, hint=hint))


def _plan(clips: pd.DataFrame, index: StatIndex) -> _Plan:
    """The stat of every clip and its content hash when the stat index knows it."""
    plan = _Plan()
    for clip_id, path in zip(clips["clip_id"], clips["path"], strict=True):
        try:
            st = plan.stats[clip_id] = os.stat(path)
            if (sha := index.lookup(str(path), st)) is not None:
                plan.keys[clip_id] = sha
        except FileNotFoundError:
            plan.skipped[clip_id] = "file not found"
        except OSError as exc:
            plan.skipped[clip_id] = f"cannot read file ({exc.strerror or exc})"
    return plan


def _results_frame(results: list[ClipResult], store: FeatureStore) -> pd.DataFrame:
    """Finished clips as pack rows: features per segment, or one skip row per clip.

    Built in one go from the small per-clip arrays: a DataFrame per clip would cost tens of
    kilobytes of pandas overhead each while a build runs.
    """
    if not results:
        return store.empty_rows()
    width = len(store.columns)
    blocks = [r.rows if r.rows is not None else np.full((1, width), np.nan) for r in results]
    counts = [len(block) for block in blocks]
    frame = pd.DataFrame(np.vstack(blocks), columns=store.columns)
    frame.insert(0, "note", np.repeat([r.note for r in results], counts).astype(object))
    frame.insert(0, "reason", np.repeat([r.reason for r in results], counts).astype(object))
    segments = [
        np.arange(n) if r.rows is not None else [-1] for r, n in zip(results, counts, strict=True)
    ]
    frame.insert(0, "segment", np.concatenate(segments).astype(np.int32))
    frame.insert(0, "key", np.repeat([r.key for r in results], counts).astype(object))
    return frame


def _cached_keys(cached: pd.DataFrame, store: FeatureStore) -> frozenset[str]:
    """Keys whose rows (and, with mel images, whose images) are complete in the cache."""
    skip_keys = set(cached.loc[cached["reason"].notna(), "key"])
    return frozenset(
        key
        for key in set(cached["key"])
        if key in skip_keys or store.mel_dir is None or store.has_mel(key)
    )


def _jobs(clips: pd.DataFrame, plan: _Plan, cached: frozenset[str]) -> list[ClipJob]:
    """Clips on disk whose content key is unknown or not cached."""
    return [
        ClipJob(clip_id, str(path))
        for clip_id, path in zip(clips["clip_id"], clips["path"], strict=True)
        if clip_id in plan.stats and plan.keys.get(clip_id) not in cached
    ]


@dataclass
class _Outcome:
    """What the workers did: new cache rows, hits found by hashing, clips cut."""

    fresh: list[pd.DataFrame] = field(default_factory=list)
    hits: int = 0


def _extract(
    jobs: list[ClipJob],
    worker: ClipWorker,
    plan: _Plan,
    index: StatIndex,
    *,
    n_jobs: int,
    progress: bool,
) -> _Outcome:
    """Run ``jobs``, recording hashes and flushing new rows to the cache as they come."""
    out = _Outcome()
    pending: list[ClipResult] = []
    paths = {job.clip_id: job.path for job in jobs}
    with progress_bar(len(jobs), "Extracting features", enabled=progress) as advance:
        for result in execute(worker, jobs, n_jobs=n_jobs, on_done=advance):
            clip_id = result.clip_id
            if result.key is None or not result.cacheable:
                plan.skipped[clip_id] = result.reason or "unknown error"
                plan.keys.pop(clip_id, None)
                continue
            plan.keys[clip_id] = result.key  # the bytes actually read
            index.record(paths[clip_id], plan.stats[clip_id], result.key, plan.checked_ns)
            if result.hit:
                out.hits += 1
                continue
            pending.append(result)
            if len(pending) >= FLUSH_EVERY:
                out.fresh.append(_results_frame(pending, worker.store))
                worker.store.write_pack(out.fresh[-1])
                pending = []
    if pending:
        out.fresh.append(_results_frame(pending, worker.store))
        worker.store.write_pack(out.fresh[-1])
    return out


def _notes(clips: pd.DataFrame, keys: dict[str, str], rows: pd.DataFrame) -> pd.DataFrame:
    """clip_id, path, note of the clips in the table whose rows carry a note (cut files)."""
    noted = rows.loc[rows["reason"].isna() & rows["note"].notna()].drop_duplicates("key")
    by_key = dict(zip(noted["key"], noted["note"], strict=True))
    mask = clips["clip_id"].map(keys).isin(list(by_key))
    out = clips.loc[mask, ["clip_id", "path"]].reset_index(drop=True)
    out["path"] = out["path"].astype(str)
    out["note"] = out["clip_id"].map(keys).map(by_key).astype(object)
    return out


def build_table(
    clips: pd.DataFrame,
    features: FeaturesSpec,
    segments: SegmentsSpec,
    *,
    cache_dir: Path,
    n_jobs: int = 1,
    progress: bool = True,
    keep_columns: Sequence[str] = (),
) -> FeatureTable:
    """Build the feature table of ``clips``, extracting only what the cache lacks.

    Args:
        clips: columns ``clip_id`` (unique), ``path`` (absolute), ``label``, ``group``;
            other columns are ignored.
        features: extractors, statistics and spectral parameters.
        segments: how clips become rows.
        cache_dir: the cache root (created if missing; may be shared by runs and machines).
        n_jobs: extraction worker processes (at least one); -1 or 0 uses every core.
        progress: show a progress bar on stderr while extracting.
        keep_columns: clip columns (metadata) carried into the frame beside the features.

    Returns:
        The :class:`FeatureTable`; bad clips are listed in ``skipped``, never raised.

    Raises:
        FeatureError: the clips table itself is malformed (missing columns, repeated ids).
    """
    started = time.perf_counter()
    _check_clips(clips, keep_columns)
    clips = clips.assign(clip_id=clips["clip_id"].astype(str)).reset_index(drop=True)
    key = config_key(features, segments)
    columns, groups = cached_layout(Path(cache_dir), key, features)
    mel_frames = features.mel_image_frames if features.mel_image else None
    store = FeatureStore(Path(cache_dir), key, columns, mel_frames)
    index = StatIndex(store.root)
    plan = _plan(clips, index)
    cached = store.load()
    worker = ClipWorker(
        features, segments, store, _cached_keys(cached, store), plugins(features.extractors)
    )
    jobs = _jobs(clips, plan, worker.cached)
    try:
        out = _extract(jobs, worker, plan, index, n_jobs=n_jobs, progress=progress)
    finally:
        index.save()  # the hashes the workers found, even when the build stops early
    fresh = out.fresh
    rows = dedupe_rows(pd.concat([cached, *fresh], ignore_index=True)) if fresh else cached
    store.compact(rows)
    frame, skipped = assemble(clips, plan.keys, plan.skipped, rows, columns, keep_columns)
    notes = _notes(clips, {c: plan.keys[c] for c in frame["clip_id"].unique()}, rows)
    digest = table_digest(frame)
    mel_path = _mel_table(store, frame, plan, clips, worker, digest) if mel_frames else None
    stats = {
        "rows": len(frame),
        "columns": len(columns),
        "clips": frame["clip_id"].nunique(),
        "cache_hits": len(plan.stats) - len(jobs) + out.hits,
        "cache_misses": len(jobs) - out.hits,
        "hashed": len(jobs),
        "extracted": sum(f.loc[f["reason"].isna(), "key"].nunique() for f in fresh),
        "skipped": len(skipped),
        "cut": len(notes),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if features.beat_level:
        stats["few_beats"] = few_beats(frame)
    return FeatureTable(frame, columns, groups, skipped, stats, digest, mel_path, notes)


def _mel_table(
    store: FeatureStore,
    frame: pd.DataFrame,
    plan: _Plan,
    clips: pd.DataFrame,
    worker: ClipWorker,
    digest: str,
) -> Path:
    paths = dict(zip(clips["clip_id"], clips["path"].astype(str), strict=True))

    extract = replace(worker, cached=frozenset())  # extract again even though rows are cached

    def repair(clip_id: str) -> None:
        extract([ClipJob(clip_id, paths[clip_id])])

    return build_mel_table(store, frame, plan.keys, digest, repair)
