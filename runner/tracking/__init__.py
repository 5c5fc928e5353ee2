"""What a run records: every MLflow call, figures and the terminal's lines.

``tracker`` holds the parent run, a child run per trial, model logging and the Model
Registry; ``gate`` scores the alias holder for the champion gate; ``mlflow_models`` attaches
a pyfunc and a dataset input to a run through MLflow's public API; ``plots`` (matplotlib, the
final model) and ``svg`` (per trial, fast) draw the figures; ``report`` prints the trial
lines and the leaderboard.
"""
