"""Extraction jobs of one or more clips and the worker processes that run them.

For each clip of a job the worker opens the file once, hashes all of its bytes (streamed, so
memory does not grow with the file), and when that content is already cached returns only
the hash; otherwise it decodes at most ``features.max_duration_s`` seconds from the same open
file. The decoded clips of a job are then extracted together (``features.batch``: an
extractor with a batch form, e.g. a model, runs once over all their segments), the worker
stores the mel images itself and returns only the small feature matrices. A file that
changes while it is read is reported and retried next run, so the cache key always matches
the content extracted.

A job is one clip unless a configured extractor has a batch form; then a job holds several
clips (:func:`clips_per_job`) so that the windows of many clips share model runs. Jobs
always run in worker processes (``features._pool``): the worker's heartbeat after each
clip keeps ``features.clip_timeout_s`` a bound on one clip, and a job of several clips that
hangs or kills its worker is run again one clip per job, so it still costs only the clip
that caused it.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from typing import cast

import numpy as np

from features._pool import JobLost, heartbeat, run_isolated
from features._registry import FeatureExtractor, adopt
from features.audio import Decoded, decode_clip
from features.batch import Extracted, batched_names, extract_signals
from features.cache import FeatureStore
from features.config import FeaturesSpec, SegmentsSpec
from features.errors import FeatureError
from features.extract import feature_layout

__all__ = [
    "ClipJob",
    "ClipResult",
    "ClipWorker",
    "clips_per_job",
    "resolve_jobs",
    "run_jobs",
]

# Clips of a job with a batch-form extractor: enough to fill a model's batches with short
# clips, few enough that the workers still share a build's clips about evenly.
_MAX_CLIPS_PER_JOB = 32
_JOBS_PER_WORKER = 2
# Decoded samples a worker holds before it extracts them (64 MB of float32): long clips
# are extracted in smaller groups, whatever the job's length.
_MAX_PENDING_SAMPLES = 1 << 24


@dataclass(frozen=True)
class ClipJob:
    """One clip to read (and extract unless its content is cached)."""

    clip_id: str
    path: str


@dataclass
class ClipResult:
    """What a job returns: rows, a cache hit, or a reason and whether it may be cached."""

    clip_id: str
    key: str | None
    rows: np.ndarray | None = None
    reason: str | None = None
    cacheable: bool = True
    hit: bool = False  # the content was already cached: nothing was extracted
    note: str | None = None  # e.g. that only the start of a long file was read


def _read_error(exc: OSError) -> FeatureError:
    if isinstance(exc, FileNotFoundError):
        return FeatureError("file not found")
    if isinstance(exc, IsADirectoryError):
        return FeatureError("not a file (a directory)")
    return FeatureError(f"cannot read file ({exc.strerror or exc})")


def _stamp(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns


def _audioml_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("AUDIOML_")}


@dataclass
class ClipWorker:
    """Extracts the clips of a job with a fixed config (picklable, sent once per worker
    process).

    ``cached`` holds the content keys whose rows (and images) are complete in the store;
    ``plugins`` the extractors registered at run time (``features._registry.plugins``).
    """

    features: FeaturesSpec
    segments: SegmentsSpec
    store: FeatureStore
    cached: frozenset[str] = field(default_factory=frozenset)
    plugins: tuple[FeatureExtractor, ...] = ()
    # The builder's AUDIOML_* settings when it made the worker: a fork server started
    # earlier (a process with Keras loaded) hands its workers the environment of back then.
    env: dict[str, str] = field(default_factory=_audioml_env)

    def init_process(self) -> None:
        """Once per worker process, before its first clip's timeout starts counting.

        One BLAS thread (the workers already use every core), and every extractor run once
        on a probe signal, so numba compiles here, not inside a clip's time budget (a no-op
        when the worker was forked from a process that had done it).
        """
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        os.environ.update(self.env)
        adopt(self.plugins)  # a worker not forked from the builder has not seen them
        feature_layout(self.features)

    def __call__(self, jobs: Sequence[ClipJob]) -> list[ClipResult]:
        """The result of every clip of ``jobs``, in order."""
        results: list[ClipResult | None] = []
        pending: list[tuple[int, ClipJob, str, Decoded]] = []
        for i, job in enumerate(jobs):
            if i:  # the job's timeout restarts for each clip (a one-clip job: as before)
                heartbeat()
            read = self._read(job)
            if isinstance(read, ClipResult):
                results.append(read)
                continue
            pending.append((len(results), job, *read))
            results.append(None)
            if sum(len(p[3].y) for p in pending) >= _MAX_PENDING_SAMPLES:
                self._extract(pending, results)
                pending = []
        self._extract(pending, results)
        return cast("list[ClipResult]", results)  # every place is filled by now

    def _read(self, job: ClipJob) -> ClipResult | tuple[str, Decoded]:
        """The clip's content key and decoded samples, or its result when nothing is left
        to extract (a cache hit, an unreadable or undecodable file)."""
        max_s = self.features.max_duration_s
        try:
            with open(job.path, "rb") as handle:
                before = _stamp(os.fstat(handle.fileno()))
                key = hashlib.file_digest(handle, "sha256").hexdigest()
                if key in self.cached:
                    return ClipResult(job.clip_id, key, hit=True)
                handle.seek(0)
                try:
                    decoded = decode_clip(handle, self.features.sample_rate, max_s)
                except FeatureError as exc:
                    return ClipResult(job.clip_id, key, reason=str(exc))
                if _stamp(os.fstat(handle.fileno())) != before:
                    reason = "file changed while it was read"
                    return ClipResult(job.clip_id, None, reason=reason, cacheable=False)
        except OSError as exc:  # missing or unreadable now: may change, never cached
            return ClipResult(job.clip_id, None, reason=str(_read_error(exc)), cacheable=False)
        return key, decoded

    def _extract(
        self, pending: list[tuple[int, ClipJob, str, Decoded]], results: list[ClipResult | None]
    ) -> None:
        """Extract the decoded clips together; their results go to their places."""
        if not pending:
            return
        signals = [decoded.y for _, _, _, decoded in pending]
        outcomes = extract_signals(
            signals, self.features.sample_rate, self.features, self.segments, on_each=heartbeat
        )
        for (place, job, key, decoded), outcome in zip(pending, outcomes, strict=True):
            results[place] = self._finish(job, key, decoded, outcome)

    def _finish(
        self, job: ClipJob, key: str, decoded: Decoded, outcome: Extracted | Exception
    ) -> ClipResult:
        if isinstance(outcome, FeatureError):
            return ClipResult(job.clip_id, key, reason=str(outcome))
        if isinstance(outcome, Exception):  # an extractor bug must not stop the batch
            reason = f"extraction failed: {type(outcome).__name__}: {outcome}"
            return ClipResult(job.clip_id, key, reason=reason, cacheable=False)
        frame, images = outcome
        if list(frame.columns) != self.store.columns:
            raise FeatureError("extractor output does not match the feature layout")
        if images is not None:
            self.store.save_mel(key, images)
        note = None
        if decoded.cut_from_s is not None:
            max_s = self.features.max_duration_s
            note = f"cut: read the first {max_s:g} s of {decoded.cut_from_s:.0f} s"
        return ClipResult(job.clip_id, key, rows=frame.to_numpy(dtype=np.float64), note=note)


def clips_per_job(features: FeaturesSpec, total: int, workers: int) -> int:
    """Clips per job: one, unless a configured extractor has a batch form; then about
    :data:`_JOBS_PER_WORKER` jobs per worker, at most :data:`_MAX_CLIPS_PER_JOB` clips each."""
    if not batched_names(features):
        return 1
    share = math.ceil(total / max(1, workers * _JOBS_PER_WORKER))
    return max(1, min(_MAX_CLIPS_PER_JOB, share))


def resolve_jobs(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` (-1 or 0: every core this process may use)."""
    if n_jobs > 0:
        return n_jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _chunks(jobs: Iterable[ClipJob], size: int) -> Iterator[tuple[ClipJob, ...]]:
    iterator = iter(jobs)
    while chunk := tuple(itertools.islice(iterator, size)):
        yield chunk


