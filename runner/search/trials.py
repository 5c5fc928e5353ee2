"""Claiming, running and reaping trials: the budget loop every process of a study runs.

A claim happens under the study's lock: first every RUNNING trial whose process is dead is
failed with the reason ``worker died`` and its parameters are queued again (Optuna's WAITING
state, picked up by the next ``ask``); then, while fewer than ``n_trials`` count, a trial is
asked, stamped with its owner and given its first heartbeat, all before the lock is released.
So, under the lock, a RUNNING trial without an owner belongs to a claim that died holding it.
A trial whose process died never counts against the budget: its parameters are retried (twice
at most); after that, or without parameters, it is *lost* and a fresh trial takes its place.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from runner import attrs
from runner.search.liveness import Heartbeat, describe, is_alive, is_stopped, me
from runner.search.optuna_private import frozen, stale_trial_ids, storage_of, trial_id
from runner.search.study import MAX_RETRY, UNCOUNTED_ATTR, count_claimed
from runner.stores.lock import StudyLock

__all__ = [
    "DIED",
    "OWNER_ATTR",
    "REASON_ATTR",
    "REQUEUED_ATTR",
    "Hooks",
    "abandon",
    "claim",
    "reap_dead",
]

log = logging.getLogger(__name__)
OWNER_ATTR, WORKER_ATTR, REASON_ATTR = attrs.OWNER, attrs.WORKER, attrs.FAIL_REASON
# Whether a trial that did not end by itself had its parameters queued again (else: lost).
REQUEUED_ATTR = attrs.REQUEUED
DIED = "worker died"


@dataclass
class Hooks:
    """What the caller is told: trials found dead (and failed), and each claim."""

    on_dead: Callable[[list[optuna.trial.FrozenTrial]], None] | None = None
    keep_going: Callable[[optuna.Study], bool] | None = None
    on_interrupt: Callable[[], None] | None = None


def abandon(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial that did not end by itself and queue its parameters again (at most
    ``MAX_RETRY`` times on one parameter set; after that the trial is lost). Either way it does
    not count against the budget, so a fresh trial takes a lost one's place.

    Returns False when the trial had finished meanwhile (someone else got there first)."""
    storage, tid = storage_of(study), trial_id(trial)
    history = [*attrs.retry_history(trial), trial.number]
    retry = bool(trial.params) and len(history) <= MAX_RETRY
    if not retry and trial.params:
        reason = f"{reason} ({len(history)} times on these parameters; lost, not retried again)"
    try:
        storage.set_trial_user_attr(tid, REASON_ATTR, reason)
        storage.set_trial_user_attr(tid, UNCOUNTED_ATTR, True)
        storage.set_trial_user_attr(tid, REQUEUED_ATTR, retry)
        if not storage.set_trial_state_values(tid, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if retry:
        first = trial.system_attrs.get(attrs.FAILED_TRIAL, trial.number)
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={attrs.FAILED_TRIAL: first, attrs.RETRY_HISTORY: history},
            )
        )
    return True


def reap_dead(study: optuna.Study, lock: StudyLock) -> list[optuna.trial.FrozenTrial]:
    """Fail the RUNNING trials whose process is dead (call with ``lock`` held): gone or a
    zombie on this host; on another host, or stopped here, once its heartbeat is stale."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale = stale_trial_ids(study)
    dead = []
    for trial in running:
        owner = trial.user_attrs.get(OWNER_ATTR)
        if owner is None:
            gone = lock.across_processes  # its claim died holding the lock (see above)
        else:
            alive = is_alive(owner)
            silent = trial_id(trial) in stale and (alive is None or is_stopped(owner))
            gone = alive is False or silent
        if gone and abandon(study, trial, DIED):
            who = describe(owner) if owner else "a process that died while claiming it"
            log.warning("trial %d: %s is gone; marked failed", trial.number, who)
            dead.append(frozen(study, trial))
    return dead


def claim(study: optuna.Study, lock: StudyLock, n_trials: int, hooks: Hooks):
    """Reap, then ask for a trial under the lock; None when the budget is used up."""
    with lock:
        dead = reap_dead(study, lock)
        if dead and hooks.on_dead is not None:
            hooks.on_dead(dead)
        if count_claimed(study) >= n_trials:
            return None
        if hooks.keep_going is not None and not hooks.keep_going(study):
            return None
        with warnings.catch_warnings():
            # Optuna warns when ask() meets a heartbeat storage; Heartbeat below beats for it.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        owner = me()
        trial.set_user_attr(OWNER_ATTR, owner)
        trial.set_user_attr(WORKER_ATTR, f"{owner['host']}:{owner['pid']}")
        beat = Heartbeat(storage_of(study), trial_id(trial)).start()
    return trial, beat
