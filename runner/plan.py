"""The search's resource plan: how the cores are split between concurrent trials, the CV
folds of one trial fitted side by side, and each estimator's own threads.

Folds come before threads: a fold is a whole fit, so two folds on two cores keep both busy
for every family (a random forest's trees parallelise, an SVM or a logistic regression does
not), and the order of the trials, hence what a seeded sampler draws, does not change. Trials
in parallel are opt-in (``search.parallel_trials``): the sampler then sees results in the
order they finish, so a seed no longer fixes the trials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ResourcePlan", "available_cores", "plan_resources"]


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's quota)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ResourcePlan:
    """``trials`` concurrent trials x ``folds`` folds each x ``threads`` per estimator."""

    cores: int
    trials: int
    folds: int
    threads: int

    def describe(self) -> str:
        return (
            f"{self.cores} core(s): {self.trials} trial(s) at a time x {self.folds} fold(s) "
            f"in parallel x {self.threads} thread(s) per estimator"
        )

    def as_params(self) -> dict[str, int]:
        """What the parent run logs."""
        return {
            "plan_cores": self.cores,
            "plan_trials": self.trials,
            "plan_folds": self.folds,
            "plan_threads": self.threads,
        }


def plan_resources(n_jobs: int | str, parallel_trials: int, n_folds: int) -> ResourcePlan:
    """Split ``n_jobs`` cores (``"auto"``: every available one) without oversubscribing.

    Each concurrent trial gets an equal share; within a share, folds first (at most the
    number of folds), and the cores left over become estimator threads.
    """
    cores = available_cores() if n_jobs == "auto" else int(n_jobs)
    trials = max(1, min(parallel_trials, cores))
    share = max(1, cores // trials)
    folds = max(1, min(share, n_folds))
    threads = max(1, share // folds)
    return ResourcePlan(cores=cores, trials=trials, folds=folds, threads=threads)
