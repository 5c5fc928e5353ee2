"""Model families: one module each, one registry (``MODELS``)."""

from runner.models._registry import (
    MODELS,
    TASKS,
    ModelFamily,
    ensure_loaded,
    get_family,
    register_family,
)

__all__ = ["MODELS", "TASKS", "ModelFamily", "ensure_loaded", "get_family", "register_family"]
