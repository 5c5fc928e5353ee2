"""Model families: one module each, one registry (``MODELS``); input kinds, one registry
(``INPUT_KINDS``).

The registry, the input kinds and the search spaces load without scikit-learn or pandas (for
`audioml validate`); the estimators import them when a family builds one.
"""

from __future__ import annotations

from typing import Any

from runner.models._inputs import (
    IMAGE,
    IMAGE_GROUP,
    IMAGE_TABLE,
    INPUT_KINDS,
    METADATA_GROUP,
    TABLE,
    ColumnRoles,
    ImageTable,
    InputKind,
    Inputs,
    Rows,
    input_kind,
    register_input_kind,
)
from runner.models._lazy import lazy_exports
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

# These read fitted models or tables (scikit-learn, pandas): imported on first use.
_exports = lazy_exports(
    __name__,
    {
        "feature_importance": "runner.models.importance",
        "importance_by_group": "runner.models.importance",
        "aggregate_clips": "runner.models._predict",
        "predict_rows": "runner.models._predict",
        "BaggedModel": "runner.models._bagged",
        "EnsembleMember": "runner.models._weighted_ensemble",
        "WeightedEnsemble": "runner.models._weighted_ensemble",
        "StackedModel": "runner.models._stacked",
        "stack_inputs": "runner.models._stacked",
    },
)


def __getattr__(name: str) -> Any:
    return _exports(name)


__all__ = [
    "IMAGE",
    "IMAGE_GROUP",
    "IMAGE_TABLE",
    "INPUT_KINDS",
    "METADATA_GROUP",
    "MODELS",
    "SEARCH_SPACES_DIR",
    "TABLE",
    "TASKS",
    "BaggedModel",
    "ColumnRoles",
    "Ensemble",
    "EnsembleMember",
    "ImageTable",
    "InputKind",
    "Inputs",
    "ModelFamily",
    "Rows",
    "StackedModel",
    "WeightedEnsemble",
    "aggregate_clips",
    "ensure_loaded",
    "feature_importance",
    "get_family",
    "importance_by_group",
    "input_kind",
    "narrow_space",
    "predict_rows",
    "register_family",
    "register_input_kind",
    "resolve_space",
    "stack_inputs",
]
