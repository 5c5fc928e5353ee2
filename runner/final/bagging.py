"""The bagged form of the final model: the fold models a trial's CV fitted, kept and averaged,
instead of one refit on the whole training split.

Which trials keep their fold models (``folds.pkl`` beside ``oof.npz``) is decided while the
search runs, by ``runner.search.fold_models``.

Which form the final step serves, per candidate (``final.form``):

* ``refit``: fit it once more on the whole training split (the form before bagging existed);
* ``bagged``: average its members' fold models (refit when a member kept none);
* ``auto``: bagged when the refit is estimated not to fit in what is left of
  ``search.timeout_s``, counted from the study's first trial; otherwise refit. The estimate
  is each member's mean fold fit time scaled by ``k / (k - 1)`` (the refit sees all k folds'
  rows), summed over the members.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

__all__ = [
    "FormChoice",
    "apply_form",
    "choose_form",
    "refit_estimate",
]

BAGGED, REFIT = "bagged", "refit"


def refit_estimate(fold_fit_s: Sequence[float]) -> float:
    """Seconds one refit on all k folds' rows is expected to take: the mean fold fit time
    scaled by ``k / (k - 1)`` (fits grow about linearly in rows on these table sizes)."""
    k = len(fold_fit_s)
    if k == 0:
        return float("nan")
    return float(np.mean(fold_fit_s)) * (k / (k - 1) if k > 1 else 1.0)


def time_left(study: optuna.Study, timeout_s: float | None) -> float:
    """What is left of ``timeout_s`` since the study's first trial started (inf: no budget)."""
    if timeout_s is None:
        return float("inf")
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    if not starts:
        return float(timeout_s)
    spent = time.time() - min(starts).timestamp()
    return float(timeout_s) - spent


@dataclass(frozen=True)
class FormChoice:
    """The form the final step serves, and why (the console line and the run tag)."""

    form: str
    reason: str


def choose_form(
    form: str, *, folds_kept: bool, estimate_s: float, left_s: float, missing: str = ""
) -> FormChoice:
    """Apply the ``final.form`` rule (module docstring) to one candidate.

    Args:
        form: ``final.form``: ``auto``, ``refit`` or ``bagged``.
        folds_kept: whether every member of the candidate has its fold models.
        estimate_s: the candidate's estimated refit seconds.
        left_s: what is left of ``search.timeout_s`` (inf without one).
        missing: the first member without fold models, for the reason.
    """
    if form == REFIT:
        return FormChoice(REFIT, "final.form is refit")
    if not folds_kept:
        why = f"no fold models kept for {missing}" if missing else "no fold models kept"
        return FormChoice(REFIT, f"{why} (final.form {form})")
    if form == BAGGED:
        return FormChoice(BAGGED, "final.form is bagged")
    if estimate_s > left_s:
        return FormChoice(
            BAGGED, f"refit estimated {estimate_s:.1f} s, {max(left_s, 0.0):.1f} s left of "
            "search.timeout_s",
        )  # fmt: skip
    return FormChoice(REFIT, f"refit estimated {estimate_s:.1f} s fits in {left_s:.1f} s left")


def bagged_estimator(models: Sequence[Any], task: str, classes: Sequence | None) -> Any:
    """A fitted :class:`runner.models._bagged.BaggedModel` of one trial's fold models."""
    from runner.models import BaggedModel

    return BaggedModel(models, task, classes).fit(None)


def apply_form(p: Any, final: Any, study: optuna.Study, tracker: Any) -> None:
    """Serve ``final`` (a :class:`runner.final.candidates.FinalModel`) refit or bagged by the
    ``final.form`` rule; sets its ``form`` and ``form_reason``. Only the chosen candidate's
    fold models are loaded, and only when a bagged form can be chosen."""
    from runner.attrs import RUN as RUN_ATTR

    spec, kept = p.spec, {}
    if spec.final.form != REFIT:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in final.member_trials:
            run_id = by_number[n].user_attrs.get(RUN_ATTR)
            kept[n] = tracker.load_folds(run_id) if run_id else None
    missing = next((n for n in final.member_trials if not kept.get(n)), None)
    estimate = float("nan")
    if missing is None:
        estimate = sum(refit_estimate(kept[n]["fit_s"]) for n in final.member_trials)
    choice = choose_form(
        spec.final.form, folds_kept=missing is None, estimate_s=estimate,
        left_s=time_left(study, spec.search.timeout_s), missing=f"trial {missing}",
    )  # fmt: skip
    final.form, final.form_reason = choice.form, choice.reason
    if choice.form == BAGGED:
        classes = p.data.classes
        final.bag([bagged_estimator(kept[n]["models"], spec.task, classes) for n in kept])
