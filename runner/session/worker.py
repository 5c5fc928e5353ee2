"""``audioml worker`` and ``audioml finalize``: more processes on one study, and the final step
when the run process is gone. Both are run sessions (``runner.session.session``) of the spec's
study.

``audioml worker`` opens the same study (same spec, same data, hence the same name), waits for
the parent run id that ``audioml run`` records, then claims trials and logs each as a child run
of that parent. ``audioml finalize`` claims the final step (see ``Session.finalize``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import replace

import optuna
from rich.console import Console

from runner import attrs
from runner.config.spec import ExperimentSpec
from runner.errors import RunnerError, format_error
from runner.search.objective import make_pruner, make_sampler
from runner.search.study import count_claimed, make_storage, open_study
from runner.session.pipeline import Prepared, RunOptions, _mask, log_lineage, prepare, tracker_for
from runner.session.session import BUDGET_ATTR, PARENT_ATTR, TRACKING_ATTR, Session
from runner.tracking.tracker import Tracker

__all__ = ["finalize_study", "run_worker", "worker_seed"]

POLL_S = 1.0


def _wait_parent(study: optuna.Study, p: Prepared, wait_s: float, console: Console) -> str:
    """The parent run id, once ``audioml run`` has started the study (bounded wait)."""
    deadline = time.monotonic() + wait_s
    said = False
    while (parent := study.user_attrs.get(PARENT_ATTR)) is None:
        if time.monotonic() >= deadline:
            names = optuna.get_all_study_names(make_storage(p.storage))
            same = [n for n in names if n.startswith(f"{p.spec.name}-") and n != p.study_name]
            hint = (
                "its name hashes the spec, the --set overrides and the feature table, so the "
                "run must use the same ones and the same --storage"
            )
            if same:
                hint += f"; other studies of this spec here: {', '.join(same)}"
            problem = f"was not started by `audioml run` within {wait_s:g}s"
            raise RunnerError(format_error("study", p.study_name, problem=problem, hint=hint))
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


def _join(spec: ExperimentSpec, opts: RunOptions, wait_s: float) -> Session:
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
    return Session(replace(p, tracking_uri=tracker.uri), study, tracker, opts.console)


def run_worker(spec: ExperimentSpec, opts: RunOptions, *, wait_s: float = 600.0) -> dict:
    """Join the spec's study as one more worker; run trials until the budget is claimed."""
    session = _join(spec, opts, wait_s)
    study, name, parent = session.study, session.p.study_name, session.parent
    budget = int(study.user_attrs.get(BUDGET_ATTR, spec.search.n_trials))
    summary = {"study": name, "parent_run_id": parent, "trials": [], "ok": True}
    if not session.keep_going(study):
        opts.console.print(f"study {name}: run {parent} is finalized or finalizing; no work")
        return summary
    opts.console.print(
        f"worker joined study [bold]{name}[/] under run {parent}: "
        f"{count_claimed(study)} of {budget} trials claimed"
    )
    session.recover()
    before = {t.number for t in study.get_trials(deepcopy=False)}
    completed = session.search(budget)
    mine = [
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.number not in before and attrs.owner(t).get("pid") == os.getpid()
    ]
    opts.console.print(f"worker done: ran {len(mine)} trial(s); `audioml run` finalizes")
    return {**summary, "trials": mine, "ok": completed}


def finalize_study(spec: ExperimentSpec, opts: RunOptions, *, force: bool = False) -> dict:
    """``audioml finalize``: the final step of the spec's study, when its run process is gone.

    Never returns without a registered model (when the spec logs one): a study another live
    process is finalizing, or whose final step fails, is an error that says what to do."""
    p = prepare(spec, opts)
    storage = _mask(p.storage)
    try:
        study = optuna.load_study(
            study_name=p.study_name, storage=make_storage(p.storage), sampler=make_sampler(spec)
        )
    except KeyError:
        problem = f"is not in {storage}"
        hint = "start it with `audioml run` on this spec"
        raise RunnerError(
            format_error("study", p.study_name, problem=problem, hint=hint)
        ) from None
    parent = study.user_attrs.get(PARENT_ATTR)
    if parent is None:
        problem = f"in {storage} has no parent run"
        hint = "start it with `audioml run`"
        raise RunnerError(format_error("study", p.study_name, problem=problem, hint=hint))
    tracker = _tracker(p, study, opts, parent)
    session = Session(replace(p, tracking_uri=tracker.uri), study, tracker, opts.console)
    session.recover()
    run = tracker.client.get_run(parent)
    if run.info.status != "RUNNING":
        tracker.adopt_parent(parent)  # its process ended it KILLED or FAILED
    log_lineage(tracker, session.p, opts)  # a no-op unless its creator died before logging it
    return session.finalize(force=force, strict=True)
