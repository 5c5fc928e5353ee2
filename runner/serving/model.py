"""The served model: an MLflow pyfunc that embeds the training feature pipeline.

Each row of the input DataFrame is one of:

* ``audio_base64``: the bytes of a wav, flac, ogg or mp3 file, base64-encoded;
* ``path``: a file on the server, only when the server was started with
  ``AUDIOML_SERVE_ROOT`` set (paths that resolve outside that folder are refused);
* the feature columns themselves, for users who extract features elsewhere.

A model fitted with ``data.metadata`` also reads its metadata columns from every row: each
column must be present (a missing column is refused, naming it), and an empty value is
imputed exactly as in training. Rows of different kinds may be mixed in one request.

The output has ``label`` and one ``proba_<class>`` column per class (classification) or
``prediction`` (regression), one row per input row: windows of a segmented clip are
aggregated back to the clip exactly as in training. Audio goes through
``features.decode_audio`` and ``features.extract_signal`` with the run's own
``FeaturesSpec`` and ``SegmentsSpec``, the code path training used.

Bad input raises ``MlflowException(error_code=INVALID_PARAMETER_VALUE)``, which the MLflow
scoring server answers with HTTP 400 and ``{"error_code": ..., "message": ...}``.

Limits (``runner.serving.limits``), read from the environment when the model is loaded:
``AUDIOML_MAX_AUDIO_BYTES`` (default 50 MiB per clip), ``AUDIOML_MAX_AUDIO_SECONDS``
(default 600 s per clip, so a small compressed file cannot decode to hours of samples),
``AUDIOML_MAX_REQUEST_ROWS`` (default 1000) and ``AUDIOML_MAX_REQUEST_BYTES`` (default
100 MiB of audio per request).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from runner.errors import format_error
from runner.serving.limits import (
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    MAX_BYTES_ENV,
    MAX_SECONDS_ENV,
    SERVE_ROOT_ENV,
    Limits,
    bad_input,
)

__all__ = [
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_BYTES_ENV",
    "MAX_SECONDS_ENV",
    "SERVE_ROOT_ENV",
    "AudioModel",
    "Limits",
]

_INPUT_COLUMNS = ("audio_base64", "path")
#: How much of a long audio_base64 value a message quotes (``format_error`` cuts it shorter).
_SHOWN = 100
_bad_input = bad_input


class AudioModel(mlflow.pyfunc.PythonModel):
    """Feature extraction + fitted estimator + label names, as one pyfunc model."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["estimator"], "rb") as fh:
            self.estimator = pickle.load(fh)
        config = json.loads(Path(context.artifacts["config"]).read_text())
        from features import extractor_files, file_artifact

        for key in extractor_files(config["features"]):
            if file_artifact(key) in context.artifacts:
                # The packaged copy, not the training path (absent where the model is served).
                *parents, last = key.split(".")
                section = config["features"]
                for part in parents:
                    section = section[part]
                section[last] = context.artifacts[file_artifact(key)]
        self.setup(config, Limits.from_env())

    def setup(self, config: dict[str, Any], limits: Limits) -> None:
        """Validate the logged config once, so requests do not re-parse it."""
        from features import FeaturesSpec, SegmentsSpec
        from runner.models import ColumnRoles, input_kind

        self.config = config
        self.limits = limits
        self.kind = input_kind(config["input"])
        self.roles = ColumnRoles.from_json(config.get("metadata"))
        self.columns: list[str] = self.kind.columns(list(config["columns"]), self.roles)
        # Audio feature columns: what a row without audio must carry (with the metadata).
        self.audio_columns = [c for c in self.columns if c not in self.roles.columns]
        self.features = FeaturesSpec.model_validate(config["features"])
        self.segments = SegmentsSpec.model_validate(config["segments"])
        self.audio_reason = self._audio_unservable_reason()

    def _audio_unservable_reason(self) -> str | None:
        """Why audio rows cannot be served (a model fitted on a pre-extracted table), or None.

        Also warms up librosa (numba compiles on first use), so the first request is not slow.
        """
        from features import feature_layout

        produced = set(feature_layout(self.features)[0])
        if set(self.audio_columns) <= produced:
            return None
        return (
            "this model was fitted on pre-extracted feature columns that the audio pipeline "
            "does not produce; send those feature columns instead of audio"
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if len(frame) == 0 or frame.shape[1] == 0:
            hint = (
                "send audio_base64, path (when the server allows it), or the model's "
                f"{len(self.columns)} feature columns ({_shown(self.columns)}); unknown "
                "columns are ignored"
            )
            # Not told apart: the scoring server's schema check drops unknown columns, rows too.
            problem = "holds no rows or no known column"
            raise _bad_input(format_error("request", problem=problem, hint=hint))
        self.limits.check_request(frame)
        metadata = self._metadata(frame)  # a missing column is refused before any decoding
        is_clip = np.zeros(len(frame), dtype=bool)
        for name in _INPUT_COLUMNS:
            if name in frame.columns:
                is_clip |= frame[name].map(_present).to_numpy(dtype=bool)
        parts: dict[int, tuple[pd.DataFrame, np.ndarray | None]] = {}
        if (~is_clip).any():
            parts.update(self._feature_rows(frame.loc[~is_clip], np.flatnonzero(~is_clip)))
        for i in np.flatnonzero(is_clip):
            parts[int(i)] = self._clip_inputs(int(i), frame.iloc[int(i)].to_dict())
        order = range(len(frame))
        owner = np.concatenate([np.full(len(parts[i][0]), i) for i in order])
        table = pd.concat([parts[i][0] for i in order], ignore_index=True)
        # Every segment of a row carries that row's metadata, as in training.
        table = pd.concat([table, metadata.iloc[owner].reset_index(drop=True)], axis=1)
        images = np.concatenate([parts[i][1] for i in order]) if self.kind.images else None
        return self.predict_inputs(self.segment_inputs(table, images), owner)

    # -- the code path `audioml predict` shares --------------------------------------------
    def segment_inputs(self, table: pd.DataFrame, images: np.ndarray | None) -> Any:
        """The estimator input of extracted segments (one row or image each).

        Args:
            table: one row per segment: the extracted feature columns, plus any columns of
                the clip's request or manifest row (repeated on each of its segments), which
                must include the model's metadata columns.
            images: the segments' log-mel images, or None when the model reads no images.
        """
        from runner.models import Rows

        table = table.reset_index(drop=True)
        if self.roles:
            table = table.assign(**self._metadata(table))
        rows = Rows(table, None if images is None else np.asarray(images).__getitem__)
        return self.kind.take(rows, np.arange(len(table)), self.columns, self.roles)

    def predict_inputs(self, X: Any, owner: np.ndarray) -> pd.DataFrame:
        """Estimator inputs of segments and the clip number of each -> one row per clip."""
        return self._finish(self._raw_predict(X), owner)

    # -- inputs ------------------------------------------------------------------------
    def _metadata(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The metadata columns of every request row; numbers parsed, blanks left missing."""
        missing = [c for c in self.roles.columns if c not in frame.columns]
        if missing:
            problem = f"lacks the metadata column(s) {', '.join(missing)} that the model reads"
            hint = "send every metadata column (an empty value is imputed)"
            raise _bad_input(format_error("request", problem=problem, hint=hint))
        out = frame[self.roles.columns].reset_index(drop=True).astype(object)
        for column in self.roles.numeric:
            text = out[column].map(lambda v: v if _present(v) else None)
            values = pd.to_numeric(text, errors="coerce")
            bad = np.flatnonzero((values.isna() & text.notna()).to_numpy(dtype=bool))
            if len(bad):
                row, value = int(bad[0]), _sent(text.iloc[int(bad[0])])
                must = "a number (numeric metadata)"
                raise _bad_input(format_error(_cell(row, column), value, must=must))
            out[column] = values.astype(float)
        return out

    def _feature_rows(
        self, rows: pd.DataFrame, numbers: np.ndarray
    ) -> dict[int, tuple[pd.DataFrame, None]]:
        """The audio feature columns of rows that carry them (one row each)."""
        first = int(numbers[0])
        no_audio = "has no audio (audio_base64 and path empty or absent)"
        if self.kind.images:
            problem = f"{no_audio}; this model reads audio only"
            raise _bad_input(format_error(_cell(first), problem=problem, hint="send audio_base64"))
        missing = [c for c in self.audio_columns if c not in rows.columns]
        if missing:
            problem = (
                f"{no_audio}, and {len(missing)} of the model's {len(self.audio_columns)} "
                f"feature columns are missing: {_shown(missing)}"
            )
            raise _bad_input(format_error(_cell(first), problem=problem))
        X = _numbers(rows[self.audio_columns], numbers)
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            column = self.audio_columns[c]
            hint = (
                f"{int(bad[r].sum())} of this row's feature columns are missing, NaN or infinite"
            )
            raise _bad_input(
                format_error(
                    _cell(int(numbers[r]), column),
                    _sent(rows[column].iloc[r]),
                    must="a finite number",
                    hint=hint,
                )
            )
        table = pd.DataFrame(X, columns=self.audio_columns)
        return {int(n): (table.iloc[j : j + 1], None) for j, n in enumerate(numbers)}

    def _clip_inputs(self, i: int, row: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
        """Decode and extract one clip exactly as training did; one row per segment."""
        from features import decode_audio, extract_signal
        from runner.errors import FeatureError

        where = _cell(i, "audio_base64" if _present(row.get("audio_base64")) else "path")
        if self.audio_reason:
            raise _bad_input(format_error(where, problem=self.audio_reason))
        data = self._clip_bytes(i, row)
        self._check_duration(where, data)
        try:
            y = decode_audio(
                data, self.features.sample_rate, max_duration_s=self.features.max_duration_s
            )
            table, images = extract_signal(
                y, self.features.sample_rate, self.features, self.segments
            )
        except FeatureError as exc:
            raise _bad_input(format_error(where, problem=str(exc))) from None
        return table[self.audio_columns].reset_index(drop=True), images

    def _clip_bytes(self, i: int, row: dict[str, Any]) -> bytes:
        encoded = row.get("audio_base64")
        if _present(encoded):
            return self._decode_base64(i, encoded)
        return _read_allowed(i, str(row["path"]), self.limits)

    def _decode_base64(self, i: int, encoded: Any) -> bytes:
        where = _cell(i, "audio_base64")
        if not isinstance(encoded, str):
            must = "a string (an audio file, base64-encoded)"
            raise _bad_input(format_error(where, _sent(encoded), must=must))
        # Allow the line breaks of `base64` without -w0; everything else must be base64.
        compact = "".join(encoded.split())
        if len(compact) > self.limits.max_bytes * 4 // 3 + 4:
            problem = f"holds about {len(compact) * 3 // 4} bytes of audio"
            raise _bad_input(format_error(where, problem=problem, hint=_bytes_limit(self.limits)))
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            # The start of a long value is enough to show (and cheaper to quote).
            raise _bad_input(
                format_error(where, encoded[:_SHOWN], problem="is not valid base64")
            ) from None
        if not data:
            raise _bad_input(format_error(where, encoded[:_SHOWN], problem="holds no bytes"))
        if len(data) > self.limits.max_bytes:
            problem = f"holds {len(data)} bytes of audio"
            raise _bad_input(format_error(where, problem=problem, hint=_bytes_limit(self.limits)))
        return data

    def _check_duration(self, where: str, data: bytes) -> None:
        """Refuse clips longer than the limit from the header, before decoding them."""
        import soundfile as sf

        try:
            info = sf.info(io.BytesIO(data))
        except Exception:  # unreadable: decode_audio reports why, with its usual wording
            return
        if info.duration > self.limits.max_seconds:
            problem = f"holds {info.duration:.0f} s of audio"
            hint = f"the limit is {self.limits.max_seconds:g} s ({MAX_SECONDS_ENV})"
            raise _bad_input(format_error(where, problem=problem, hint=hint))

    # -- outputs -----------------------------------------------------------------------
    def _raw_predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (regression) or probabilities in the training class order."""
        from runner.models import predict_rows

        task, classes = self.config["task"], self.config["classes"]
        pred, proba = predict_rows(self.estimator, X, task=task, classes=classes)
        return pred if proba is None else proba

    def _finish(self, raw: np.ndarray, owner: np.ndarray) -> pd.DataFrame:
        """Aggregate segment rows to one row per input row (the same rule as training)."""
        from runner.models import aggregate_clips

        if self.config["task"] == "regression":
            _, pred, _ = aggregate_clips(owner, raw, None)
            return pd.DataFrame({"prediction": np.asarray(pred, dtype=float)})
        classes = [str(c) for c in self.config["classes"]]
        window_labels = np.asarray(classes)[raw.argmax(axis=1)]
        _, labels, proba = aggregate_clips(
            owner, window_labels, raw, how=self.config["aggregate"], classes=classes
        )
        out = pd.DataFrame({"label": np.asarray(labels, dtype=object).astype(str)})
        for j, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, j]
        return out


def _numbers(frame: pd.DataFrame, numbers: np.ndarray) -> np.ndarray:
    """Feature columns as floats, integers and numeric text included; a value that is not a
    number is refused naming its row and column (missing values stay NaN for the caller)."""
    try:
        return frame.to_numpy(dtype=float)
    except (TypeError, ValueError):
        pass
    for column in frame.columns:
        values = frame[column]
        parsed = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero((parsed.isna() & values.map(_present)).to_numpy(dtype=bool))
        if len(bad):
            where = _cell(int(numbers[bad[0]]), column)
            raise _bad_input(format_error(where, _sent(values.iloc[int(bad[0])]), must="a number"))
    return frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)


