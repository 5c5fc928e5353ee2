"""Open (or resume) the spec's Optuna study and run it within its budget.

The study name joins the spec name and a hash of everything that makes trials comparable
(data, features, families, metric, folds, seed), so rerunning a spec resumes its study and
changing any of those starts a new one. ``n_trials`` counts every finished trial of the
study, across processes and restarts.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from runner.errors import TrialFailed
from runner.spec import ExperimentSpec

__all__ = ["default_storage", "open_study", "run_budget", "study_name"]

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def default_storage(tracking_uri: str) -> str:
    """An SQLite file beside the MLflow store (or in the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    else:
        folder = Path.cwd()
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def study_name(spec_name: str, comparable_hash: str, data_digest: str) -> str:
    digest = hashlib.sha256(f"{comparable_hash}:{data_digest}".encode()).hexdigest()[:10]
    return f"{spec_name}-{digest}"


def open_study(
    spec: ExperimentSpec,
    *,
    name: str,
    storage: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study or load it when it exists (resume)."""
    direction = "maximize" if spec.greater_is_better else "minimize"
    return optuna.create_study(
        storage=_storage(storage),
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )


def _storage(url: str) -> str | optuna.storages.BaseStorage:
    if url.startswith("sqlite:"):
        # A generous busy timeout lets parallel trials wait on SQLite's write lock.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout_s: float | None,
    n_jobs: int = 1,
    on_interrupt: Callable[[], None] | None = None,
) -> bool:
    """Run trials until the study holds ``n_trials`` finished ones or time runs out.

    The first Ctrl-C lets running trials finish and stops cleanly (the study stays
    resumable); a second one interrupts at once. Returns False when interrupted.
    """
    remaining = n_trials - count_finished(study)
    if remaining <= 0:
        return True
    stop = threading.Event()

    def budget(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if stop.is_set() or count_finished(study) >= n_trials:
            study.stop()

    with _GracefulSigint(stop, on_interrupt):
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout_s,
            n_jobs=n_jobs,
            catch=(TrialFailed,),
            callbacks=[budget],
        )
    return not stop.is_set()


class _GracefulSigint:
    """First SIGINT sets ``stop``; the second raises KeyboardInterrupt as usual."""

    def __init__(self, stop: threading.Event, notify: Callable[[], None] | None) -> None:
        self.stop, self.notify, self.previous = stop, notify, None

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        if self.notify is not None:
            self.notify()

    def __enter__(self) -> _GracefulSigint:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
