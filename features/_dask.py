"""Extraction on a Dask cluster (``features.executor: dask``): the same jobs, many machines.

The clips that the cache lacks are cut into tasks of many clips each; every task runs the
same :class:`~features._worker.ClipWorker` as the local pool on all its clips at once (so a
model's windows of many clips share session runs), on whichever Dask worker the
scheduler picks, and returns the small feature matrices to this process, which writes the
cache packs and assembles the table exactly as a local build does. Mel images are written
by the worker into ``features.cache_dir``, so that folder must be one file system seen by
every worker (NFS, a cluster file system) when images are cached.

Failures: a worker lost mid-task costs only that task, which the scheduler runs again on
another worker (Dask's ``distributed.scheduler.allowed-failures``, 3 by default); a task
that raises is retried twice; past that its clips are reported as skipped (not cached, so
the next run tries them again) and the build goes on. Bad clips are skipped and reported as
locally. ``features.clip_timeout_s`` is not enforced on Dask: a clip that hangs holds its
task, and Dask's own worker liveness decides.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from features._worker import ClipJob, ClipResult, ClipWorker

__all__ = ["run_jobs_dask", "scheduler_address"]

# Tasks per worker: enough that a lost worker's share is small and that fast workers take
# more, few enough that the scheduler's per-task overhead (about a millisecond) is nothing
# beside a task's clips.
_TASKS_PER_WORKER = 4
_MAX_CLIPS_PER_TASK = 64

# Worker processes that have run ClipWorker.init_process (numba compilation, one BLAS
# thread), by the worker config's identity: once per process, not once per task.
_READY: set[int] = set()


def scheduler_address(scheduler: str | None) -> str:
    """``features.scheduler``, else Dask's own ``DASK_SCHEDULER_ADDRESS`` setting.

    Raises:
        ValueError: neither names a scheduler (a Client without one would quietly start a
            local cluster, which is not what ``executor: dask`` asks for).
    """
    if scheduler:
        return scheduler
    import dask

    address = dask.config.get("scheduler-address", None) or os.environ.get(
        "DASK_SCHEDULER_ADDRESS"
    )
    if not address:
        raise ValueError(
            "features.executor is dask but no scheduler is named: set features.scheduler "
            "(tcp://HOST:8786 or a scheduler JSON file) or DASK_SCHEDULER_ADDRESS"
        )
    return str(address)


def _client(address: str) -> Any:
    from distributed import Client

    if address.endswith(".json") and os.path.exists(address):
        return Client(scheduler_file=address, timeout="30s", set_as_default=False)
    return Client(address, timeout="30s", set_as_default=False)


def _run_batch(worker: ClipWorker, batch: Sequence[ClipJob]) -> list[ClipResult]:
    """One task: the clips of ``batch``, extracted together in this Dask worker's process
    (a batch-form extractor, e.g. a model, runs once over all of them)."""
    if id(worker) not in _READY:
        worker.init_process()
        _READY.add(id(worker))
    return worker(batch)


def _batches(jobs: Sequence[ClipJob], workers: int) -> list[list[ClipJob]]:
    size = math.ceil(len(jobs) / max(1, workers * _TASKS_PER_WORKER))
    size = max(1, min(size, _MAX_CLIPS_PER_TASK))
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def _lost(batch: Sequence[ClipJob], exc: BaseException) -> list[ClipResult]:
    reason = f"lost on the Dask cluster ({type(exc).__name__}: {exc})"[:500]
    return [ClipResult(job.clip_id, None, reason=reason, cacheable=False) for job in batch]


def run_jobs_dask(
    worker: ClipWorker,
    jobs: Sequence[ClipJob],
    *,
    scheduler: str | None,
    on_done: Callable[[], None] | None = None,
) -> Iterator[ClipResult]:
    """Run ``jobs`` on the Dask cluster at ``scheduler``, yielding results as tasks finish.

    Args:
        worker: the extraction config, sent to the cluster once.
        jobs: the clips to read and extract.
        scheduler: the scheduler's address or scheduler file (None: Dask's own setting).
        on_done: called after each clip's result.
    """
    from distributed import as_completed

    if not jobs:
        return
    with _client(scheduler_address(scheduler)) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        shared = client.scatter(worker, broadcast=True, hash=False)
        run = uuid.uuid4().hex[:12]
        batches = _batches(jobs, workers)
        futures = {
            client.submit(_run_batch, shared, batch, key=f"audioml-features-{run}-{i}",
                          retries=2, pure=False): batch
            for i, batch in enumerate(batches)
        }  # fmt: skip
        with client.as_current():  # as_completed finds its client there, not globally
            done = as_completed(list(futures))
        for future in done:
            try:
                results = future.result()
            except Exception as exc:  # KilledWorker past allowed-failures, or a task error
                results = _lost(futures[future], exc)
            for result in results:
                yield result
                if on_done:
                    on_done()