def _present(value: Any) -> bool:
    """A non-empty cell (None, NaN and "" count as absent)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return not (isinstance(value, str) and value.strip() == "")


def _shown(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def _cell(i: int, column: str | None = None) -> str:
    """The key that names a request row (numbered from 0), or one of its cells, in messages:
    ``row 3`` or ``row 3, column 'path'`` (the form the data sources use for a file's rows)."""
    return f"row {i}" if column is None else f"row {i}, column '{column}'"


def _sent(value: Any) -> Any:
    """A request value as a message shows it: a numpy scalar as the plain number it holds."""
    return value.item() if isinstance(value, np.generic) else value


def _bytes_limit(limits: Limits) -> str:
    return f"the limit is {limits.max_bytes} bytes ({MAX_BYTES_ENV})"


def _read_allowed(i: int, path: str, limits: Limits) -> bytes:
    """Read a server-side file, only under the configured root (symlinks resolved first)."""
    where = _cell(i, "path")
    if limits.root is None:
        problem = "cannot be read: reading files on the server is off"
        hint = f"send audio_base64, or start the server with {SERVE_ROOT_ENV}=DIR"
        raise _bad_input(format_error(where, path, problem=problem, hint=hint))
    try:
        resolved = (limits.root / path).resolve()
    except (OSError, ValueError):
        raise _bad_input(format_error(where, path, problem="is not a usable file name")) from None
    if not resolved.is_relative_to(limits.root):
        raise _bad_input(format_error(where, path, problem="is outside the allowed root"))
    if not resolved.is_file():
        raise _bad_input(format_error(where, path, problem="names no file under the allowed root"))
    size = resolved.stat().st_size
    if size > limits.max_bytes:
        problem = f"is a file of {size} bytes"
        raise _bad_input(format_error(where, path, problem=problem, hint=_bytes_limit(limits)))
    try:
        return resolved.read_bytes()
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
        raise _bad_input(format_error(where, path, problem=problem)) from None
