"""The keras estimators of the ``keras_mlp`` family.

Kept apart from the family module so that the registry (and ``audioml validate``) reads the
family without importing scikit-learn; models logged before the split unpickle through the
re-export in :mod:`runner.models.keras_mlp`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runner.models._keras import KerasClassifierMixin, KerasEstimator, KerasRegressorMixin

__all__ = ["KerasMLPClassifier", "KerasMLPRegressor"]


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
