"""Model families: one module each, one registry (``MODELS``)."""

from runner.models._inputs import (
    IMAGE,
    IMAGE_GROUP,
    IMAGE_TABLE,
    METADATA_GROUP,
    TABLE,
    ColumnRoles,
    ImageTable,
    InputKind,
    Inputs,
    Rows,
    input_kind,
)
from runner.models._registry import (
    MODELS,
    TASKS,
    Ensemble,
    ModelFamily,
    ensure_loaded,
    get_family,
    register_family,
)
from runner.models._space import SEARCH_SPACES_DIR, narrow_space, resolve_space
from runner.models.importance import feature_importance, importance_by_group

__all__ = [
    "IMAGE",
    "IMAGE_GROUP",
    "IMAGE_TABLE",
    "METADATA_GROUP",
    "MODELS",
    "SEARCH_SPACES_DIR",
    "TABLE",
    "TASKS",
    "ColumnRoles",
    "Ensemble",
    "ImageTable",
    "InputKind",
    "Inputs",
    "ModelFamily",
    "Rows",
    "ensure_loaded",
    "feature_importance",
    "get_family",
    "importance_by_group",
    "input_kind",
    "narrow_space",
    "register_family",
    "resolve_space",
]
