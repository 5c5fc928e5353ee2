"""The spec's Optuna study: its name, its storage (with heartbeats), its budget.

The study name joins the spec name and a hash of everything that makes trials comparable
(data, features, families, metric, folds, seed), so rerunning a spec resumes its study and
changing any of those starts a new one. ``n_trials`` counts the trials that ended by
themselves (complete, pruned, failed by their own error) plus the running ones, across
threads, processes, machines and restarts; a trial whose process died, or that was skipped,
is marked ``uncounted`` (see ``runner.search.trials``). A trial is *claimed* only while
holding the study's lock and only while fewer than ``n_trials`` count, so any number of
workers on one study stop at exactly the budget. The lock (``runner.stores.lock``) is
PostgreSQL's advisory lock on a PostgreSQL storage and a file lock beside an SQLite file.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from runner import attrs
from runner.config.spec import ExperimentSpec
from runner.stores.checks import check_study_store
from runner.stores.lock import StudyLock, database_url

__all__ = [
    "count_claimed",
    "count_finished",
    "counted",
    "default_storage",
    "make_storage",
    "open_study",
    "study_name",
]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CLAIMED = (TrialState.RUNNING, *FINISHED)
UNCOUNTED_ATTR = attrs.UNCOUNTED
# A live process refreshes its running trial's heartbeat every HEARTBEAT_S. On its own host a
# dead process is seen at once (runner.search.liveness); from another host its trial is declared
# dead once the heartbeat is GRACE_S old (a busy SQLite write may delay a beat by seconds).
HEARTBEAT_S = 5
GRACE_S = 30
# A trial whose process died is retried with the same parameters at most MAX_RETRY times (a
# parameter set that kills its process every time, e.g. by OOM, is then lost: not retried,
# not counted, and a fresh trial takes its place).
MAX_RETRY = 2


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
    """Create the study or load it when it exists (resume, or a worker joining)."""
    direction = "maximize" if spec.greater_is_better else "minimize"
    check_study_store(storage, name)  # damaged, unwritable, or emptied under its MLflow runs
    return optuna.create_study(
        storage=make_storage(storage),
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )


def make_storage(url: str) -> str | optuna.storages.BaseStorage:
    """An RDB storage with heartbeats (stale trials fail) for SQLite and server databases."""
    url = database_url(url)
    if url.startswith("sqlite:"):
        # A generous busy timeout lets parallel trials wait on SQLite's write lock.
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        # Workers idle for long between trials; a dropped connection is replaced silently.
        kwargs = {"pool_pre_ping": True}
    else:
        return url
    # Processes starting together on an empty database would race to create Optuna's
    # tables (PostgreSQL: duplicate type "studydirection"): the first creates, others wait.
    with StudyLock(url, "audioml:optuna-schema"), warnings.catch_warnings():
        # Heartbeats are flagged experimental; they are how a dead worker's trial gets failed.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Our own claims reap dead trials first (runner.search.trials, with the reason); the
        # callback covers a plain study.optimize() on this storage: its stale trials are
        # retried too.
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=retry,
        )


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that count against ``n_trials``: running ones and those that ended by
    themselves. A trial marked ``uncounted`` or retried under another number does not."""
    retried = {n for t in trials for n in attrs.retry_history(t)}
    return [
        t
        for t in trials
        if t.state in CLAIMED and not t.user_attrs.get(UNCOUNTED_ATTR) and t.number not in retried
    ]


def count_finished(study: optuna.Study) -> int:
    """Trials that ended by themselves: complete, pruned, or failed by their own error."""
    return sum(t.state in FINISHED for t in counted(study.get_trials(deepcopy=False)))


def count_claimed(study: optuna.Study) -> int:
    """Trials that count against the budget: those that ended by themselves and running ones."""
    return len(counted(study.get_trials(deepcopy=False)))
