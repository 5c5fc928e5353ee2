"""The Optuna study: sampler, pruner, storage, and the objective (no MLflow calls here).

Each trial suggests a model family first (``model``), then that family's hyperparameters
under family-prefixed names (``random_forest.max_depth``) and, when searched, which extractor
groups to keep (``features.mfcc``). It is scored by k-fold CV on the training split only;
per-fold scores feed the pruner. Any Exception while sampling, fitting or scoring fails that
trial with its type, message and traceback, and the study goes on; a family that fails
:data:`FAIL_STREAK` trials in a row is dropped, and so is one dominated by cost
(``search.drop_dominated``, :mod:`runner.search.dominance`): its later draws are skipped (not
counted). KeyboardInterrupt and SystemExit are not Exceptions and stop the study.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from runner import attrs as keys
from runner.config.samplers import get_pruner, get_sampler
from runner.config.spec import ExperimentSpec
from runner.data.splits import Split
from runner.errors import TrialFailed, TrialSkipped
from runner.faults import pause_point
from runner.models import MODELS, ColumnRoles, InputKind, Inputs, Rows, get_family, resolve_space
from runner.search.dominance import dominated_families, drops_dominated
from runner.search.evaluation import CvResult, cross_validate
from runner.search.fold_gate import OutOfTime
from runner.search.fold_models import keeps_folds, worth_keeping
from runner.search.fold_procs import FoldProcesses
from runner.search.horizon import HorizonPruner
from runner.search.live_families import LiveFamilies
from runner.search.plan import ResourcePlan, available_cores, plan_resources
from runner.search.study import FINISHED, counted

__all__ = [
    "Objective",
    "SearchData",
    "TrialRecord",
    "TrialSetup",
    "build_estimator",
    "decode_params",
    "dropped_families",
    "make_objective",
    "make_pruner",
    "make_sampler",
    "resource_plan",
]

FAIL_STREAK = 5


@dataclass
class SearchData:
    """The training split as the search sees it (the test split never enters).

    ``rows`` holds its audio features, metadata and (when cached) log-mel images, aligned.
    """

    rows: Rows
    y: np.ndarray
    clip_ids: np.ndarray
    feature_columns: list[str]
    groups: dict[str, list[str]]
    folds: list[Split]
    classes: list | None
    roles: ColumnRoles = field(default_factory=ColumnRoles)

    def inputs(self, kind: InputKind, columns: Sequence[str]) -> Inputs:
        return Inputs(kind, self.rows, list(columns), self.roles.restrict(columns))


@dataclass
class TrialSetup:
    """What a trial (or the refit) builds: family, its params, and the columns it uses."""

    family: str
    params: dict[str, Any]
    groups: list[str] | None = None
    members: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def columns(
        self, data_groups: Mapping[str, list[str]], all_columns: Sequence[str]
    ) -> list[str]:
        if self.groups is None:
            return list(all_columns)
        keep = {c for g in self.groups for c in data_groups[g]}
        return [c for c in all_columns if c in keep]


@dataclass
class TrialRecord:
    """One trial, as handed to the observers (tracking) when it starts and when it ends."""

    number: int
    setup: TrialSetup
    state: str  # running | complete | pruned | failed
    reason: str | None = None
    error: str | None = None  # the traceback of a failed trial
    error_type: str | None = None
    run_id: str | None = None  # its MLflow child run, once opened
    cv: CvResult | None = None
    seconds: float = 0.0  # wall time from the draw of its setup to its end: the one clock
    columns: list[str] = field(default_factory=list)
    kind: InputKind | None = None  # what the family reads (how importance permutes it)
    X_last: Any = None
    y_last: np.ndarray | None = None


def make_sampler(spec: ExperimentSpec) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded; among several families it never draws a dropped one
    (runner.search.live_families)."""
    sampler = _base_sampler(spec)
    if len(spec.search.models) < 2:
        return sampler  # a single family has none to take its place
    return LiveFamilies(
        sampler, spec.search.models, lambda study: dropped_families(study, spec=spec), spec.seed
    )


