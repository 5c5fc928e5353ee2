"""One run session for ``audioml run``, ``worker`` and ``finalize``: open or resume the study,
recover what a dead process left behind, run trials (each mirrored by a child run from its
start), and finalize once, as a transaction.

What a study records in its user attributes: the budget and tracking URI (``announce``), the
parent run (``mlflow_parent_run_id``), the finalize claim (``finalizing``: run, host, pid,
process start) and, last, ``finalized_run_id``. The parent run carries its owner's identity
(``audioml.owner``), so a rerun adopts the parent of a dead process and joins that of a
live one as a worker (two ``audioml run`` of one spec share one study).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow.entities import Run
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape
from threadpoolctl import threadpool_limits

from runner import attrs as keys
from runner.config.spec import ExperimentSpec
from runner.errors import REPORTED, RunnerError, format_error
from runner.faults import pause_point
from runner.search.budget import run_budget
from runner.search.dominance import DOMINATED
from runner.search.liveness import describe, is_alive, me
from runner.search.objective import (
    TrialRecord,
    decode_params,
    dropped_families,
    make_objective,
    resource_plan,
)
from runner.search.study import count_claimed, count_finished
from runner.search.trials import DIED, REASON_ATTR, REQUEUED_ATTR, Hooks, reap_dead
from runner.session.pipeline import (
    Prepared,
    RunOptions,
    log_lineage,
    open_spec_study,
    parent_tags,
    prepare,
    tracker_for,
)
from runner.stores.lock import StudyLock
from runner.tracking.report import print_trial
from runner.tracking.tracker import OWNER_TAG, Tracker

__all__ = [
    "Session",
    "announce",
    "claim_finalization",
    "experiment_mismatch",
    "run_experiment",
    "start_tracking",
]

# The study attribute keys under the names this module has always exported (runner.attrs).
PARENT_ATTR, BUDGET_ATTR, TRACKING_ATTR = keys.PARENT_RUN, keys.BUDGET, keys.TRACKING_URI
FINALIZING_ATTR, FINALIZED_ATTR, RUN_ATTR = keys.FINALIZING, keys.FINALIZED_RUN, keys.RUN
POLL_S = 0.5
# A trial that ended by itself ends FINISHED (its `state` tag says how); one that failed, or
# whose process died, FAILED with a reason. KILLED is left for a person's Ctrl-C.
_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}


def announce(study: optuna.Study, n_trials: int, tracking_uri: str) -> None:
    """Record the budget and tracking URI (before the parent id, which workers wait for)."""
    study.set_user_attr(BUDGET_ATTR, n_trials)
    if "@" not in tracking_uri:  # never store credentials in the study
        study.set_user_attr(TRACKING_ATTR, tracking_uri)


def _owner(run) -> dict | None:
    text = run.data.tags.get(OWNER_TAG)
    return json.loads(text) if text else None


@dataclass
class Session:
    """One process's part in one study, under one parent run."""

    p: Prepared
    study: optuna.Study
    tracker: Tracker
    console: Console

    def __post_init__(self) -> None:
        self.lock = StudyLock(self.p.storage, self.p.study_name)
        self._warned: set[str] = set()
        # One clock for all of this process's trials (the search and the final top-up);
        # None until the first search, then the monotonic deadline or inf.
        self._deadline: float | None = None
        self._only_requeued = False

    @property
    def parent(self) -> str:
        return self.tracker.parent_id

    # -- recovery ------------------------------------------------------------------------
    def recover(self) -> None:
        """Fail the trials of dead processes and end every run they left RUNNING."""
        with self.lock:
            self.close_dead(reap_dead(self.study, self.lock))
        by_run = {t.user_attrs.get(RUN_ATTR): t for t in self.study.get_trials(deepcopy=False)}
        for run in self.tracker.running_runs():
            rid, alive = run.info.run_id, is_alive(_owner(run))
            if rid == self.parent or alive or (alive is None and rid not in by_run):
                continue
            if "trial_number" not in run.data.tags:  # a parent run of a dead process
                self.tracker.terminate(rid, "FAILED", "its process died; see the study's run")
                continue
            trial = by_run.get(rid)
            if trial is None or trial.state == TrialState.RUNNING:
                if alive is False:
                    self.tracker.terminate(rid, "FAILED", DIED)
                continue
            reason = keys.fail_reason(trial) or "its process died before the end"
            if trial.state == TrialState.COMPLETE:
                reason = "its process died before the trial's plots were logged"
            state = "FAILED" if trial.state == TrialState.FAIL else trial.state.name
            self.tracker.set_tags({"state": state}, rid)  # how it ended, as log_trial says
            self.tracker.terminate(rid, _STATUS.get(trial.state, "FAILED"), reason)

    def close_dead(self, dead: list[optuna.trial.FrozenTrial]) -> None:
        """The child runs of trials found dead end FAILED (opened now if they never were)."""
        for trial in dead:
            run_id = trial.user_attrs.get(RUN_ATTR) or self.tracker.trial_run(
                trial.number, self.p.study_name
            )
            if run_id is None:
                setup = decode_params(trial.params) if "model" in trial.params else None
                record = TrialRecord(trial.number, setup or decode_params({"model": "?"}), DIED)
                run_id = self.tracker.start_trial(record, study=self.p.study_name)
            self.tracker.terminate(run_id, "FAILED", trial.user_attrs.get(REASON_ATTR) or DIED)
            if trial.user_attrs.get(REQUEUED_ATTR):
                fate = "queued again with the same parameters"
            else:  # it does not count: the budget gets a fresh trial instead
                deaths = len(keys.retry_history(trial)) + 1
                why = f"{deaths} deaths on these parameters" if trial.params else "no parameters"
                fate = f"lost ({why}; not retried again); a fresh trial takes its place"
            self.console.print(
                f"[yellow]trial {trial.number}: its process is gone; failed ({DIED}) and {fate}[/]"
            )

    # -- trials --------------------------------------------------------------------------
    def search(self, budget: int) -> bool:
        """Claim and run trials until ``budget`` count; False when interrupted."""
        spec, tracker = self.p.spec, self.tracker

        def start(trial: optuna.Trial, record: TrialRecord) -> None:
            record.run_id = tracker.start_trial(record, study=self.p.study_name)
            pause_point("opened")
            trial.set_user_attr(RUN_ATTR, record.run_id)

        def observe(record: TrialRecord) -> None:
            tracker.log_trial(record)
            print_trial(self.console, record, spec.search.metric)

        plan = resource_plan(spec)
        if self._deadline is None:  # said once: the final top-up searches on the same plan
            self.console.print(f"resources: {plan.describe()}")
        deadline = self._clock() if self._clock() != float("inf") else None
        hooks = Hooks(
            on_dead=self.close_dead,
            keep_going=self.keep_going,
            on_interrupt=lambda: self.console.print("[yellow]stopping after the current trial[/]"),
        )
        try:
            # BLAS and OpenMP pools (HistGradientBoosting, numpy) follow the plan too.
            with threadpool_limits(limits=plan.threads):
                return run_budget(
                    self.study,
                    make_objective(spec, self.p.data, observe, on_start=start, deadline=deadline),
                    n_trials=budget,
                    deadline=deadline,
                    n_jobs=plan.trials,
                    lock=self.lock,
                    hooks=hooks,
                )
        finally:
            tracker.flush()  # the last trials' plots are still being logged in the background

    def keep_going(self, study: optuna.Study) -> bool:
        """Whether to claim another trial: not once the parent is replaced or finalized, nor
        while another live process holds the finalize claim (one by a dead process is not
        obeyed: the final step waits for this process's trials)."""
        attrs = study.user_attrs
        if attrs.get(PARENT_ATTR) != self.parent or attrs.get(FINALIZED_ATTR) == self.parent:
            return False
        claim = attrs.get(FINALIZING_ATTR) or {}
        held = {k: v for k, v in claim.items() if k != "run"}
        if claim.get("run") == self.parent and held != me() and is_alive(claim) is not False:
            return False
        if self._only_requeued and not _requeued(study):
            return False
        dropped = dropped_families(study, spec=self.p.spec)
        self._warn_dropped(dropped)
        return len(dropped) < len(self.p.spec.search.models)

    def _warn_dropped(self, dropped: dict[str, str]) -> None:
        for family, reason in dropped.items():
            if family not in self._warned and reason.startswith(DOMINATED):
                self._warned.add(family)
                self.console.print(
                    f"[yellow]warning: {family} is {escape(reason)}; "
                    f"dropped for the rest of study {self.p.study_name}[/]"
                )
                self.tracker.set_tags({f"dominated.{family}": reason[:500]})
            elif family not in self._warned:
                self._warned.add(family)
                self.console.print(
                    f"[yellow]warning: {family} failed 5 trials in a row (last: {reason}); "
                    f"dropped for the rest of study {self.p.study_name}[/]"
                )
                self.tracker.set_tags({f"dropped.{family}": reason[:500] or "failed"})

    # -- the final step ------------------------------------------------------------------
    def finalize(self, *, force: bool = False, strict: bool = False) -> dict:
        """Claim the final step, wait for running trials and run the retries of dead ones
        (``_settle``), refit/test/register, then mark the study finalized and end the parent
        run. Nothing is marked before the model is registered; on failure the claim is
        released and the parent ends FAILED."""
        from runner.session.finalize import finalize

        name, parent = self.p.study_name, self.parent
        summary = {"study": name, "parent_run_id": parent, "finalized_here": False}
        state = claim_finalization(self.study, self.lock, parent, force)
        if state == "finalized":
            self.console.print(f"study {name}: run {parent} is already finalized; nothing to do")
            if self.tracker.client.get_run(parent).info.status != "FINISHED":
                self.tracker.end_parent("FINISHED")  # cut short after marking the study
            return summary
        if state == "busy":
            claim = self.study.user_attrs.get(FINALIZING_ATTR) or {}
            text = f"study {name}: {describe(claim)} is finalizing run {parent}"
            if strict:  # `audioml finalize` must not exit 0 without a model
                problem = f"run {parent} is being finalized by {describe(claim)}"
                hint = "wait for it to register the model, or pass --force if that process is gone"
                raise RunnerError(format_error("study", name, problem=problem, hint=hint))
            self.console.print(f"{text}; it registers the model")
            return summary
        budget = self.study.user_attrs.get(BUDGET_ATTR, self.p.spec.search.n_trials)
        try:
            if not self._settle(budget, fill=not strict):
                self.study.set_user_attr(FINALIZING_ATTR, {})  # the next command finalizes
                self.tracker.end_parent("KILLED")
                self.console.print(f"interrupted: rerun the same command to finalize {name}")
                return {**summary, "interrupted": True}
            if (done := count_finished(self.study)) < budget:
                self.console.print(
                    f"[yellow]finalizing with {done} of {budget} trials finished[/]"
                )
            summary = finalize(self.p, self.study, self.tracker, self.console)
            pause_point("registered")
            self.study.set_user_attr(FINALIZED_ATTR, parent)
        except Exception as exc:
            raise RunnerError(self._abort(exc)) from exc
        except BaseException as exc:
            self._abort(exc)
            raise
        self.tracker.end_parent("FINISHED")
        return {**summary, "finalized_here": True}

    def _abort(self, exc: BaseException) -> str:
        """Leave the study finalizable: release the claim, end the parent with the reason;
        returns what to tell the user."""
        self.study.set_user_attr(FINALIZING_ATTR, {})
        cause = str(exc) if isinstance(exc, REPORTED) else f"{type(exc).__name__}: {exc}"
        status = "FAILED" if isinstance(exc, Exception) else "KILLED"
        self.tracker.flush()
        self.tracker.terminate(self.parent, status, f"finalize failed: {cause}"[:4000])
        problem = f"finalizing run {self.parent} failed: {cause}"
        hint = (
            "the study keeps its trials and is still finalizable: fix the cause, then rerun "
            "the same `audioml run` or `audioml finalize` command (same spec and --set "
            "options); a study without a completed trial needs more trials: add --set "
            "search.n_trials=N with N larger"
        )
        return format_error("study", self.p.study_name, problem=problem, hint=hint)

    def _settle(self, budget: int, *, fill: bool) -> bool:
        """Wait for running trials, then run here what the budget still lacks: the trials of
        dead processes queued again and, with ``fill`` (a run or worker within its time
        budget), fresh ones for lost trials. The final step starts only after this; False
        when interrupted (Ctrl-C)."""
        while True:
            self._wait_running()
            missing = budget - count_claimed(self.study)
            if missing <= 0 or not (fill or _requeued(self.study)):
                return True
            if time.monotonic() >= self._clock():
                return True
            self.console.print(
                f"{missing} trial(s) of the budget left by processes that died: running them "
                "here before finalizing"
            )
            before = count_claimed(self.study)
            self._only_requeued = not fill
            try:
                if not self.search(budget):
                    return False
            finally:
                self._only_requeued = False
            if count_claimed(self.study) <= before:
                return True  # nothing counted (every family dropped or skipped): finalize

    def _clock(self) -> float:
        """This process's search deadline (``time.monotonic()``), started if need be."""
        if self._deadline is None:
            timeout_s = self.p.spec.search.timeout_s
            self._deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
        return self._deadline

    def _wait_running(self) -> None:
        """Wait for trials still running in live processes; dead ones are failed at once."""
        said = False
        while True:
            with self.lock:
                self.close_dead(reap_dead(self.study, self.lock))
            running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return
            if not said:
                who = sorted({describe(keys.owner(t)) for t in running})
                self.console.print(
                    f"waiting for {len(running)} trial(s) still running ({', '.join(who)})"
                )
                said = True
                pause_point("waiting")
            time.sleep(POLL_S)


