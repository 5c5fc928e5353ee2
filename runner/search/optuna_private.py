"""The one place that reads Optuna's private attributes, where no public API answers.

Checked against Optuna 5.1.0; ``tests/runner/test_optuna_private.py`` fails when any of them
changes, and a test greps that no other module reads them.

* ``Study._storage`` and ``Study._study_id``: the storage a study was opened on. Callers that
  made the storage themselves keep it (``runner.search.study.make_storage``); a study handed over
  by Optuna (``trial.study`` in an objective) has only this.
* ``Trial._trial_id`` / ``FrozenTrial._trial_id``: the storage's key of a trial, which the
  storage's public methods (``set_trial_state_values``, ``get_trial``,
  ``record_heartbeat``) take; the trial number is not that key.
* ``RDBStorage._get_stale_trial_ids``: the trials whose heartbeat is stale. Optuna's public
  ``fail_stale_trials`` would also fail them, but without our reason, owner check and retry.
* ``BaseDistribution._contains``: whether a value lies inside a distribution (its step and
  log grid included), which Optuna checks for enqueued trials and does not expose.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution

__all__ = ["contains", "frozen", "stale_trial_ids", "storage_of", "trial_id"]


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes."""
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's key of ``trial``."""
    return trial._trial_id


def frozen(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial):
    """``trial`` as the storage holds it now."""
    return study._storage.get_trial(trial._trial_id)


def stale_trial_ids(study: optuna.Study) -> set[int]:
    """Storage keys of RUNNING trials whose heartbeat is stale (empty without heartbeats)."""
    storage = study._storage
    if not getattr(storage, "get_heartbeat_interval", lambda: None)():
        return set()
    return set(storage._get_stale_trial_ids(study._study_id))


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a point of ``dist`` (inside its bounds, on its step or choices)."""
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False
