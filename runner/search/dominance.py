"""Families dominated by cost: stop spending the budget on a family another one beats for less.

A family is *dominated* once every condition holds, read from the told trials (complete,
pruned or failed by their own error; never running ones), replayed in trial-number order:

* it and another live family each have at least :data:`MIN_TRIALS` told trials;
* the other family has a strictly better best CV score (a family without a complete trial
  has none) and a strictly lower median trial cost (the trial attribute ``seconds``);
* its own cumulative trial seconds exceed its even share (1 / the number of families) of
  all told trials' seconds;
* it is not the family of the best trial so far.

The replay makes the decision sticky: a family dominated after some told trial stays
dropped, though its share of the time falls as others go on; only a trial of its own drawn
before the drop and told after it, that becomes the best trial, brings it back. Every
process reading one storage draws the same line. The strict order of dominance always
leaves a live family.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from runner import attrs
from runner.config.spec import ExperimentSpec
from runner.search.study import FINISHED, counted

__all__ = ["DOMINATED", "MIN_TRIALS", "dominated_families", "drops_dominated"]

#: Told trials each of two families needs before one can dominate the other.
MIN_TRIALS = 3
#: How a dominated family's reason starts (the session words its warning by it).
DOMINATED = "dominated by"


def drops_dominated(spec: ExperimentSpec) -> bool:
    """``search.drop_dominated``; unset, on exactly when ``search.timeout_s`` is set."""
    flag = spec.search.drop_dominated
    return spec.search.timeout_s is not None if flag is None else flag


@dataclass
class _Family:
    """What the told trials of one family show so far."""

    best: float = float("-inf")  # signed: larger is better
    seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


def _beats(a: _Family, b: _Family) -> bool:
    return a.best > b.best and a.median_s < b.median_s


def _check(
    seen: dict[str, _Family], live: Collection[str], best_family: str | None, share: float,
    sign: float,
) -> dict[str, str]:  # fmt: skip
    """The families of ``seen`` dominated at this point of the replay, with the reason."""
    ready = {f: s for f, s in seen.items() if f in live and len(s.seconds) >= MIN_TRIALS}
    total = sum(sum(s.seconds) for s in seen.values())
    out = {}
    for fam, own in sorted(ready.items()):
        spent = sum(own.seconds)
        if fam == best_family or spent <= share * total:
            continue
        winner = next((g for g, s in sorted(ready.items()) if g != fam and _beats(s, own)), None)
        if winner is None:
            continue
        other = ready[winner]
        out[fam] = (
            f"{DOMINATED} {winner} (best CV {sign * other.best:.4g} vs "
            f"{'none' if own.best == float('-inf') else f'{sign * own.best:.4g}'}, median trial "
            f"{other.median_s:.2f} s vs {own.median_s:.2f} s) after taking {spent:.1f} s of "
            f"{total:.1f} s"
        )
    return out


def dominated_families(
    study: optuna.Study, families: Iterable[str], *, exclude: Collection[str] = ()
) -> dict[str, str]:
    """The families of ``families`` dominated by cost (module docstring), with the reason.

    Args:
        study: the study; only its told trials are read.
        families: the spec's families (their count sets the even share of the time).
        exclude: families already dropped otherwise: they neither dominate nor are dropped.
    """
    names = list(families)
    live = [f for f in names if f not in exclude]
    share = 1.0 / max(len(names), 1)
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    told = [t for t in counted(study.get_trials(deepcopy=False)) if t.state in FINISHED]
    seen: dict[str, _Family] = {}
    best: tuple[float, str] | None = None
    dropped: dict[str, str] = {}
    for t in sorted(told, key=lambda t: t.number):
        fam = t.params.get("model")
        if fam not in names:
            continue
        entry = seen.setdefault(fam, _Family())
        entry.seconds.append(_seconds(t))
        if t.state == TrialState.COMPLETE and t.value is not None:
            entry.best = max(entry.best, sign * t.value)
            if best is None or sign * t.value > best[0]:
                best = (sign * t.value, fam)
        still = [f for f in live if f not in dropped]
        for fam_out, why in _check(seen, still, best and best[1], share, sign).items():
            if len(still) > 1:  # never the last live family
                dropped[fam_out] = why
                still.remove(fam_out)
    if best is not None:  # one of its trials drawn before the drop and told after it led
        dropped.pop(best[1], None)
    return dropped


def _seconds(t: FrozenTrial) -> float:
    # Optuna's duration when the objective never stamped it (e.g. a reaped trial).
    return attrs.seconds(t) or 0.0
