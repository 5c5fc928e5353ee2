"""The ``keras_mlp`` family: a dense network on the feature table (keras, JAX backend).

With ``data.metadata`` the table holds the encoded metadata beside the audio features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from sklearn.pipeline import Pipeline

from runner.models._base import BOTH, check_params, scaled
from runner.models._keras import (
    KERAS_REQUIREMENTS,
    KerasClassifierMixin,
    KerasEstimator,
    KerasRegressorMixin,
)
from runner.models._registry import ModelFamily, register_family

__all__ = ["KERAS_MLP", "KerasMLPClassifier", "KerasMLPRegressor"]


class _KerasMLP(KerasEstimator):
    """Dense ReLU layers of equal width, each followed by dropout.

    Args:
        n_layers: number of hidden layers.
        units: width of every hidden layer.
        dropout: dropout rate after each hidden layer.
        learning_rate: Adam step size.
        batch_size: rows per gradient step (capped at the training size).
        epochs: maximum number of epochs; early stopping usually ends sooner.
        patience: epochs without improvement of the validation loss before stopping.
        validation_fraction: share of the training rows used for early stopping.
        balanced: weight classes inversely to their frequency (classifier only).
        random_state: seed of the weights, the shuffling and the inner split.
    """

    def __init__(
        self,
        n_layers: int = 2,
        units: int = 64,
        dropout: float = 0.2,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        epochs: int = 100,
        patience: int = 10,
        validation_fraction: float = 0.15,
        balanced: bool = False,
        random_state: int = 0,
    ) -> None:
        self.n_layers = n_layers
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.balanced = balanced
        self.random_state = random_state

    def _prepare(self, X: Any, *, fit: bool = False) -> list[np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects a 2-D table; got shape {X.shape}.")
        return [X]

    def _body(self, keras: Any, inputs: list[Any]) -> Any:
        hidden = inputs[0]
        for _ in range(self.n_layers):
            hidden = keras.layers.Dense(self.units, activation="relu")(hidden)
            hidden = keras.layers.Dropout(self.dropout)(hidden)
        return hidden


class KerasMLPClassifier(KerasClassifierMixin, _KerasMLP):
    """Dense network classifier (see ``_KerasMLP`` for the arguments)."""


class KerasMLPRegressor(KerasRegressorMixin, _KerasMLP):
    """Dense network regressor (see ``_KerasMLP`` for the arguments)."""


def keras_mlp_space(task: str) -> dict[str, BaseDistribution]:
    """``epochs`` is a cap: early stopping on the inner split ends most runs sooner."""
    return {
        "n_layers": IntDistribution(1, 3),
        "units": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "epochs": IntDistribution(5, 200, log=True),
    }


def build_keras_mlp(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Pipeline:
    """StandardScaler + keras dense network for ``task``."""
    p = check_params("keras_mlp", params, keras_mlp_space)
    cls = KerasMLPClassifier if task == "classification" else KerasMLPRegressor
    return scaled(cls(**p, balanced=balanced and task == "classification", random_state=seed))


KERAS_MLP = register_family(
    ModelFamily(
        name="keras_mlp",
        tasks=BOTH,
        space=keras_mlp_space,
        build=build_keras_mlp,
        requirements=KERAS_REQUIREMENTS,
    )
)
