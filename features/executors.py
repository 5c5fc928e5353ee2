"""Where the clips that the cache lacks are extracted (``features.executor``).

One registry: an executor takes the worker config, the jobs, the local process count and a
per-clip callback, and yields one :class:`~features._worker.ClipResult` per job in any
order; the build writes the packs and assembles the table the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from features._worker import ClipJob, ClipResult, ClipWorker, run_jobs

__all__ = ["EXECUTORS", "Executor", "execute"]

Executor = Callable[..., Iterator[ClipResult]]


def _local(
    worker: ClipWorker, jobs: Sequence[ClipJob], *, n_jobs: int, on_done: Callable[[], None]
) -> Iterator[ClipResult]:
    """This machine's worker processes, one clip each at a time (``features._pool``)."""
    return run_jobs(worker, jobs, n_jobs=n_jobs, total=len(jobs), on_done=on_done)


def _dask(
    worker: ClipWorker, jobs: Sequence[ClipJob], *, n_jobs: int, on_done: Callable[[], None]
) -> Iterator[ClipResult]:
    """The Dask cluster at ``features.scheduler`` (``features._dask``); n_jobs is unused:
    the cluster's workers decide."""
    from features._dask import run_jobs_dask

    return run_jobs_dask(worker, jobs, scheduler=worker.features.scheduler, on_done=on_done)


EXECUTORS: dict[str, Executor] = {"local": _local, "dask": _dask}


def execute(
    worker: ClipWorker, jobs: Sequence[ClipJob], *, n_jobs: int, on_done: Callable[[], None]
) -> Iterator[ClipResult]:
    """Run ``jobs`` on the executor that ``worker.features.executor`` names."""
    return EXECUTORS[worker.features.executor](worker, jobs, n_jobs=n_jobs, on_done=on_done)
