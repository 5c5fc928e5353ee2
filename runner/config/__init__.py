"""The experiment spec: what a spec may say and how it is read and checked.

``spec`` holds the pydantic models and their cross-field ``check_*`` rules; ``loading`` merges
the defaults and ``--set`` overrides and hashes the result; ``checks`` runs every check that
needs no audio. The spec names things other stages provide, so the registries it checks those
names against live here too: data sources (``source_registry``, readers named lazily) and
samplers and pruners (``samplers``, Optuna imported only when one is built). Metrics and model
families have their own packages below (``runner.metrics``, ``runner.models``).
"""
