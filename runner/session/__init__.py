"""One run session for ``run``, ``worker`` and ``finalize``.

``pipeline`` prepares a spec's data, split, study and tracker; ``session`` adopts or joins the
parent run, keeps trials alive and mirrored, and finalizes once as a transaction;
``finalize`` refits, tests, logs and registers the final model; ``worker`` joins a study as
one more process and finalizes one whose run process is gone.
"""