def _base_sampler(spec: ExperimentSpec) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded (``runner.config.samplers``; TPE is multivariate with grouping
    for the family space)."""
    return get_sampler(spec.search.sampler).make(spec)


def make_pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    """The spec's pruner (``runner.config.samplers``); steps are CV folds. With trials side by side
    it sees only the trials told before each trial began
    (:class:`runner.search.horizon.HorizonPruner`), so one seed prunes the same trials whatever
    order their fits end in."""
    kind = get_pruner(spec.search.pruner)
    pruner = kind.make(spec)
    window = resource_plan(spec).trials
    return HorizonPruner(pruner, window) if kind.horizon and window > 1 else pruner


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"unsupported distribution {dist!r}")


def decode_params(params: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> TrialSetup:
    """Turn a trial's flat params (``model``, ``family.param``, ``features.g``) into a setup."""
    family = params["model"]
    own = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"{family}.")}
    flags = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("features.")}
    groups = [g for g, keep in flags.items() if keep] if flags else None
    members = [(m, dict(p)) for m, p in json.loads((attrs or {}).get(keys.MEMBERS, "[]"))]
    return TrialSetup(family=family, params=own, groups=groups, members=members)


def build_estimator(
    setup: TrialSetup,
    spec: ExperimentSpec,
    metadata: ColumnRoles | None = None,
    *,
    threads: int | None = None,
) -> Any:
    """An unfitted estimator for ``setup`` (ensemble members injected from the setup).

    ``metadata`` holds the roles of the metadata columns the setup reads; ``threads`` those
    of the estimator (default: the spec's resource plan).
    """
    if threads is None:
        threads = resource_plan(spec).threads
    family = get_family(setup.family, spec.task)
    params = dict(setup.params)
    if family.ensemble is not None:
        params["members"] = setup.members
    return family.make(
        params, task=spec.task, seed=spec.seed, balanced=spec.data.balance == "class_weight",
        metadata=metadata, target_transform=spec.search.target_transform, threads=threads,
    )  # fmt: skip


def resource_plan(spec: ExperimentSpec) -> ResourcePlan:
    """The spec's split of the cores (see :mod:`runner.search.plan`)."""
    s = spec.search
    return plan_resources(s.n_jobs, s.parallel_trials, s.cv.folds)


def fits_in_threads(setup: TrialSetup) -> bool:
    """Whether estimators of ``setup`` (and of its members) may fit side by side."""
    return all(MODELS[f].thread_safe for f in [setup.family, *(m for m, _ in setup.members)])


def _ensemble_members(
    study: optuna.Study, accepts: Callable[[Any], bool], n: int
) -> list[tuple[str, dict[str, Any]]]:
    """The best completed trial of each family ``accepts``, best first, at most ``n``."""
    best: dict[str, optuna.trial.FrozenTrial] = {}
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        fam = t.params.get("model")
        if fam not in MODELS or not accepts(MODELS[fam]):
            continue
        if fam not in best or sign * t.value > sign * best[fam].value:
            best[fam] = t
    ranked = sorted(best.values(), key=lambda t: -sign * t.value)[:n]
    return [(t.params["model"], decode_params(t.params).params) for t in ranked]


def _sample_setup(trial: optuna.Trial, spec: ExperimentSpec, data: SearchData) -> TrialSetup:
    family_name = trial.suggest_categorical("model", list(spec.search.models))
    family = get_family(family_name, spec.task)
    space = resolve_space(family, spec.task, spec.search.spaces.get(family_name))
    params = {name: _suggest(trial, f"{family_name}.{name}", d) for name, d in space.items()}
    selected = None
    # Only the groups the family reads are switched (beside an image: the metadata).
    switchable = family.input.selectable_groups(data.groups, data.roles)
    if spec.search.feature_groups and switchable:
        selected = [
            g for g in switchable if trial.suggest_categorical(f"features.{g}", [True, False])
        ]
        if not selected and not family.input.fits_without_groups():
            raise TrialFailed("every feature group was dropped; nothing left to fit on")
    setup = TrialSetup(family=family_name, params=params, groups=selected)
    ensemble = family.ensemble
    if ensemble is not None:
        setup.members = _ensemble_members(trial.study, ensemble.accepts, ensemble.size(params))
        trial.set_user_attr(keys.MEMBERS, json.dumps(setup.members))
        if len(setup.members) < ensemble.min_members:
            raise TrialFailed(
                f"{family_name} needs completed trials of at least {ensemble.min_members} "
                "other families"
            )
    return setup


