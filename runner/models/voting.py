"""The ``voting`` family: a soft-voting ensemble of the best trials of other families.

The search injects ``params["members"] = [(family, member_params), ...]``, best first; the
family's own space only chooses how many of them vote (``n_members``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution, IntDistribution

from runner.errors import format_error
from runner.models._base import BOTH, check_params
from runner.models._registry import MODELS, Ensemble, ModelFamily, register_family

__all__ = ["VOTING", "voting_members"]


def voting_space(task: str) -> dict[str, BaseDistribution]:
    """How many of the injected members vote (the best ``n_members``)."""
    return {"n_members": IntDistribution(2, 4)}


def _member_family(family: ModelFamily) -> bool:
    return family.stackable


def _n_members(params: Mapping[str, Any]) -> int:
    return int(params.get("n_members", 3))


def voting_members(
    members: Sequence[Sequence[Any]], *, task: str, seed: int, balanced: bool = False
) -> list[tuple[str, Any]]:
    """Build ``(name, estimator)`` pairs for the ensemble from ``(family, params)`` pairs.

    Raises:
        ValueError: no members, or a member that is unknown, not a table family, voting
            itself, or does not support ``task``.
    """
    if not members:
        must = "a non-empty list of (family, params) pairs"
        raise ValueError(format_error("voting params.members", members, must=must))
    estimators = []
    for index, (name, member_params) in enumerate(members):
        family = MODELS.get(name)
        if family is None or not _member_family(family):
            usable = sorted(n for n, f in MODELS.items() if _member_family(f))
            what = "table families"
            key = f"voting params.members[{index}]"
            raise ValueError(format_error(key, name, one_of=usable, what=what))
        estimator = family.make(member_params, task=task, seed=seed, balanced=balanced)
        # Index first: the same family may vote twice with different parameters.
        estimators.append((f"{index}_{name}", estimator))
    return estimators


def build_voting(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Any:
    """Soft vote (mean probability) or mean prediction of the best ``n_members`` members."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    p = check_params("voting", params, voting_space, extra=("members",))
    members = list(p.get("members") or [])
    n_members = int(p.get("n_members", len(members)))
    estimators = voting_members(members[:n_members], task=task, seed=seed, balanced=balanced)
    if task == "classification":
        return VotingClassifier(estimators, voting="soft", n_jobs=1)
    return VotingRegressor(estimators, n_jobs=1)


VOTING = register_family(
    ModelFamily(
        name="voting",
        tasks=BOTH,
        space=voting_space,
        build=build_voting,
        ensemble=Ensemble(accepts=_member_family, size=_n_members),
    )
)
