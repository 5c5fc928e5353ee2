"""The Optuna study and everything that runs trials in it; no MLflow call.

``objective`` draws a trial's family and parameters and scores them by CV (``evaluation``,
folds in threads or ``fold_procs``' worker processes, gated by ``fold_gate``); ``study``
names and opens the study; ``trials`` claims trials under its lock and reaps those of dead
processes (``liveness``); ``budget`` is the loop every process runs, one trial or a window of
trials at a time (``plan`` splits the cores, ``horizon`` keeps the pruner's view fair);
``warm_start``, ``dominance``, ``live_families`` and ``fold_models`` steer what is tried and
kept; ``optuna_private`` is the one reader of Optuna's private attributes.
"""
