"""Per-clip extraction jobs and the process pool that runs them.

A job reads the file once, hashes exactly the bytes it decodes (so the cache key always
matches the content extracted, even if the file changed since it was listed), decodes and
resamples once, extracts, stores the mel images itself and returns only the small feature
matrix. Results stream back as they finish, with at most a few jobs in flight per worker,
so memory does not grow with the number of clips.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from features.audio import decode_audio, read_bytes
from features.cache import FeatureStore
from features.config import FeaturesSpec, SegmentsSpec
from features.extract import extract_signal
from runner.errors import FeatureError

__all__ = ["ClipJob", "ClipResult", "ClipWorker", "resolve_jobs", "run_jobs"]

_IN_FLIGHT_PER_WORKER = 4


@dataclass(frozen=True)
class ClipJob:
    """One clip to extract."""

    clip_id: str
    path: str


@dataclass
class ClipResult:
    """What a job returns: rows, or a reason and whether that reason may be cached."""

    clip_id: str
    key: str | None
    rows: np.ndarray | None = None
    reason: str | None = None
    cacheable: bool = True


@dataclass
class ClipWorker:
    """Extracts one clip with a fixed config (picklable, sent once per worker process)."""

    features: FeaturesSpec
    segments: SegmentsSpec
    store: FeatureStore

    def __call__(self, job: ClipJob) -> ClipResult:
        try:
            data = read_bytes(job.path)
        except FeatureError as exc:  # missing or unreadable now: may change, never cached
            return ClipResult(job.clip_id, None, reason=str(exc), cacheable=False)
        key = hashlib.sha256(data).hexdigest()
        try:
            y = decode_audio(data, self.features.sample_rate)
            del data  # the encoded bytes are not needed any more
            frame, images = extract_signal(
                y, self.features.sample_rate, self.features, self.segments
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
        return ClipResult(job.clip_id, key, rows=frame.to_numpy(dtype=np.float64))


def resolve_jobs(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` (-1 or 0: every core this process may use)."""
    if n_jobs > 0:
        return n_jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_WORKER: ClipWorker | None = None


def _init_worker(worker: ClipWorker) -> None:
    global _WORKER
    _WORKER = worker
    # One BLAS thread per process: the pool already uses every core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _run_one(job: ClipJob) -> ClipResult:
    if _WORKER is None:
        raise RuntimeError("worker not initialised")
    return _WORKER(job)


def run_jobs(
    worker: ClipWorker,
    jobs: Iterable[ClipJob],
    *,
    n_jobs: int,
    total: int,
    on_done: Callable[[], None] | None = None,
) -> Iterator[ClipResult]:
    """Run ``jobs`` in ``n_jobs`` processes (in this process when 1), yielding results.

    Results come in completion order. ``on_done`` is called after each result.
    """
    workers = min(resolve_jobs(n_jobs), max(total, 1))
    if workers <= 1:
        for job in jobs:
            yield worker(job)
            if on_done:
                on_done()
        return
    yield from _run_pool(worker, iter(jobs), workers, on_done)


def _run_pool(
    worker: ClipWorker,
    jobs: Iterator[ClipJob],
    workers: int,
    on_done: Callable[[], None] | None,
) -> Iterator[ClipResult]:
    # fork: workers start in milliseconds and inherit the imported librosa/numba state. But
    # forking a process whose JAX (Keras) runtime already runs threads can deadlock, so such
    # a process starts its workers from a clean server process instead.
    context = get_context("forkserver" if "jax" in sys.modules else "fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(worker,)
    ) as pool:
        pending: set[Future[ClipResult]] = set()
        limit = workers * _IN_FLIGHT_PER_WORKER
        try:
            while True:
                while len(pending) < limit and (job := next(jobs, None)) is not None:
                    pending.add(pool.submit(_run_one, job))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    if on_done:
                        on_done()
        finally:
            for future in pending:
                future.cancel()
