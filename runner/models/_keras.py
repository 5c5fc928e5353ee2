"""Keras networks behind the scikit-learn estimator API, picklable after fitting.

Keras is imported lazily (``import_keras``) so that ``import runner`` works without it, and
the JAX backend is chosen unless the user set ``KERAS_BACKEND`` (keras 3 defaults to
TensorFlow, which this project does not install).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from runner.models._base import KERAS_REQUIREMENTS, inner_split
from runner.models._device import fit_slot, keras_device

__all__ = [
    "KERAS_REQUIREMENTS",
    "KerasClassifierMixin",
    "KerasEstimator",
    "KerasRegressorMixin",
    "import_keras",
]


def import_keras() -> Any:
    """Import keras on the JAX backend (unless ``KERAS_BACKEND`` says otherwise).

    Raises:
        ImportError: keras or its backend is not installed, with the install command.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as exc:
        raise ImportError(
            "The keras model families need keras and a backend: "
            "pip install 'keras>=3.6' 'jax[cpu]'."
        ) from exc
    return keras


def model_to_bytes(model: Any) -> bytes:
    """Serialise a keras model to the bytes of a ``.keras`` archive."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes) -> Any:
    """Inverse of ``model_to_bytes`` (uncompiled: the estimator only predicts after loading)."""
    keras = import_keras()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=False)


class KerasEstimator(BaseEstimator):
    """Shared ``fit`` and pickling of the keras wrappers.

    Subclasses define ``__init__`` (arguments stored as given, as scikit-learn requires),
    with at least ``learning_rate``, ``batch_size``, ``epochs``, ``patience``,
    ``validation_fraction``, ``balanced`` and ``random_state``; and implement
    ``_prepare(X)`` (the network's input arrays, one per input, rows aligned) and
    ``_body(keras, inputs)`` (hidden layers over the list of input tensors).
    A classifier or regressor mixin supplies the head, the loss and ``predict``.
    """

    def _prepare(self, X: Any, *, fit: bool = False) -> list[np.ndarray]:
        raise NotImplementedError

    def _body(self, keras: Any, inputs: list[Any]) -> Any:
        raise NotImplementedError

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, int, str, str]:
        raise NotImplementedError

    def _compile(
        self, keras: Any, shapes: list[tuple[int, ...]], n_out: int, loss: str, act: str
    ) -> Any:
        inputs = [keras.Input(shape=shape) for shape in shapes]
        outputs = keras.layers.Dense(n_out, activation=act)(self._body(keras, inputs))
        # One input stays a bare tensor, as models saved before fused inputs expect.
        model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=loss)
        return model

    def fit(self, X: Any, y: Any) -> KerasEstimator:
        """Train with early stopping on an inner validation split of the training rows.

        Small data (no useful split) stop on the training loss instead.
        """
        keras = import_keras()
        arrays = self._prepare(X, fit=True)
        y_raw = np.asarray(y)
        target, n_out, loss, activation = self._encode_target(y_raw)
        keras.utils.set_random_seed(self.random_state)
        model = self._compile(keras, [a.shape[1:] for a in arrays], n_out, loss, activation)
        train, kwargs = self._split(arrays, y_raw, target, n_out)
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss" if "validation_data" in kwargs else "loss",
            patience=self.patience,
            restore_best_weights=True,
        )
        self.device_ = keras_device()
        with fit_slot(self.device_):  # one network at a time on an accelerator
            history = model.fit(
                _rows(arrays, train),
                target[train],
                epochs=self.epochs,
                batch_size=min(self.batch_size, len(train)),
                callbacks=[stop],
                shuffle=True,
                verbose=0,
                **kwargs,
            )
        self.model_ = model
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.n_epochs_ = len(self.history_["loss"])
        return self

    def _split(
        self, arrays: list[np.ndarray], y: np.ndarray, target: np.ndarray, n_out: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Training row indices and the extra ``model.fit`` arguments (validation, weights)."""
        split = inner_split(
            y,
            fraction=self.validation_fraction,
            seed=self.random_state,
            classification=is_classifier(self),
        )
        kwargs: dict[str, Any] = {}
        train = np.arange(len(y))
        if split is not None:
            train, val = split
            kwargs["validation_data"] = (_rows(arrays, val), target[val])
        if self.balanced and is_classifier(self):
            weights = compute_class_weight("balanced", classes=np.arange(n_out), y=target[train])
            kwargs["class_weight"] = dict(enumerate(weights.tolist()))
        return train, kwargs

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        arrays = self._prepare(X)
        out = self.model_.predict(_rows(arrays, slice(None)), verbose=0, batch_size=256)
        return np.asarray(out, dtype=np.float64)

    # Keras models do not pickle; MLflow pickles the estimator, so ship the .keras bytes.
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if "model_" in state:
            state = {**state, "model_": model_to_bytes(state["model_"])}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("model_"), bytes):
            state = {**state, "model_": model_from_bytes(state["model_"])}
        super().__setstate__(state)


def _rows(arrays: list[np.ndarray], index: Any) -> Any:
    """The rows ``index`` of every input: a bare array for one input, a list for several."""
    picked = [a[index] for a in arrays]
    return picked[0] if len(picked) == 1 else picked


class KerasClassifierMixin(ClassifierMixin):
    """Softmax head over ``classes_`` (labels of any type), sparse cross-entropy loss."""

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, int, str, str]:
        self.classes_, codes = np.unique(y, return_inverse=True)
        return (
            codes.astype(np.int32),
            len(self.classes_),
            "sparse_categorical_crossentropy",
            "softmax",
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        proba = self._forward(X)
        # float32 softmax rows sum to 1 only within ~1e-6; renormalise in float64.
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class KerasRegressorMixin(RegressorMixin):
    """Linear head on a standardised target, mean squared error loss."""

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, int, str, str]:
        y = y.astype(np.float64)
        self.y_mean_ = float(y.mean())
        std = float(y.std())
        # A constant target would divide by zero; any scale reproduces it.
        self.y_scale_ = std if std > 0 else 1.0
        return ((y - self.y_mean_) / self.y_scale_).astype(np.float32), 1, "mse", "linear"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted target values in the original units."""
        return self._forward(X)[:, 0] * self.y_scale_ + self.y_mean_
