"""Per-clip extraction jobs and the worker processes that run them.

A job opens the file once, hashes all of its bytes (streamed, so memory does not grow with
the file), and when that content is already cached returns only the hash; otherwise it
decodes at most ``features.max_duration_s`` seconds from the same open file, extracts,
stores the mel images itself and returns only the small feature matrix. A file that changes
while it is read is reported and retried next run, so the cache key always matches the
content extracted.

Jobs always run in worker processes (``features._pool``): a clip that hangs past
``features.clip_timeout_s`` or kills its worker costs that clip only.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.context import BaseContext

import numpy as np

from features._pool import JobLost, run_isolated
from features.audio import decode_clip
from features.cache import FeatureStore
from features.config import FeaturesSpec, SegmentsSpec
from features.extract import extract_signal, feature_layout
from runner.errors import FeatureError

__all__ = ["ClipJob", "ClipResult", "ClipWorker", "resolve_jobs", "run_jobs"]


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


@dataclass
class ClipWorker:
    """Extracts one clip with a fixed config (picklable, sent once per worker process).

    ``cached`` holds the content keys whose rows (and images) are complete in the store.
    """

    features: FeaturesSpec
    segments: SegmentsSpec
    store: FeatureStore
    cached: frozenset[str] = field(default_factory=frozenset)

    def init_process(self) -> None:
        """Once per worker process, before its first clip's timeout starts counting.

        One BLAS thread (the workers already use every core), and every extractor run once
        on a probe signal, so numba compiles here, not inside a clip's time budget (a no-op
        when the worker was forked from a process that had done it).
        """
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        feature_layout(self.features)

    def __call__(self, job: ClipJob) -> ClipResult:
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
        try:
            frame, images = extract_signal(
                decoded.y, self.features.sample_rate, self.features, self.segments
            )
        except FeatureError as exc:
            return ClipResult(job.clip_id, key, reason=str(exc))
        except Exception as exc:  # an extractor bug must not stop the batch; retry next run
            reason = f"extraction failed: {type(exc).__name__}: {exc}"
            return ClipResult(job.clip_id, key, reason=reason, cacheable=False)
        if list(frame.columns) != self.store.columns:
            raise FeatureError("extractor output does not match the feature layout")
        if images is not None:
            self.store.save_mel(key, images)
        note = None
        if decoded.cut_from_s is not None:
            note = f"cut: read the first {max_s:g} s of {decoded.cut_from_s:.0f} s"
        return ClipResult(job.clip_id, key, rows=frame.to_numpy(dtype=np.float64), note=note)


def resolve_jobs(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` (-1 or 0: every core this process may use)."""
    if n_jobs > 0:
        return n_jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_jobs(
    worker: ClipWorker,
    jobs: Iterable[ClipJob],
    *,
    n_jobs: int,
    total: int,
    on_done: Callable[[], None] | None = None,
) -> Iterator[ClipResult]:
    """Run ``jobs`` in ``n_jobs`` worker processes, yielding results as they finish.

    A job whose worker died or timed out comes back as a non-cacheable skip with the
    reason. ``on_done`` is called after each result.
    """
    workers = min(resolve_jobs(n_jobs), max(total, 1))
    results = run_isolated(
        worker,
        iter(jobs),
        workers=workers,
        timeout_s=worker.features.clip_timeout_s,
        context=_context(),
    )
    for job, result in results:
        if isinstance(result, JobLost):
            result = ClipResult(job.clip_id, None, reason=result.reason, cacheable=False)
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
