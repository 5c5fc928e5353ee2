"""The stores a run writes: optuna.db, mlflow.db (or their servers) and the feature cache.

``checks`` finds the tracking URI and checks each store before use (damaged files named, with
what to do); ``tracking_store`` creates or migrates MLflow's schema beside other
processes; ``lock`` is one study's lock across threads, processes and machines, which the
stores' schema creation and the trial claims take.
"""
