"""The served model: an MLflow pyfunc that embeds the training feature pipeline.

Rows of the input DataFrame are one of:

* ``audio_base64``: the bytes of a wav, flac, ogg or mp3 file, base64-encoded;
* ``path``: a file on the server, only when the server was started with
  ``AUDIOML_SERVE_ROOT`` set (paths outside that folder are refused);
* the feature columns themselves, for users who extract features elsewhere.

The output has ``label`` and one ``proba_<class>`` column per class (classification) or
``prediction`` (regression), one row per input row: windows of a segmented clip are
aggregated back to the clip exactly as in training.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pickle
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

__all__ = ["MAX_AUDIO_BYTES", "SERVE_ROOT_ENV", "AudioModel"]

SERVE_ROOT_ENV = "AUDIOML_SERVE_ROOT"
MAX_AUDIO_BYTES = int(os.environ.get("AUDIOML_MAX_AUDIO_BYTES", 50 * 1024 * 1024))


def _bad_input(message: str) -> MlflowException:
    # INVALID_PARAMETER_VALUE makes the scoring server answer HTTP 400, not 500.
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class AudioModel(mlflow.pyfunc.PythonModel):
    """Feature extraction + fitted estimator + label names, as one pyfunc model."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["estimator"], "rb") as fh:
            self.estimator = pickle.load(fh)
        self.config = json.loads(Path(context.artifacts["config"]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if len(frame) == 0:
            raise _bad_input("the request holds no rows")
        if "audio_base64" in frame.columns or "path" in frame.columns:
            rows = [self._predict_clip(i, row) for i, row in enumerate(frame.to_dict("records"))]
            return pd.concat(rows, ignore_index=True)
        return self._predict_features(frame)

    # -- inputs ------------------------------------------------------------------------
    def _clip_bytes(self, i: int, row: dict[str, Any]) -> bytes | str:
        encoded = row.get("audio_base64")
        if isinstance(encoded, str) and encoded:
            if len(encoded) > MAX_AUDIO_BYTES * 4 // 3 + 4:
                raise _bad_input(f"row {i}: audio_base64 is larger than {MAX_AUDIO_BYTES} bytes")
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise _bad_input(f"row {i}: audio_base64 is not valid base64") from None
        path = row.get("path")
        if isinstance(path, str) and path:
            return str(_allowed_path(i, path))
        raise _bad_input(f"row {i}: give audio_base64 (or path, when the server allows it)")

    def _predict_clip(self, i: int, row: dict[str, Any]) -> pd.DataFrame:
        from features import FeaturesSpec, SegmentsSpec, decode_audio, extract_signal
        from runner.errors import FeatureError

        fspec = FeaturesSpec.model_validate(self.config["features"])
        sspec = SegmentsSpec.model_validate(self.config["segments"])
        try:
            y = decode_audio(self._clip_bytes(i, row), fspec.sample_rate)
            table, images = extract_signal(y, fspec.sample_rate, fspec, sspec)
        except FeatureError as exc:
            raise _bad_input(f"row {i}: {exc}") from None
        columns = self.config["columns"]
        X = images if self.config["input"] == "mel_image" else table[columns].to_numpy(float)
        return self._finish(self._raw_predict(X), np.zeros(len(table), dtype=int))

    def _predict_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        columns = self.config["columns"]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise _bad_input(
                f"missing feature columns ({len(missing)}): {shown}; "
                "send audio_base64 or every feature column of the model"
            )
        try:
            X = frame[columns].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise _bad_input(f"feature columns must be numeric: {exc}") from None
        if not np.isfinite(X).all():
            raise _bad_input("feature columns hold NaN or infinite values")
        return self._finish(self._raw_predict(X), np.arange(len(frame)))

    # -- outputs -----------------------------------------------------------------------
    def _raw_predict(self, X: Any) -> np.ndarray:
        if self.config["task"] == "regression":
            return np.asarray(self.estimator.predict(X), dtype=float)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        full = np.zeros((len(proba), len(self.config["classes"])))
        order = {c: j for j, c in enumerate(self.config["classes"])}
        for j, c in enumerate(self.estimator.classes_):
            full[:, order[str(c)]] = proba[:, j]
        return full

    def _finish(self, raw: np.ndarray, clip_index: np.ndarray) -> pd.DataFrame:
        from runner.evaluation import aggregate_clips

        if self.config["task"] == "regression":
            _, pred, _ = aggregate_clips(clip_index, raw, None)
            return pd.DataFrame({"prediction": pred})
        classes = self.config["classes"]
        window_labels = np.asarray(classes)[raw.argmax(axis=1)]
        _, labels, proba = aggregate_clips(
            clip_index, window_labels, raw, how=self.config["aggregate"], classes=classes
        )
        out = pd.DataFrame({"label": labels})
        for j, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, j]
        return out


def _allowed_path(i: int, path: str) -> Path:
    root = os.environ.get(SERVE_ROOT_ENV)
    if not root:
        raise _bad_input(
            f"row {i}: reading files on the server is off; start it with {SERVE_ROOT_ENV}=DIR"
        )
    resolved = Path(root, path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise _bad_input(f"row {i}: path '{path}' is outside the allowed root")
    if not resolved.is_file():
        raise _bad_input(f"row {i}: no file at '{path}' under the allowed root")
    return resolved
