"""Imports every built-in family module so that each registers itself.

Adding a family is one new module plus one line here. Keras itself is imported only when a
keras estimator is fitted or unpickled, so these imports stay cheap.
"""

from __future__ import annotations

from runner.models import (  # noqa: F401
    catboost,
    keras_cnn,
    keras_mlp,
    lgbm,
    sklearn_kernel,
    sklearn_linear,
    sklearn_mlp,
    sklearn_trees,
    voting,
)