def run_jobs(
    worker: ClipWorker,
    jobs: Iterable[ClipJob],
    *,
    n_jobs: int,
    total: int,
    on_done: Callable[[], None] | None = None,
) -> Iterator[ClipResult]:
    """Run ``jobs`` in ``n_jobs`` worker processes, yielding results as they finish.

    A clip whose worker died or timed out comes back as a non-cacheable skip with the
    reason. A job of several clips that was lost so is run again one clip per job (in new
    workers, after the others), so that only the clip that caused it is lost. ``on_done``
    is called after each clip's result.
    """
    workers = min(resolve_jobs(n_jobs), max(total, 1))
    # Per-process settings (a model session's intra-op threads: the cores divided by
    # n_jobs) follow the processes started here, not features.n_jobs (predict --n-jobs,
    # fewer clips than processes); n_jobs is not part of the cache key.
    worker = replace(worker, features=worker.features.model_copy(update={"n_jobs": workers}))
    size = clips_per_job(worker.features, total, workers)
    lost: list[ClipJob] = []
    for chunk, outcome in _run(worker, _chunks(jobs, size), workers):
        if isinstance(outcome, JobLost) and len(chunk) > 1:
            lost.extend(chunk)
            continue
        yield from _each(chunk, outcome, on_done)
    if lost:
        singles = ((job,) for job in lost)
        for chunk, outcome in _run(worker, singles, min(workers, len(lost))):
            yield from _each(chunk, outcome, on_done)


def _run(
    worker: ClipWorker, chunks: Iterator[tuple[ClipJob, ...]], workers: int
) -> Iterator[tuple[tuple[ClipJob, ...], list[ClipResult] | JobLost]]:
    return run_isolated(
        worker,
        chunks,
        workers=workers,
        timeout_s=worker.features.clip_timeout_s,
        context=_context(),
    )


def _each(
    chunk: tuple[ClipJob, ...],
    outcome: list[ClipResult] | JobLost,
    on_done: Callable[[], None] | None,
) -> Iterator[ClipResult]:
    if isinstance(outcome, JobLost):
        reason = outcome.reason
        outcome = [ClipResult(j.clip_id, None, reason=reason, cacheable=False) for j in chunk]
    for result in outcome:
        yield result
        if on_done:
            on_done()


def _context() -> BaseContext:
    # fork: workers start in milliseconds and inherit the imported librosa/numba state. But
    # forking a process whose JAX (Keras) runtime already runs threads can deadlock, so such
    # a process starts its workers from a clean server process (librosa preloaded) instead.
    if "jax" not in sys.modules:
        return get_context("fork")
    context = get_context("forkserver")
    context.set_forkserver_preload(["features._worker"])
    return context
