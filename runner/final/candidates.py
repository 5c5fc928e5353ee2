"""What the final step serves: the best trial, the ensemble selected from the complete
trials' out-of-fold predictions, or a stacker trained on them (runner.final.stacking), whichever
scores best by CV (``final.candidate`` may name one instead).

Each is a :class:`FinalModel`: an estimator, the columns it reads, what the served model
needs. The members are the trials' own setups (family, parameters, feature groups), refit on
the whole training split together, or bagged: their CV fold models averaged (runner.final.bagging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from runner.errors import RunnerError
from runner.final.bagging import REFIT, apply_form
from runner.final.ensemble import POOL, Oof, Selection, ensemble_cv, select_ensemble
from runner.final.stacking import passthrough_columns, stack_oofs
from runner.models import MODELS, TABLE, InputKind
from runner.search.objective import build_estimator, decode_params, fits_in_threads, resource_plan

__all__ = ["FinalModel", "best_trial", "choose_final"]

ENSEMBLE, STACK, TRIAL = "ensemble", "stack", "trial"


@dataclass
class FinalModel:
    """The estimator the final step fits, tests and registers."""

    name: str  # the family, "ensemble" or "stack"
    params: dict[str, Any]
    kind: InputKind
    requirements: tuple[str, ...]
    columns: list[str]
    estimator: Any
    cv_value: float
    trial: int  # the best trial (the ensemble's strongest member)
    members: dict[str, float] = field(default_factory=dict)
    member_trials: list[int] = field(default_factory=list)  # in the estimator's member order
    form: str = REFIT  # refit | bagged (runner.final.bagging)
    form_reason: str = ""

    def bag(self, estimators: list[Any]) -> None:
        """Serve the bagged form: each member's estimator (in ``member_trials`` order), or
        the single trial's, becomes its fitted fold models' average."""
        if self.name in (ENSEMBLE, STACK):
            for member, estimator in zip(self.estimator.members, estimators, strict=True):
                member.estimator = estimator
        else:
            (self.estimator,) = estimators


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise RunnerError(
            f"study {study.study_name}: no trial completed, so there is no model to refit; "
            "see the failed trials' reasons above"
        ) from None


def _requirements(families: list[str]) -> tuple[str, ...]:
    """The pip packages the logged model needs beyond the base ones, for these families."""
    return tuple(sorted({r for f in families for r in MODELS[f].requirements}))


def _built(p: Any, trial: optuna.trial.FrozenTrial, threads: int) -> tuple:
    """A trial's setup, its columns and their metadata roles, and its unfitted estimator."""
    ds, setup = p.dataset, decode_params(trial.params, trial.user_attrs)
    columns = setup.columns(ds.groups, ds.feature_columns)
    roles = ds.roles.restrict(columns)
    return setup, columns, roles, build_estimator(setup, p.spec, roles, threads=threads)


def _single(p: Any, trial: optuna.trial.FrozenTrial, threads: int) -> FinalModel:
    setup, columns, _, estimator = _built(p, trial, threads)
    requirements = _requirements([setup.family, *(m for m, _ in setup.members)])
    return FinalModel(
        name=setup.family, params=setup.params, kind=MODELS[setup.family].input,
        requirements=requirements, columns=columns, estimator=estimator,
        cv_value=float(trial.value), trial=trial.number, member_trials=[trial.number],
    )  # fmt: skip


def _candidates(study: optuna.Study, sign: float) -> list[optuna.trial.FrozenTrial]:
    """The best complete trials of families that can be ensemble members."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.params.get("model") in MODELS and MODELS[t.params["model"]].stackable
    ]
    return sorted(trials, key=lambda t: -sign * t.value)[:POOL]


def _oofs(p: Any, trials: list, tracker: Any) -> tuple[list[Oof], np.ndarray, np.ndarray, Any]:
    """The trials' logged out-of-fold predictions, aligned on the first one's clip order;
    also the clips' truth, folds and ids in that order."""
    from runner.attrs import RUN as RUN_ATTR

    out: list[Oof] = []
    ref_ids = folds = None
    for t in trials:
        run_id = t.user_attrs.get(RUN_ATTR)
        data = tracker.load_oof(run_id) if run_id else None
        if data is None:
            continue
        if ref_ids is None:
            ref_ids, folds = data["ids"], data["fold"]
        position = pd.Index(data["ids"]).get_indexer(ref_ids)
        if len(data["ids"]) != len(ref_ids) or (position < 0).any():
            continue  # another clip set (should not happen within one study)
        out.append(Oof(t.number, t.params["model"], float(t.value), data["values"][position]))
    if ref_ids is None:
        return out, np.asarray([]), np.asarray([]), np.asarray([])
    ids = pd.Series(p.data.clip_ids).astype(str)
    truth = pd.Series(p.data.y).groupby(ids.to_numpy(), sort=False).first()
    return out, truth.loc[ref_ids].to_numpy(), np.asarray(folds), np.asarray(ref_ids)


