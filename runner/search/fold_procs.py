"""Fold fits in worker processes, for machines where fold threads stall on the GIL.

Fold fits side by side in threads of one process scale only as far as the fits stay in
native code: scikit-learn's input checks, pandas indexing, k-NN and logistic regression on
small tables run in the interpreter, so on 16 cores threads kept about 4 busy
(``benchmarks/RESULTS_scaling.md``). Here each fold fit runs in one of a pool of worker
processes started once per search (a fork server, so no lock of this process's threads is
inherited). The training rows and labels travel once, when a worker starts; a fold sends
only the unfitted estimator, the input kind, the columns and the fold's row positions, and
gets back the predictions (and the fitted estimator when the caller keeps it). The parent's
fold threads still order the folds, feed the pruner and ask the time gate, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from runner.data.splits import Split
from runner.errors import TrialFailed
from runner.models import Inputs, Rows
from runner.search.evaluation import StoredModel

__all__ = ["FoldProcesses"]

# A worker's copy of the search's training rows and labels, and the folder its kept
# estimators go to (set once by _start).
_ROWS: Rows | None = None
_LABELS: np.ndarray | None = None
_STORE: str | None = None


def _start(rows: Rows, labels: np.ndarray, store: str) -> None:
    global _ROWS, _LABELS, _STORE
    _ROWS, _LABELS, _STORE = rows, labels, store
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def _store(estimator: Any) -> str:
    """Write a kept estimator where the parent can load it: only a path travels back."""
    path = os.path.join(_STORE or tempfile.gettempdir(), f"{uuid.uuid4().hex}.pkl")
    with open(path, "wb") as f:
        pickle.dump(estimator, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _fit(
    estimator: Any, inputs: Inputs, k: int, split: Split, task: str, classes: Sequence | None,
    threads: int | None, keep: bool,
) -> tuple:  # fmt: skip
    from runner.search.evaluation import _fit_fold  # the same fit and predict as in a thread

    began = time.time()
    inputs = Inputs(inputs.kind, _ROWS, inputs.columns, inputs.roles)  # type: ignore[arg-type]
    with threadpool_limits(limits=threads):
        out = _fit_fold(lambda: estimator, inputs, _LABELS, k, split, task=task, classes=classes)
    out = (_store(out[0]) if keep else None, *out[1:])
    return os.getpid(), out, (began, time.time())


class _Folder:
    """A temporary folder removed once neither the pool nor any handle into it is held."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="audioml-fold-models-")
        weakref.finalize(self, shutil.rmtree, self.path, True)


class FoldProcesses:
    """``workers`` processes holding ``rows`` and ``labels``; :meth:`fit` runs one fold.
    A kept fold estimator comes back as a :class:`runner.evaluation.StoredModel` (a file in
    this pool's own temporary folder, removed once neither the pool nor a handle is held)."""

    def __init__(self, rows: Rows, labels: np.ndarray, workers: int) -> None:
        self.rows, self.labels, self.workers = rows, labels, workers
        self.folder = _Folder()
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.pids: set[int] = set()  # the workers that have fitted a fold
        # When a list: each fold's wall-clock moments (sent, begun in the worker, ended there,
        # received), for a benchmark's account of the time around the fits.
        self.moments: list[tuple[float, float, float, float]] | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # Imported once in the fork server (when this starts it), not in every worker.
        context.set_forkserver_preload(["runner.search.fold_procs", "runner.search.evaluation"])
        # The table alone: a loader of log-mel images is a closure, and image folds stay here.
        rows = Rows(self.rows.frame)
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start,
                                   initargs=(rows, self.labels, self.folder.path))  # fmt: skip

    def fit(
        self, make: Callable[[], object], inputs: Inputs, k: int, split: Split, *, task: str,
        classes: Sequence | None, threads: int | None, keep: bool,
    ) -> tuple:  # fmt: skip
        """Fit fold ``k`` in a worker: (estimator or None, pred, proba, fit s, predict s)."""
        light = Inputs(inputs.kind, Rows(self.rows.frame.iloc[:0]), inputs.columns, inputs.roles)
        pool = self._pool
        try:
            sent = time.time()
            future = pool.submit(_fit, make(), light, k, split, task, classes, threads, keep)
            pid, out, (began, ended) = future.result()
        except BrokenProcessPool as exc:
            with self._lock:  # the first fold to see it starts a fresh pool for the rest
                if self._pool is pool:
                    self._pool = self._new_pool()
            raise TrialFailed(f"fold {k}: a fold worker process died ({exc})") from exc
        self.pids.add(pid)
        if self.moments is not None:
            self.moments.append((sent, began, ended, time.time()))
        model, *rest = out
        return (StoredModel(model, self.folder) if model is not None else None, *rest)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