def _requeued(study: optuna.Study) -> bool:
    """Whether the parameters of a trial whose process died wait to be run again."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return any(keys.is_retry(t) for t in waiting)


def claim_finalization(study: optuna.Study, lock: StudyLock, parent: str, force: bool) -> str:
    """Claim the final step of ``parent``: "claimed", "finalized" or "busy"."""
    with lock:
        attrs = study.user_attrs
        if attrs.get(FINALIZED_ATTR) == parent:
            return "finalized"
        mine = {"run": parent, **me()}
        claim = attrs.get(FINALIZING_ATTR) or {}
        # A claim left by a dead process is taken over (one on another host with --force).
        taken = claim.get("run") == parent and claim != mine
        if taken and is_alive(claim) is not False and not force:
            return "busy"
        study.set_user_attr(FINALIZING_ATTR, mine)
    return "claimed"


def _open_parent(p: Prepared, opts: RunOptions, study: optuna.Study, lock: StudyLock) -> tuple:
    """Under the lock: adopt the parent of a dead process, join a live one's, or start one.
    Returns (tracker, what happened: "new" | "adopted" | "joined" | "finalized")."""
    tracker = tracker_for(p, p.tracking_uri)
    with lock:
        announce(study, p.spec.search.n_trials, p.tracking_uri)
        previous = study.user_attrs.get(PARENT_ATTR)
        run = _get_run(tracker, previous)
        done = study.user_attrs.get(FINALIZED_ATTR) == previous
        # The study, not the run's status, says whether the run is done: a finalize cut
        # short after its run was ended is adopted and completed.
        if run is not None and (run.info.status != "FINISHED" or not done):
            owner = _owner(run)
            if owner and owner != me() and is_alive(owner) is not False:
                tracker.attach_parent(previous)
                return tracker, "joined"
            tracker.adopt_parent(previous)
            return tracker, "adopted"
        if run is not None and count_claimed(study) >= p.spec.search.n_trials:
            tracker.attach_parent(previous)
            return tracker, "finalized"
        tracker.start_parent(f"{p.spec.name}-search", parent_tags(p))
        study.set_user_attr(PARENT_ATTR, tracker.parent_id)
    if run is not None and (moved := experiment_mismatch(run, tracker, study=p.study_name)):
        opts.console.print(f"[yellow]{escape(moved)}[/]", soft_wrap=True)
    return tracker, "new"


def experiment_mismatch(earlier: Run, tracker: Tracker, *, study: str) -> str | None:
    """The warning when a resumed study's new parent run is filed in another experiment than
    its earlier one (``mlflow run`` without ``--experiment-name`` files it under Default),
    naming both experiments; None when they are the same.

    Args:
        earlier: the study's previous parent run.
        tracker: the tracker holding the new parent run (and its experiment).
        study: the study's name, for the message.
    """
    if earlier.info.experiment_id == tracker.experiment_id:
        return None
    before = tracker.client.get_experiment(earlier.info.experiment_id).name
    now = tracker.client.get_experiment(tracker.experiment_id).name
    return (
        f"warning: study {study} continues in experiment '{now}' (run {tracker.parent_id}), "
        f"but its earlier runs are in experiment '{before}' (run {earlier.info.run_id}): its "
        "trials and registered versions now point to runs in both. Keep one experiment: "
        f"`mlflow run ... --experiment-name {before}`"
    )


def _get_run(tracker: Tracker, run_id: str | None):
    if not run_id:
        return None
    try:
        return tracker.client.get_run(run_id)
    except Exception:  # deleted, or from another tracking store
        return None


def start_tracking(p: Prepared, opts: RunOptions, study: optuna.Study) -> Tracker:
    """The parent run of ``audioml run`` (new, adopted or joined), its inputs logged once."""
    return open_run(p, opts, study)[0]


def open_run(p: Prepared, opts: RunOptions, study: optuna.Study) -> tuple[Tracker, str]:
    """``start_tracking``, also saying how: "new", "adopted", "joined" or "finalized"."""
    tracker, how = _open_parent(p, opts, study, StudyLock(p.storage, p.study_name))
    name, parent = p.study_name, tracker.parent_id
    if how in ("new", "adopted"):
        pause_point("parent")
        # Whoever first holds the parent logs its lineage: a parent whose process died
        # before it did gets it from the process that adopts it.
        log_lineage(tracker, p, opts)
    if how == "new":
        opts.console.print(f"study [bold]{name}[/]: up to {p.spec.search.n_trials} trials")
    elif how == "adopted":
        opts.console.print(f"resuming study [bold]{name}[/] under run {parent}")
    elif how == "joined":
        owner = _owner(tracker.client.get_run(parent)) or {}
        opts.console.print(
            f"study [bold]{name}[/] is being run by {describe(owner)} (run {parent}); "
            "this process joins it as one more worker"
        )
    return tracker, how


def run_experiment(spec: ExperimentSpec, opts: RunOptions, *, base: Path | None = None) -> dict:
    """``audioml run``: the whole job; returns a summary (study, parent run, best trial,
    test metrics, version, and this process's ``timing`` in seconds).

    The parent run gets the same timings as metrics, ``time_prepare_s`` (spec to feature
    table and folds), ``time_search_s`` (the trials) and ``time_final_s`` (refit, test,
    logging, registry), so a user sees where the wall time went.
    """
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 3)

    p = prepare(spec, opts, base=base)
    timing = {"time_prepare_s": lap()}
    study = open_spec_study(p)
    tracker, how = open_run(p, opts, study)
    session = Session(p, study, tracker, opts.console)
    summary = {"study": p.study_name, "parent_run_id": tracker.parent_id}
    if how == "finalized":
        opts.console.print(
            f"study {p.study_name} is finalized (run {tracker.parent_id}); nothing to do. "
            "Raise search.n_trials to search further"
        )
        return summary
    session.recover()
    lap()  # opening the study and the run belongs to neither stage
    try:
        completed = session.search(spec.search.n_trials)
    except BaseException as exc:
        if how != "joined":
            # KILLED is a person's interrupt; an error of the search itself is a failure.
            tracker.end_parent("FAILED" if isinstance(exc, Exception) else "KILLED")
        raise
    timing["time_search_s"] = lap()
    own = how != "joined"  # a joining worker's times are its own, not the run's
    if own:
        tracker.log_metrics(timing)
    if not completed:
        if how != "joined":
            tracker.end_parent("KILLED")
        opts.console.print(f"interrupted: rerun the same command to resume study {p.study_name}")
        return {**summary, "interrupted": True, "timing": timing}
    result = session.finalize()
    timing["time_final_s"] = lap()
    if own and result.get("finalized_here"):
        tracker.log_metrics({"time_final_s": timing["time_final_s"]})
    return {**result, "timing": timing}
