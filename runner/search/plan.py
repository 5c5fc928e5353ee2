"""The search's resource plan: how the cores are split between concurrent trials, the CV
folds fitted side by side, and each estimator's own threads.

Whole fits come before threads: a fold is a whole fit, so folds on separate cores keep every
family busy (a random forest's trees parallelise, an SVM or a logistic regression does not).
When the cores outnumber the folds, ``auto`` runs several trials at once and their folds share
one pool of fold slots, one per core, so every core runs a whole fit. The trials of a window
are asked together and told in trial-number order (:mod:`runner.search.trials`), so one seed and
one plan still give one sequence of trials. Cores left over by an explicit
``search.parallel_trials`` become estimator threads.
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
    """``trials`` concurrent trials whose folds share ``slots`` fold fits at once (at most
    ``folds`` of one trial), each estimator with ``threads`` threads."""

    cores: int
    trials: int
    folds: int
    threads: int
    slots: int = 0  # 0: trials x folds (a plan made before slots were shared)

    def __post_init__(self) -> None:
        if not self.slots:
            object.__setattr__(self, "slots", self.trials * self.folds)

    @property
    def busy(self) -> int:
        """Cores running work when every slot is full: fold fits times their threads."""
        return min(self.cores, self.slots * self.threads)

    def describe(self) -> str:
        shared = f" ({self.slots} fold slot(s) shared)" if self.trials > 1 else ""
        return (
            f"{self.cores} core(s): {self.trials} trial(s) at a time x {self.folds} fold(s) "
            f"in parallel{shared} x {self.threads} thread(s) per estimator"
        )

    def as_params(self) -> dict[str, int]:
        """What the parent run logs."""
        return {
            "plan_cores": self.cores,
            "plan_trials": self.trials,
            "plan_folds": self.folds,
            "plan_threads": self.threads,
            "plan_slots": self.slots,
        }


def plan_resources(n_jobs: int | str, parallel_trials: int | str, n_folds: int) -> ResourcePlan:
    """Split ``n_jobs`` cores (``"auto"``: every available one) without oversubscribing.

    ``parallel_trials="auto"``: one trial per core, their folds sharing one slot per core
    (16 cores, 5 folds: 16 trials on 16 fold slots; 2 cores: 2 trials). Trials are told in
    order, so trial n + window is asked only when trial n is told, and one long trial holds
    back the asks behind it; a window as deep as the cores keeps the other slots fed
    meanwhile. On 16 cores, replaying the measured folds of a 40-trial search on its slots,
    a window of 8 ended in 42.7 s where every trial at once took 30.2 s; the 16-trial window
    measured 60.6 s against 79.5 s for 8 (``benchmarks/RESULTS_scaling.md``). Replayed over
    200 trials of uneven folds this keeps >= 0.95 of 2-64 cores busy
    (``tests/runner/test_plan.py``). An explicit count is kept (never above the cores); the
    folds of its trials take one slot each, up to the cores, and the cores left over become
    estimator threads.
    """
    cores = available_cores() if n_jobs == "auto" else int(n_jobs)
    folds_total = max(1, n_folds)
    trials = cores if parallel_trials == "auto" else max(1, min(int(parallel_trials), cores))
    slots = max(1, min(cores, trials * folds_total))
    folds = max(1, min(folds_total, slots))
    threads = max(1, cores // slots)
    return ResourcePlan(cores=cores, trials=trials, folds=folds, threads=threads, slots=slots)
