"""The portfolio benchmark scores every candidate on all its folds."""

from __future__ import annotations

import optuna

from benchmarks.bench_portfolio import candidate_study


def test_no_candidate_is_scored_on_one_fold() -> None:
    """Candidates after the fifth whose first fold is the worst so far still run every fold
    and are valued at their mean (a pruned trial would keep its first fold's score)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = {i: [0.9 - 0.05 * i, 0.95, 0.95, 0.95, 0.95] for i in range(9)}

    def objective(trial: optuna.Trial) -> float:
        scores = folds[trial.number]
        for k, score in enumerate(scores):
            trial.report(score, step=k)
            if trial.should_prune():
                raise optuna.TrialPruned
        return sum(scores) / len(scores)

    study = candidate_study("maximize")
    study.optimize(objective, n_trials=len(folds))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * len(folds)
    assert [round(t.value, 4) for t in study.trials] == [
        round(sum(f) / len(f), 4) for f in folds.values()
    ]
