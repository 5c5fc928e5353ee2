"""Scale-out: more processes on one study, and a final step that runs exactly once.

``audioml run`` records in the study's user attributes what joining processes need: the
budget, the MLflow tracking URI and (last) the parent run id. ``audioml worker`` opens the
same study (same spec, same data, hence the same name), waits for the parent run id, then
claims trials (``runner.study.run_budget``) and logs each as a child run of that parent.
Whoever finalizes first claims it in the study under the study lock (``finalizing``); that
stops new claims, waits for running trials, refits and registers, then sets ``finalized``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import replace

import optuna
from rich.console import Console

from runner.errors import RunnerError
from runner.pipeline import PARENT_ATTR, Prepared, RunOptions, _mask, prepare, tracker_for
from runner.search import make_objective, make_pruner, make_sampler
from runner.spec import ExperimentSpec
from runner.study import (
    StudyLock,
    count_claimed,
    count_finished,
    fail_stale,
    make_storage,
    open_study,
    run_budget,
)
from runner.tracking import Tracker

__all__ = ["announce", "finalize_once", "finalize_study", "run_worker"]

BUDGET_ATTR = "n_trials"
TRACKING_ATTR = "mlflow_tracking_uri"
FINALIZING_ATTR = "finalizing"
FINALIZED_ATTR = "finalized_run_id"
POLL_S = 1.0


def announce(study: optuna.Study, n_trials: int, tracking_uri: str) -> None:
    """Record the budget and tracking URI (before the parent id, which workers wait for)."""
    study.set_user_attr(BUDGET_ATTR, n_trials)
    if "@" not in tracking_uri:  # never store credentials in the study
        study.set_user_attr(TRACKING_ATTR, tracking_uri)


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(claim: dict) -> bool:
    """Whether the claiming process may still be alive (another host: assume it is)."""
    if claim.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(claim["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_for_trials(study: optuna.Study, parent: str) -> bool:
    """Trials may still be claimed for ``parent``: it is current and nobody finalizes it."""
    attrs = study.user_attrs
    claim = attrs.get(FINALIZING_ATTR) or {}
    return attrs.get(PARENT_ATTR) == parent and claim.get("run") != parent


def claim_finalization(study: optuna.Study, lock: StudyLock, parent: str, force: bool) -> str:
    """Claim the final step of ``parent``: "claimed", "finalized" or "busy"."""
    with lock:
        attrs = study.user_attrs
        if attrs.get(FINALIZED_ATTR) == parent:
            return "finalized"
        mine = {"run": parent, **_me()}
        claim = attrs.get(FINALIZING_ATTR) or {}
        # A claim left by a dead process on this host (or any, with --force) is taken over.
        if claim.get("run") == parent and claim != mine and _alive(claim) and not force:
            return "busy"
        study.set_user_attr(FINALIZING_ATTR, mine)
    return "claimed"


def _wait_running(study: optuna.Study, console: Console) -> None:
    """Wait for trials still running elsewhere (dead workers' trials fail by heartbeat)."""
    said = False
    while running := study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not said:
            console.print(f"waiting for {len(running)} trial(s) still running on other workers")
            said = True
        time.sleep(POLL_S)
        fail_stale(study)


def finalize_once(
    p: Prepared,
    study: optuna.Study,
    tracker: Tracker,
    console: Console,
    *,
    force: bool = False,
) -> dict:
    """Claim the final step, wait for running trials, refit/test/register, mark it done."""
    from runner.finalize import finalize

    parent = tracker.parent_id
    state = claim_finalization(study, StudyLock(p.storage, p.study_name), parent, force)
    summary = {"study": p.study_name, "parent_run_id": parent, "finalized_here": False}
    if state == "finalized":
        console.print(f"study {p.study_name}: run {parent} is already finalized; nothing to do")
        return summary
    if state == "busy":
        claim = study.user_attrs[FINALIZING_ATTR]
        raise RunnerError(
            f"study {p.study_name}: {claim['host']} pid {claim['pid']} is finalizing run "
            f"{parent}; if that process is gone, rerun with --force"
        )
    _wait_running(study, console)
    budget = study.user_attrs.get(BUDGET_ATTR, p.spec.search.n_trials)
    done = count_finished(study)
    if done < budget:
        console.print(f"[yellow]finalizing with {done} of {budget} trials finished[/]")
    summary = finalize(p, study, tracker, console)
    study.set_user_attr(FINALIZED_ATTR, parent)
    return {**summary, "finalized_here": True}


def _wait_parent(study: optuna.Study, p: Prepared, wait_s: float, console: Console) -> str:
    """The parent run id, once ``audioml run`` has started the study (bounded wait)."""
    deadline = time.monotonic() + wait_s
    said = False
    while (parent := study.user_attrs.get(PARENT_ATTR)) is None:
        if time.monotonic() >= deadline:
            names = optuna.get_all_study_names(make_storage(p.storage))
            same = [n for n in names if n.startswith(f"{p.spec.name}-") and n != p.study_name]
            hint = f"; other studies of this spec here: {', '.join(same)}" if same else ""
            raise RunnerError(
                f"study {p.study_name}: no `audioml run` started it within {wait_s:g}s. "
                "The name hashes the spec, the --set overrides and the feature table, so the "
                f"run must use the same ones and the same --storage{hint}"
            )
        if not said:
            console.print(
                f"waiting up to {wait_s:g}s for `audioml run` to start study "
                f"[bold]{p.study_name}[/] ({_mask(p.storage)})"
            )
            said = True
        time.sleep(POLL_S)
    return parent


def _tracker(p: Prepared, study: optuna.Study, opts: RunOptions, parent: str) -> Tracker:
    """A tracker attached to ``parent`` on the run's tracking server."""
    chosen = opts.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    uri = chosen or study.user_attrs.get(TRACKING_ATTR) or p.tracking_uri
    tracker = tracker_for(p, uri)
    tracker.attach_parent(parent)
    return tracker


def worker_seed(seed: int) -> int:
    """A sampler seed of this process: with the run's seed, a worker would repeat the run's
    random start-up trials parameter for parameter."""
    text = f"{seed}:{socket.gethostname()}:{os.getpid()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _join(spec: ExperimentSpec, opts: RunOptions, wait_s: float) -> tuple:
    p = prepare(spec, opts)
    seeded = spec.model_copy(update={"seed": worker_seed(spec.seed)})  # the sampler's only
    study = open_study(
        spec,
        name=p.study_name,
        storage=p.storage,
        sampler=make_sampler(seeded),
        pruner=make_pruner(spec),
    )
    parent = _wait_parent(study, p, wait_s, opts.console)
    tracker = _tracker(p, study, opts, parent)
    return replace(p, tracking_uri=tracker.uri), study, tracker


def run_worker(spec: ExperimentSpec, opts: RunOptions, *, wait_s: float = 600.0) -> dict:
    """Join the spec's study as one more worker; run trials until the budget is claimed."""
    from runner.report import print_trial

    p, study, tracker = _join(spec, opts, wait_s)
    console, parent = opts.console, tracker.parent_id
    budget = int(study.user_attrs.get(BUDGET_ATTR, spec.search.n_trials))
    mine: list[int] = []

    def observe(record) -> None:
        tracker.log_trial(record)
        mine.append(record.number)
        print_trial(console, record, spec.search.metric)

    if not open_for_trials(study, parent):
        console.print(f"study {p.study_name}: run {parent} is finalized or finalizing; no work")
        return {"study": p.study_name, "parent_run_id": parent, "trials": [], "ok": True}
    console.print(
        f"worker joined study [bold]{p.study_name}[/] under run {parent}: "
        f"{count_claimed(study)} of {budget} trials claimed"
    )
    try:
        completed = run_budget(
            study,
            make_objective(spec, p.data, observe),
            n_trials=budget,
            timeout_s=spec.search.timeout_s,
            n_jobs=spec.search.n_jobs,
            on_interrupt=lambda: console.print("[yellow]stopping after the current trial[/]"),
            lock=StudyLock(p.storage, p.study_name),
            keep_going=lambda s: open_for_trials(s, parent),
        )
    finally:
        tracker.flush()  # the last trials' plots are still being logged in the background
    console.print(f"worker done: ran {len(mine)} trial(s); the `audioml run` process finalizes")
    return {"study": p.study_name, "parent_run_id": parent, "trials": mine, "ok": completed}


def finalize_study(spec: ExperimentSpec, opts: RunOptions, *, force: bool = False) -> dict:
    """``audioml finalize``: the final step of the spec's study, when its run process is gone."""
    p = prepare(spec, opts)
    where = f"study {p.study_name} in {_mask(p.storage)}"
    try:
        study = optuna.load_study(
            study_name=p.study_name, storage=make_storage(p.storage), sampler=make_sampler(spec)
        )
    except KeyError:
        raise RunnerError(f"no {where}: start it with `audioml run` on this spec") from None
    parent = study.user_attrs.get(PARENT_ATTR)
    if parent is None:
        raise RunnerError(f"{where} has no parent run: start it with `audioml run`")
    tracker = _tracker(p, study, opts, parent)
    p = replace(p, tracking_uri=tracker.uri)
    # finalize() tags the parent with the best trial: a study finalized before the
    # finalized attribute existed is recognised by that tag.
    if "best_trial" in tracker.client.get_run(parent).data.tags:
        opts.console.print(f"{where}: run {parent} is already finalized; nothing to do")
        return {"study": p.study_name, "parent_run_id": parent, "finalized_here": False}
    return finalize_once(p, study, tracker, opts.console, force=force)