def _ranked(selection: Selection) -> list[tuple[int, float]]:
    """(trial number, weight) of each member, heaviest first."""
    return sorted(selection.weights.items(), key=lambda kv: -kv[1])


def _label(trial: optuna.trial.FrozenTrial) -> str:
    return f"trial-{trial.number}-{trial.params['model']}"  # its child run's name


def _labels(selection: Selection, trials: dict) -> dict[str, float]:
    """Each member's label with its weight, heaviest first."""
    return {_label(trials[n]): w for n, w in _ranked(selection)}


def _members(p: Any, numbers: list[int], trials: dict, threads: int) -> tuple:
    """The trials' unfitted members, the union of their columns, and how they fit: side by
    side (``jobs``), the cores split between them (``each``)."""
    from runner.models import EnsembleMember

    setups = [decode_params(trials[n].params, trials[n].user_attrs) for n in numbers]
    jobs = min(len(numbers), threads) if all(fits_in_threads(s) for s in setups) else 1
    each = max(1, threads // jobs)
    members, keep = [], set()
    for number in numbers:
        _, columns, roles, estimator = _built(p, trials[number], each)
        label = _label(trials[number])
        members.append(EnsembleMember(estimator, columns, frame=bool(roles), label=label))
        keep.update(columns)
    union = [c for c in p.dataset.feature_columns if c in keep]
    return members, union, jobs, each


def _ensemble(p: Any, selection: Selection, trials: dict, threads: int) -> FinalModel:
    from runner.models import WeightedEnsemble

    ranked = _ranked(selection)
    numbers = [n for n, _ in ranked]
    members, union, jobs, each = _members(p, numbers, trials, threads)
    weights = [w for _, w in ranked]
    requirements = _requirements([trials[n].params["model"] for n in selection.counts])
    return FinalModel(
        name=ENSEMBLE,
        params={"members": [m.label for m in members], "weights": weights},
        kind=TABLE, requirements=requirements, columns=union,
        estimator=WeightedEnsemble(members, weights, union, p.spec.task, jobs, each),
        cv_value=selection.score, trial=max(selection.counts, key=selection.counts.get),
        members=_labels(selection, trials), member_trials=numbers,
    )  # fmt: skip


def _log_selection(
    p: Any, tracker: Any, selection: Selection, trials: dict, oof: tuple, chosen: bool
) -> None:
    """The ensemble's child run, with the trials' CV metrics from its out-of-fold values."""
    from runner.attrs import RUN as RUN_ATTR

    oofs, truth, folds, ids = oof
    cv = ensemble_cv(oofs, selection, truth, folds, ids, task=p.spec.task, classes=p.data.classes)
    ranked = _ranked(selection)
    runs = [trials[n].user_attrs.get(RUN_ATTR) for n, _ in ranked]
    tracker.log_ensemble(
        _labels(selection, trials), selection.history, selection.score, chosen,
        cv=cv, trials=dict(ranked), member_runs=[r for r in runs if r],
    )  # fmt: skip


def _stacked(p: Any, stack: Any, trials: dict, threads: int) -> FinalModel:
    """The stacked candidate: the members refit (or bagged) and the stacker fitted on their
    out-of-fold predictions."""
    from runner.models import StackedModel

    numbers = [o.number for o in stack.members]
    members, union, jobs, each = _members(p, numbers, trials, threads)
    passed = passthrough_columns(p) if p.spec.final.stack_features else []
    keep = set(union) | set(passed)
    columns = [c for c in p.dataset.feature_columns if c in keep]
    estimator = StackedModel(
        members, columns, p.spec.task, stack.stacker, passed, p.data.classes, jobs, each
    )
    return FinalModel(
        name=STACK, params={"members": [m.label for m in members], "stacker": stack.kind,
                            "stack_features": bool(passed)},
        kind=TABLE, requirements=_requirements([trials[n].params["model"] for n in numbers]),
        columns=columns, estimator=estimator, cv_value=stack.value, trial=numbers[0],
        member_trials=numbers,
    )  # fmt: skip


def _pick(spec: Any, best: float, scores: dict[str, float]) -> str:
    """The candidate to serve: ``final.candidate`` when it was built, else the best by CV;
    ties keep the simpler one (trial, then ensemble, then stack)."""
    wanted = spec.final.candidate
    if wanted != "best_cv":
        return wanted if wanted in scores or wanted == TRIAL else TRIAL
    sign = 1.0 if spec.greater_is_better else -1.0
    pick, value = TRIAL, best
    for name in (ENSEMBLE, STACK):
        if name in scores and sign * scores[name] > sign * value:
            pick, value = name, scores[name]
    return pick


def choose_final(p: Any, study: optuna.Study, tracker: Any, console: Any) -> FinalModel:
    """The best of the best trial, the selected ensemble (two members or more) and the
    stacker by CV; the ensemble and the stacker are logged as child runs either way. The
    chosen one's form (refit or bagged) is decided last, and said."""
    spec, metric = p.spec, p.spec.search.metric
    threads = resource_plan(spec).cores  # the refit is one fit: every core is its own
    best = best_trial(study)
    sign = 1.0 if spec.greater_is_better else -1.0
    wanted = spec.search.ensemble or spec.final.stack
    trials = _candidates(study, sign) if wanted else []
    oof = _oofs(p, trials, tracker) if len(trials) >= 2 else ([],)
    oofs, scores = oof[0], {}
    selection = stack = None
    if spec.search.ensemble and oofs:
        selection = select_ensemble(
            oofs, oof[1], oof[2], task=spec.task, metric=metric, classes=p.data.classes
        )
        if selection is not None and selection.size >= 2:
            scores[ENSEMBLE] = selection.score
    if spec.final.stack and len(oofs) >= 2:
        stack = stack_oofs(p, oof)
        if stack is not None:
            scores[STACK] = stack.value
    pick = _pick(spec, float(best.value), scores)
    by_number = {t.number: t for t in trials}
    if selection is not None:
        _log_selection(p, tracker, selection, by_number, oof, pick == ENSEMBLE)
    if stack is not None:
        _log_stack(tracker, stack, by_number, pick == STACK)
    _say_candidates(console, metric, best, selection, stack, pick)
    if pick == ENSEMBLE:
        final = _ensemble(p, selection, by_number, threads)
    elif pick == STACK:
        final = _stacked(p, stack, by_number, threads)
    else:
        final = _single(p, best, threads)
    apply_form(p, final, study, tracker)
    console.print(f"final form: {final.form} ({final.form_reason})")
    return final


def _log_stack(tracker: Any, stack: Any, trials: dict, chosen: bool) -> None:
    from runner.attrs import RUN as RUN_ATTR

    labels = [_label(trials[o.number]) for o in stack.members]
    runs = [trials[o.number].user_attrs.get(RUN_ATTR) for o in stack.members]
    params = {"stack.members": ", ".join(labels), "stack.stacker": stack.kind}
    tracker.log_candidate(
        STACK, stack.cv, params=params, chosen=chosen, member_runs=[r for r in runs if r]
    )


def _say_candidates(
    console: Any, metric: str, best: Any, selection: Any, stack: Any, pick: str
) -> None:
    line = f"best trial {best.number}: cv {metric}={best.value:.4f}"
    if selection is not None and selection.size >= 2:
        line += f"; ensemble of {selection.size}: {selection.score:.4f}"
    elif selection is not None:
        line += "; ensemble selection kept it alone"
    if stack is not None:
        line += f"; {stack.kind} stack of {len(stack.members)}: {stack.value:.4f}"
    console.print(f"{line}; serving the {pick}")
