"""Every study and trial attribute key the runner reads or writes, in one place.

Optuna keeps a study's and a trial's attributes as free-form dictionaries; a misspelt key
reads as missing. So every key is a constant here, with typed readers for the ones several
modules read, and no other module spells a key. The values are what existing studies hold:
renaming one would orphan every study created before.
"""

from __future__ import annotations

from typing import Any

import optuna

__all__ = [
    "BUDGET",
    "FAILED_TRIAL",
    "FAIL_REASON",
    "FINALIZED_RUN",
    "FINALIZING",
    "MEMBERS",
    "OWNER",
    "PARENT_RUN",
    "REQUEUED",
    "RETRY_HISTORY",
    "RUN",
    "SECONDS",
    "TRACKING_URI",
    "UNCOUNTED",
    "WARM_STARTED",
    "WORKER",
    "fail_reason",
    "is_retry",
    "owner",
    "retry_history",
    "seconds",
]

# Study user attributes.
PARENT_RUN = "mlflow_parent_run_id"  # the MLflow parent run of the study's current run
BUDGET = "n_trials"  # the trial budget the run was started with
TRACKING_URI = "mlflow_tracking_uri"  # where the parent run lives
FINALIZING = "finalizing"  # who holds the finalize claim ({"run", host, pid, start})
FINALIZED_RUN = "finalized_run_id"  # the parent run that was finalized
WARM_STARTED = "warm_start_enqueued"  # how many warm-start trials were enqueued

# Trial user attributes.
RUN = "mlflow_run_id"  # the trial's MLflow child run
OWNER = "owner"  # the process that claimed it ({host, pid, start})
WORKER = "worker"  # "host:pid", for people
FAIL_REASON = "fail_reason"  # why it failed or was skipped
REQUEUED = "requeued"  # a trial that did not end by itself: were its params queued again
UNCOUNTED = "uncounted"  # does not count against the budget (skipped, died, lost)
SECONDS = "seconds"  # the trial's own wall time (the live line's and leaderboard's clock)
MEMBERS = "members"  # a voting trial's members, JSON [(family, params), ...]

# Trial system attributes of a retried trial (set on the WAITING trial that retries it).
FAILED_TRIAL = "failed_trial"  # the number of the first trial that ran these params
RETRY_HISTORY = "retry_history"  # the numbers of every trial that ran them and died


def fail_reason(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.user_attrs.get(FAIL_REASON) or "")


def seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's own wall time; Optuna's duration (claim and storage included) if unset."""
    value = trial.user_attrs.get(SECONDS)
    if value is not None:
        return float(value)
    return trial.duration.total_seconds() if trial.duration else None


def owner(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return dict(trial.user_attrs.get(OWNER) or {})


def retry_history(trial: optuna.trial.FrozenTrial) -> list[int]:
    return list(trial.system_attrs.get(RETRY_HISTORY, ()))


def is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` (WAITING) retries the parameters of a trial whose process died."""
    return FAILED_TRIAL in trial.system_attrs