def _evaluate(
    trial: optuna.Trial,
    record: TrialRecord,
    spec: ExperimentSpec,
    data: SearchData,
    plan: ResourcePlan,
    deadline: float | None = None,
    pool: ThreadPoolExecutor | None = None,
    fitter: Callable[..., tuple] | None = None,
) -> float:
    """Cross-validate ``record.setup``, reporting each fold to the pruner; fills ``record``.
    Against ``deadline`` (``time.monotonic()``) a trial goes on only while it will end within
    one fold of it (:mod:`runner.search.fold_gate`), else it stops, pruned, with the folds under
    way: the time budget holds to within one fold, not one trial."""
    metric = spec.search.metric
    family = MODELS[record.setup.family]
    inputs = data.inputs(family.input, record.columns)
    jobs = plan.folds if fits_in_threads(record.setup) else 1

    def on_fold(k: int, scores: dict[str, float]) -> None:
        pause_point("fold")
        trial.report(scores[metric], step=k)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {k}")

    try:
        record.cv = cross_validate(
            lambda: build_estimator(record.setup, spec, inputs.roles, threads=plan.threads),
            inputs, data.y, data.clip_ids, data.folds, task=spec.task, classes=data.classes,
            aggregate=spec.segments.aggregate, on_fold=on_fold, jobs=jobs,
            threads=plan.threads, deadline=deadline, pool=pool, fitter=fitter,
            keep_models=keeps_folds(spec),
        )  # fmt: skip
    except OutOfTime as exc:
        raise optuna.TrialPruned(f"stopped at the time budget after fold {exc.done - 1}") from None
    value = record.cv.mean()[metric]
    if not np.isfinite(value):
        raise TrialFailed(f"{metric} is undefined on these folds")
    if record.cv.fold_models and not worth_keeping(trial.study, value):
        record.cv.fold_models = []  # bagged fold models are logged for the best trials only
    if record.cv.last_rows is not None:
        # The last fold's held-out rows feed the trial's permutation importance.
        record.kind = family.input
        record.X_last = inputs.take(record.cv.last_rows)
        record.y_last = data.y[record.cv.last_rows]
    return value


def dropped_families(
    study: optuna.Study, streak: int = FAIL_STREAK, *, spec: ExperimentSpec | None = None
) -> dict[str, str]:
    """Families whose last ``streak`` trials (that ended by themselves) all failed, with the
    last reason; with ``spec`` and its ``search.drop_dominated``, also those dominated by
    cost (:mod:`runner.search.dominance`, reasons starting "dominated by"). From the storage, so
    every worker and every rerun agrees."""
    finished = [t for t in counted(study.get_trials(deepcopy=False)) if t.state in FINISHED]
    by_family: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in sorted(finished, key=lambda t: t.number):
        by_family.setdefault(t.params.get("model", "?"), []).append(t)
    dropped = {
        fam: keys.fail_reason(trials[-1])
        for fam, trials in by_family.items()
        if len(trials) >= streak and all(t.state == TrialState.FAIL for t in trials[-streak:])
    }
    if spec is not None and drops_dominated(spec):
        dropped |= dominated_families(study, spec.search.models, exclude=dropped)
    return dropped


def _fold_processes(setting: str, plan: ResourcePlan) -> bool:
    """Whether folds side by side fit in worker processes: from four slots on a machine with
    four cores or more, where threads of one process stall on the interpreter's lock
    (``runner.search.fold_procs``); never on fewer real cores, where start-up would cost more."""
    if setting != "auto":
        return setting == "processes"
    return min(plan.slots, available_cores()) >= 4


