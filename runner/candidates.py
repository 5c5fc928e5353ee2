"""What the final step refits: the best trial, or the ensemble selected from the complete
trials' out-of-fold predictions when its CV score beats the best trial's.

Both are a :class:`FinalModel`: an unfitted estimator, the columns it reads, what the served
model needs. The ensemble's members are the trials' own setups (family, parameters, feature
groups), refit on the whole training split together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from runner.ensemble import POOL, Oof, Selection, ensemble_cv, select_ensemble
from runner.errors import RunnerError
from runner.models import MODELS, TABLE, InputKind
from runner.search import build_estimator, decode_params, fits_in_threads, resource_plan

__all__ = ["FinalModel", "best_trial", "choose_final"]

ENSEMBLE = "ensemble"


@dataclass
class FinalModel:
    """The estimator the final step fits, tests and registers."""

    name: str  # the family, or "ensemble"
    params: dict[str, Any]
    kind: InputKind
    requirements: tuple[str, ...]
    columns: list[str]
    estimator: Any
    cv_value: float
    trial: int  # the best trial (the ensemble's strongest member)
    members: dict[str, float] = field(default_factory=dict)


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
        cv_value=float(trial.value), trial=trial.number,
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
    from runner.session import RUN_ATTR

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


def _ensemble(p: Any, selection: Selection, trials: dict, threads: int) -> FinalModel:
    from runner.models._weighted_ensemble import EnsembleMember, WeightedEnsemble

    ranked = _ranked(selection)
    setups = [decode_params(trials[n].params, trials[n].user_attrs) for n, _ in ranked]
    # Members fit side by side, the cores split between them (one fit each on 2 cores).
    jobs = min(len(ranked), threads) if all(fits_in_threads(s) for s in setups) else 1
    each = max(1, threads // jobs)
    members, weights, keep = [], [], set()
    for number, weight in ranked:
        _, columns, roles, estimator = _built(p, trials[number], each)
        label = _label(trials[number])
        members.append(EnsembleMember(estimator, columns, frame=bool(roles), label=label))
        weights.append(weight)
        keep.update(columns)
    union = [c for c in p.dataset.feature_columns if c in keep]
    requirements = _requirements([trials[n].params["model"] for n in selection.counts])
    return FinalModel(
        name=ENSEMBLE,
        params={"members": [m.label for m in members], "weights": weights},
        kind=TABLE, requirements=requirements, columns=union,
        estimator=WeightedEnsemble(members, weights, union, p.spec.task, jobs, each),
        cv_value=selection.score, trial=max(selection.counts, key=selection.counts.get),
        members=_labels(selection, trials),
    )  # fmt: skip


def _log_selection(
    p: Any, tracker: Any, selection: Selection, trials: dict, oof: tuple, chosen: bool
) -> None:
    """The ensemble's child run, with the trials' CV metrics from its out-of-fold values."""
    from runner.session import RUN_ATTR

    oofs, truth, folds, ids = oof
    cv = ensemble_cv(oofs, selection, truth, folds, ids, task=p.spec.task, classes=p.data.classes)
    ranked = _ranked(selection)
    runs = [trials[n].user_attrs.get(RUN_ATTR) for n, _ in ranked]
    tracker.log_ensemble(
        _labels(selection, trials), selection.history, selection.score, chosen,
        cv=cv, trials=dict(ranked), member_runs=[r for r in runs if r],
    )  # fmt: skip


def choose_final(p: Any, study: optuna.Study, tracker: Any, console: Any) -> FinalModel:
    """The best trial, or the selected ensemble when it has two members or more and a
    better CV score; the selection is logged as a child run either way."""
    spec = p.spec
    threads = resource_plan(spec).cores  # the refit is one fit: every core is its own
    best = best_trial(study)
    sign = 1.0 if spec.greater_is_better else -1.0
    trials = _candidates(study, sign) if spec.search.ensemble else []
    if len(trials) < 2:
        return _single(p, best, threads)
    oofs, truth, folds, ids = _oofs(p, trials, tracker)
    selection = select_ensemble(
        oofs, truth, folds, task=spec.task, metric=spec.search.metric, classes=p.data.classes
    )
    if selection is None:
        return _single(p, best, threads)
    by_number = {t.number: t for t in trials}
    wins = selection.size >= 2 and sign * selection.score > sign * best.value
    _log_selection(p, tracker, selection, by_number, (oofs, truth, folds, ids), wins)
    metric = spec.search.metric
    if not wins:
        console.print(
            f"ensemble selection kept trial {best.number} alone (cv {metric}={best.value:.4f})"
        )
        return _single(p, best, threads)
    final = _ensemble(p, selection, by_number, threads)
    shown = ", ".join(f"{m} x{w:.2f}" for m, w in final.members.items())
    console.print(
        f"ensemble of {selection.size} trials: cv {metric}={selection.score:.4f} "
        f"(best trial {best.value:.4f}): {shown}"
    )
    return final
