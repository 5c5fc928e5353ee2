"""What a served model accepts: request size, clip size, clip duration, and the file root.

Every limit has a default and an environment variable read when the model loads (a bad value
stops the server from starting). A request over a limit is refused before any audio is
decoded, with an ``MlflowException(INVALID_PARAMETER_VALUE)`` that the scoring server answers
with HTTP 400 and a message naming the limit and its variable; the server keeps serving.

``mlflow models serve`` reads the whole request body before the model sees it and has no
body-size option, so the request limits bound the work done, not the body read; put a proxy
with a body limit (e.g. nginx ``client_max_body_size``) in front of a public server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from runner.errors import format_error

__all__ = [
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_BYTES_ENV",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_BYTES_ENV",
    "MAX_ROWS",
    "MAX_ROWS_ENV",
    "MAX_SECONDS_ENV",
    "SERVE_ROOT_ENV",
    "Limits",
    "bad_input",
]

SERVE_ROOT_ENV = "AUDIOML_SERVE_ROOT"
MAX_BYTES_ENV = "AUDIOML_MAX_AUDIO_BYTES"
MAX_SECONDS_ENV = "AUDIOML_MAX_AUDIO_SECONDS"
MAX_ROWS_ENV = "AUDIOML_MAX_REQUEST_ROWS"
MAX_REQUEST_BYTES_ENV = "AUDIOML_MAX_REQUEST_BYTES"
MAX_AUDIO_BYTES = 50 * 1024 * 1024
MAX_AUDIO_SECONDS = 600.0
MAX_ROWS = 1000
MAX_REQUEST_BYTES = 100 * 1024 * 1024


def bad_input(message: str) -> MlflowException:
    """An error the scoring server answers with HTTP 400 (not 500) and ``message``."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _env_number(name: str, default: float, kind: type) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    expected = f"{'an int' if kind is int else 'a number'} > 0"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(format_error(name, raw, must=expected)) from None
    if value <= 0:
        raise ValueError(format_error(name, raw, must=expected))
    return value


@dataclass(frozen=True)
class Limits:
    """Per-clip bytes and seconds, per-request rows and audio bytes, and the file root."""

    max_bytes: int = MAX_AUDIO_BYTES
    max_seconds: float = MAX_AUDIO_SECONDS
    root: Path | None = None
    max_rows: int = MAX_ROWS
    max_request_bytes: int = MAX_REQUEST_BYTES

    @classmethod
    def from_env(cls) -> Limits:
        """Read the limits from the environment (a bad value stops the server from starting)."""
        root = os.environ.get(SERVE_ROOT_ENV) or None
        if root is not None and not Path(root).is_dir():
            raise ValueError(format_error(SERVE_ROOT_ENV, Path(root), must="a directory"))
        return cls(
            max_bytes=int(_env_number(MAX_BYTES_ENV, MAX_AUDIO_BYTES, int)),
            max_seconds=float(_env_number(MAX_SECONDS_ENV, MAX_AUDIO_SECONDS, float)),
            root=Path(root).resolve() if root else None,
            max_rows=int(_env_number(MAX_ROWS_ENV, MAX_ROWS, int)),
            max_request_bytes=int(_env_number(MAX_REQUEST_BYTES_ENV, MAX_REQUEST_BYTES, int)),
        )

    def check_request(self, frame: pd.DataFrame) -> None:
        """Refuse a request with too many rows or too much audio, before decoding any.

        The audio size is the decoded size of the ``audio_base64`` cells, computed from their
        length (base64 carries 3 bytes in 4 characters).
        """
        if len(frame) > self.max_rows:
            raise bad_input(
                format_error(
                    "request",
                    problem=f"has {len(frame)} rows",
                    hint=f"the limit is {self.max_rows} rows per request ({MAX_ROWS_ENV})",
                )
            )
        if "audio_base64" not in frame.columns:
            return
        cells = frame["audio_base64"]
        total = sum(len(cell) * 3 // 4 for cell in cells if isinstance(cell, str))
        if total > self.max_request_bytes:
            raise bad_input(
                format_error(
                    "request",
                    problem=f"carries about {total} bytes of audio",
                    hint=f"the limit is {self.max_request_bytes} bytes per request "
                    f"({MAX_REQUEST_BYTES_ENV})",
                )
            )
