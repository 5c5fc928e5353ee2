"""``build_table``: clips -> FeatureTable, from the cache where possible.

Steps: validate the clips table; stat every file and get its content hash (from the stat
index when safe, see ``features.stat_index``); load the cached rows of this config; extract
the clips whose hash is not cached (process pool, rich progress bar, results streamed into
new cache packs every :data:`FLUSH_EVERY` clips); assemble the rows in input order.

Skipped clips (never an exception): missing or unreadable files (``file not found``; not
cached, checked again every run) and every :class:`FeatureError` reason of decoding or
extraction (cached per content hash, so a warm run does not retry them). Unexpected
extractor exceptions are reported as ``extraction failed: ...`` and retried next run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features._progress import progress_bar
from features._worker import ClipJob, ClipResult, ClipWorker, run_jobs
from features.assemble import assemble, build_mel_table
from features.cache import FeatureStore, cached_layout, config_key, dedupe_rows
from features.config import FeaturesSpec, SegmentsSpec
from features.stat_index import StatIndex
from features.table import FeatureTable, table_digest
from runner.errors import FeatureError

__all__ = ["FLUSH_EVERY", "build_table"]

FLUSH_EVERY = 256
_REQUIRED = ["clip_id", "path", "label", "group"]


@dataclass
class _Plan:
    """What to do with each clip: its content key, or a reason it is skipped up front."""

    keys: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _check_clips(clips: pd.DataFrame, keep: Sequence[str] = ()) -> None:
    missing = [c for c in [*_REQUIRED, *keep] if c not in clips.columns]
    if missing:
        raise FeatureError(
            f"The clips table lacks column(s) {', '.join(missing)}; needs {', '.join(_REQUIRED)}"
            " and the kept columns."
        )
    duplicated = clips["clip_id"].astype(str).duplicated()
    if duplicated.any():
        first = clips.loc[duplicated, "clip_id"].iloc[0]
        raise FeatureError(f"The clips table repeats clip_id '{first}'; clip ids must be unique.")


def _plan(clips: pd.DataFrame, index: StatIndex) -> _Plan:
    """Content hash of every clip (stat index fast path), or why it is skipped."""
    plan = _Plan()
    for clip_id, path in zip(clips["clip_id"], clips["path"], strict=True):
        try:
            st = os.stat(path)
            plan.keys[clip_id] = index.hash(str(path), st)
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
    frame.insert(0, "reason", np.repeat([r.reason for r in results], counts).astype(object))
    segments = [
        np.arange(n) if r.rows is not None else [-1] for r, n in zip(results, counts, strict=True)
    ]
    frame.insert(0, "segment", np.concatenate(segments).astype(np.int32))
    frame.insert(0, "key", np.repeat([r.key for r in results], counts).astype(object))
    return frame


def _jobs(clips: pd.DataFrame, plan: _Plan, cached: pd.DataFrame, store: FeatureStore) -> list:
    """Clips whose key has no cached rows (or, with mel images, no cached images)."""
    have_rows = set(cached["key"])
    skip_keys = set(cached.loc[cached["reason"].notna(), "key"])

    def cached_ok(key: str) -> bool:
        if key not in have_rows:
            return False
        return key in skip_keys or store.mel_dir is None or store.has_mel(key)

    return [
        ClipJob(clip_id, str(path))
        for clip_id, path in zip(clips["clip_id"], clips["path"], strict=True)
        if clip_id in plan.keys and not cached_ok(plan.keys[clip_id])
    ]


def _extract(
    jobs: list[ClipJob], worker: ClipWorker, plan: _Plan, *, n_jobs: int, progress: bool
) -> list[pd.DataFrame]:
    """Extract ``jobs``, flushing new rows to the cache as they come; returns them."""
    fresh: list[pd.DataFrame] = []
    pending: list[ClipResult] = []
    with progress_bar(len(jobs), "Extracting features", enabled=progress) as advance:
        for result in run_jobs(worker, jobs, n_jobs=n_jobs, total=len(jobs), on_done=advance):
            if result.key is None or not result.cacheable:
                plan.skipped[result.clip_id] = result.reason or "unknown error"
                plan.keys.pop(result.clip_id, None)
                continue
            plan.keys[result.clip_id] = result.key  # the bytes actually extracted
            pending.append(result)
            if len(pending) >= FLUSH_EVERY:
                fresh.append(_results_frame(pending, worker.store))
                worker.store.write_pack(fresh[-1])
                pending = []
    if pending:
        fresh.append(_results_frame(pending, worker.store))
        worker.store.write_pack(fresh[-1])
    return fresh


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
        n_jobs: extraction processes; 1 runs in this process, -1 or 0 uses every core.
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
    index.save()
    cached = store.load()
    worker = ClipWorker(features, segments, store)
    jobs = _jobs(clips, plan, cached, store)
    n_keyed = len(plan.keys)  # clips on disk; the rest were skipped before any cache lookup
    fresh = _extract(jobs, worker, plan, n_jobs=n_jobs, progress=progress)
    rows = dedupe_rows(pd.concat([cached, *fresh], ignore_index=True)) if fresh else cached
    store.compact(rows)
    frame, skipped = assemble(clips, plan.keys, plan.skipped, rows, columns, keep_columns)
    digest = table_digest(frame)
    mel_path = _mel_table(store, frame, plan, clips, worker, digest) if mel_frames else None
    stats = {
        "rows": len(frame),
        "columns": len(columns),
        "clips": frame["clip_id"].nunique(),
        "cache_hits": n_keyed - len(jobs),
        "cache_misses": len(jobs),
        "extracted": sum(f.loc[f["reason"].isna(), "key"].nunique() for f in fresh),
        "skipped": len(skipped),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return FeatureTable(frame, columns, groups, skipped, stats, digest, mel_path)


def _mel_table(
    store: FeatureStore,
    frame: pd.DataFrame,
    plan: _Plan,
    clips: pd.DataFrame,
    worker: ClipWorker,
    digest: str,
) -> Path:
    paths = dict(zip(clips["clip_id"], clips["path"].astype(str), strict=True))

    def repair(clip_id: str) -> None:
        worker(ClipJob(clip_id, paths[clip_id]))

    return build_mel_table(store, frame, plan.keys, digest, repair)