class Objective:
    """The objective: sample a setup, cross-validate it, report folds, notify the observers
    (``on_start`` once the setup is drawn, before any fitting; ``observer`` at the end).
    A trial that will not end within one fold of ``deadline`` (``time.monotonic()``) stops.

    ``objective(trial)`` does both steps; :meth:`draw` does the first and returns the
    second, so trials run side by side can be drawn in trial order (:mod:`runner.search.trials`).
    With several trials at a time their folds share one pool of ``plan.slots`` threads.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        data: SearchData,
        observer: Callable[[TrialRecord], None] | None = None,
        *,
        on_start: Callable[[optuna.Trial, TrialRecord], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.spec, self.data, self.observer = spec, data, observer
        self.on_start, self.deadline = on_start, deadline
        self.plan = resource_plan(spec)
        self.pool: ThreadPoolExecutor | None = None
        self.procs: FoldProcesses | None = None
        if self.plan.trials > 1 and self.plan.slots > 1:
            self.pool = ThreadPoolExecutor(self.plan.slots, thread_name_prefix="audioml-fold")
            weakref.finalize(self, self.pool.shutdown, wait=False, cancel_futures=True)
            if _fold_processes(spec.search.fold_workers, self.plan):
                self.procs = FoldProcesses(data.rows, data.y, self.plan.slots)
                weakref.finalize(self, self.procs.close)

    def __call__(self, trial: optuna.Trial) -> float:
        return self.draw(trial)()

    def draw(self, trial: optuna.Trial) -> Callable[[], float]:
        """Draw ``trial``'s setup now; returns the cross-validation still to run."""
        record = TrialRecord(number=trial.number, setup=TrialSetup("?", {}), state="running")
        started = time.monotonic()
        with self._ending(trial, record, started, last=False):
            record.setup = _sample_setup(trial, self.spec, self.data)
            if record.setup.family in dropped_families(trial.study, spec=self.spec):
                record.state = "skipped"
                raise TrialSkipped(f"family {record.setup.family} was dropped")
            record.columns = record.setup.columns(self.data.groups, self.data.feature_columns)
            if self.on_start is not None:
                self.on_start(trial, record)

        def fit() -> float:
            with self._ending(trial, record, started, last=True):
                fitter = self.procs.fit if self.procs is not None else None
                value = _evaluate(
                    trial, record, self.spec, self.data, self.plan, self.deadline, self.pool,
                    fitter,
                )  # fmt: skip
                record.state = "complete"
                return value
            raise AssertionError("unreachable")  # _ending re-raises every error

        return fit

    @contextlib.contextmanager
    def _ending(
        self, trial: optuna.Trial, record: TrialRecord, started: float, *, last: bool
    ) -> Iterator[None]:
        """Turn an error into the trial's outcome; at the trial's end (``last``, or an error
        before it) stamp its seconds and notify the observer."""
        try:
            yield
        except TrialSkipped:
            raise
        except optuna.TrialPruned as exc:
            record.state, record.reason = "pruned", str(exc)
            last = True
            raise
        except Exception as exc:
            # TrialFailed (a degenerate fold) or anything a family raises: LightGBMError,
            # MemoryError, a TypeError from a bug. The trial fails; the study goes on.
            last = True
            reason = str(exc) if isinstance(exc, TrialFailed) else f"{type(exc).__name__}: {exc}"
            record.state, record.reason = "failed", reason
            record.error = traceback.format_exc()
            record.error_type = type(exc.__cause__ or exc).__name__
            trial.set_user_attr(keys.FAIL_REASON, reason[:1000])
            if isinstance(exc, TrialFailed):
                raise
            raise TrialFailed(reason) from exc
        except BaseException:
            last = True
            raise
        finally:
            if last:
                self._finish(trial, record, started)

    def _finish(self, trial: optuna.Trial, record: TrialRecord, started: float) -> None:
        # The live line and the leaderboard both read this clock; Optuna's own duration
        # also counts the claim, the tracking and the wait for the storage.
        record.seconds = time.monotonic() - started
        if record.state == "skipped":
            return
        # A trial another process already ended (reaped) must not mask this outcome.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            trial.set_user_attr(keys.SECONDS, round(record.seconds, 3))
        if self.observer is not None:
            if record.state == "running":  # KeyboardInterrupt or SystemExit mid-trial
                record.state, record.reason = "failed", "interrupted"
            self.observer(record)


def make_objective(
    spec: ExperimentSpec,
    data: SearchData,
    observer: Callable[[TrialRecord], None] | None = None,
    *,
    on_start: Callable[[optuna.Trial, TrialRecord], None] | None = None,
    deadline: float | None = None,
) -> Objective:
    """The spec's :class:`Objective`."""
    return Objective(spec, data, observer, on_start=on_start, deadline=deadline)


def trials_frame(study: optuna.Study, metric: str) -> pd.DataFrame:
    """A leaderboard of finished trials: number, family, state, value, duration."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        rows.append(
            {
                "trial": t.number,
                "model": t.params.get("model", "?"),
                "state": t.state.name.lower(),
                metric: t.value,
                "seconds": keys.seconds(t),
                "reason": keys.fail_reason(t),
            }
        )
    return pd.DataFrame(rows)
