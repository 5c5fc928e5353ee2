"""The keras estimators of the ``keras_cnn`` family.

Kept apart from the family module so that the registry (and ``audioml validate``) reads the
family without importing scikit-learn; models logged before the split unpickle through the
re-export in :mod:`runner.models.keras_cnn`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runner.models._inputs import ImageTable
from runner.models._keras import KerasClassifierMixin, KerasEstimator, KerasRegressorMixin

__all__ = ["KerasCNNClassifier", "KerasCNNRegressor"]


class _KerasCNN(KerasEstimator):
    """Conv-BatchNorm-ReLU-MaxPool blocks, global average pooling, one dense layer.

    Global pooling keeps the parameter count independent of the image size, so the same
    search space fits 16x16 test images and 128x128 log-mels.

    Args:
        n_blocks: number of convolution blocks; block ``i`` has ``filters * 2**i`` filters.
        filters: filters of the first block.
        kernel_size: square kernel side.
        dense_units: width of the dense layer after pooling.
        metadata_units: width of the dense branch over the metadata (fused input only).
        dropout: dropout rate before the head.
        learning_rate: Adam step size.
        batch_size: images per gradient step (capped at the training size).
        epochs: maximum number of epochs; early stopping usually ends sooner.
        patience: epochs without improvement of the validation loss before stopping.
        validation_fraction: share of the training images used for early stopping.
        balanced: weight classes inversely to their frequency (classifier only).
        random_state: seed of the weights, the shuffling and the inner split.
    """

    def __init__(
        self,
        n_blocks: int = 2,
        filters: int = 16,
        kernel_size: int = 3,
        dense_units: int = 64,
        metadata_units: int = 16,
        dropout: float = 0.3,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        epochs: int = 20,
        patience: int = 5,
        validation_fraction: float = 0.15,
        balanced: bool = False,
        random_state: int = 0,
    ) -> None:
        self.n_blocks = n_blocks
        self.filters = filters
        self.kernel_size = kernel_size
        self.dense_units = dense_units
        self.metadata_units = metadata_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.balanced = balanced
        self.random_state = random_state

    def _prepare(self, X: Any, *, fit: bool = False) -> list[np.ndarray]:
        table = None
        if isinstance(X, ImageTable):
            # The metadata arrives encoded (MetadataEncoded), rows aligned with the images.
            X, table = X.images, np.asarray(X.table, dtype=np.float32)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            X = X[..., np.newaxis]  # one channel
        if X.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects images shaped (n, n_mels, frames); "
                f"got shape {X.shape}."
            )
        if fit:
            # One mean and scale for all pixels (learned on the training fold only), as dB
            # values share a unit across mel bands.
            self.pixel_mean_ = float(X.mean())
            self.pixel_scale_ = float(X.std()) or 1.0
        images = (X - self.pixel_mean_) / self.pixel_scale_
        return [images] if table is None else [images, table]

    def _body(self, keras: Any, inputs: list[Any]) -> Any:
        layers = keras.layers
        hidden = inputs[0]
        for block in range(self.n_blocks):
            hidden = layers.Conv2D(self.filters * 2**block, self.kernel_size, padding="same")(
                hidden
            )
            hidden = layers.BatchNormalization()(hidden)
            hidden = layers.Activation("relu")(hidden)
            hidden = layers.MaxPooling2D(2, padding="same")(hidden)
        hidden = layers.GlobalAveragePooling2D()(hidden)
        if len(inputs) > 1:
            branch = layers.Dense(self.metadata_units, activation="relu")(inputs[1])
            hidden = layers.Concatenate()([hidden, branch])
        hidden = layers.Dense(self.dense_units, activation="relu")(hidden)
        return layers.Dropout(self.dropout)(hidden)


class KerasCNNClassifier(KerasClassifierMixin, _KerasCNN):
    """Log-mel CNN classifier (see ``_KerasCNN`` for the arguments)."""


class KerasCNNRegressor(KerasRegressorMixin, _KerasCNN):
    """Log-mel CNN regressor (see ``_KerasCNN`` for the arguments)."""
