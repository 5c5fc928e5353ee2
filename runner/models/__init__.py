"""Model families: one module each, one registry (``MODELS``)."""

from runner.models._registry import (
    MODELS,
    TASKS,
    ModelFamily,
    ensure_loaded,
    get_family,
    register_family,
)
from runner.models._space import SEARCH_SPACES_DIR, narrow_space, resolve_space
from runner.models.importance import feature_importance, importance_by_group

__all__ = [
    "MODELS",
    "SEARCH_SPACES_DIR",
    "TASKS",
    "ModelFamily",
    "ensure_loaded",
    "feature_importance",
    "get_family",
    "importance_by_group",
    "narrow_space",
    "register_family",
    "resolve_space",
]
