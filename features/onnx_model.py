"""ONNX embedding models: signature, content hash, one session per process.

A model fits when it has one float input shaped ``[batch, samples]`` or ``[batch, 1,
samples]`` and one float output shaped ``[batch, dim]`` or ``[batch, frames, dim]`` (frames
are averaged first). Dimensions may be named (dynamic) or fixed: a fixed ``samples`` must
equal ``window_s * sample_rate``; a fixed batch size is honoured by padding the last batch.

Speed: each process holds one ``InferenceSession`` per model file, created on first use and
kept (never one per clip), with ``intra_op_num_threads`` set to this process's share of the
cores (the cores divided by the extraction workers, so the pool does not oversubscribe them).
Windows go through the session ``batch_size`` at a time (``features.windows``), those of
many clips together (the extractor's batch form). A forked worker never reuses its parent's
session: onnxruntime's thread pool does not survive ``fork``. With
``AUDIOML_SESSION_LOG=<file>`` set, every session created appends ``<pid> <file name>
<threads>`` to that file (how the tests count sessions per process).

onnxruntime is optional (``pip install "audioml[embeddings]"``) and imported only here, on
first use; this module imports only the standard library, so validation can describe a
model cheaply.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import format_error

if TYPE_CHECKING:
    from features.config import EmbeddingSpec, FeaturesSpec

__all__ = [
    "INSTALL",
    "ModelSignature",
    "SignatureError",
    "cache_token",
    "describe_model",
    "file_sha256",
    "load_session",
    "model_check",
    "model_files",
    "model_problem",
    "model_stamp",
    "read_signature",
    "resolve_model_path",
    "threads_for",
]

INSTALL = 'pip install "audioml[embeddings]"'
_SESSIONS: dict[tuple[Any, ...], tuple[Any, ModelSignature]] = {}


class SignatureError(ValueError):
    """The model's inputs or outputs are not waveform in, embedding out."""


Dim = int | str | None


@dataclass(frozen=True)
class ModelSignature:
    """The one input and one output of a fitting model, as the file declares them."""

    input_name: str
    input_shape: tuple[Dim, ...]
    output_name: str
    output_shape: tuple[Dim, ...]

    @property
    def batch(self) -> int | None:
        """The fixed batch size, or None when the batch axis is dynamic."""
        return _fixed(self.input_shape[0])

    @property
    def samples(self) -> int | None:
        """The fixed number of input samples, or None when any length is accepted."""
        return _fixed(self.input_shape[-1])

    @property
    def dim(self) -> int | None:
        """The embedding size when the file fixes it (else found on the first run)."""
        return _fixed(self.output_shape[-1])

    def describe(self) -> str:
        """E.g. ``input 'wav' float [batch, samples] -> output 'emb' float [batch, 256]``."""
        return (
            f"input '{self.input_name}' float {_shape(self.input_shape)} -> "
            f"output '{self.output_name}' float {_shape(self.output_shape)}"
        )


def _fixed(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _io_text(items: Sequence[Any]) -> str:
    return ", ".join(f"'{i.name}' {i.type} {_shape(i.shape)}" for i in items) or "none"


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """``features.embedding.model`` as a path: ``~`` expanded, relative to the working
    directory (as ``data.root`` and ``features.cache_dir`` are)."""
    path = Path(model).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"the 'embedding' extractor needs onnxruntime, which is not installed; "
            f"install it with: {INSTALL}"
        ) from exc
    return onnxruntime


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, memoised per (path, size, mtime) once the file is two
    seconds old (a file rewritten within one timestamp tick keeps its mtime)."""
    stamp = _stamp(path)
    if time.time_ns() - stamp[2] < 2_000_000_000:
        return _sha256.__wrapped__(*stamp)
    return _sha256(*stamp)


def _signature(session: Any) -> ModelSignature:
    """The session's signature, or :class:`SignatureError` naming what the file declares."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = f"the file declares inputs {_io_text(inputs)}; outputs {_io_text(outputs)}"
    if len(inputs) != 1 or len(outputs) != 1:
        raise SignatureError(f"needs exactly one input and one output; {found}")
    x, out = inputs[0], outputs[0]
    if x.type != "tensor(float)" or out.type != "tensor(float)":
        raise SignatureError(f"input and output must be float tensors; {found}")
    # A channel axis may be named (dynamic) or 1; any other fixed size is not mono.
    channels_ok = len(x.shape) == 2 or (len(x.shape) == 3 and _fixed(x.shape[1]) in (1, None))
    if not channels_ok:
        raise SignatureError(f"the input must be [batch, samples] or [batch, 1, samples]; {found}")
    if len(out.shape) not in (2, 3):
        raise SignatureError(f"the output must be [batch, dim] or [batch, frames, dim]; {found}")
    return ModelSignature(x.name, tuple(x.shape), out.name, tuple(out.shape))


def _session(path: Path, threads: int) -> Any:
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle workers must not spin on the cores other workers are extracting on.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_signature(path: Path) -> ModelSignature:
    """Load ``path`` on one thread and read its signature.

    Raises:
        ImportError: onnxruntime is not installed (the message says how to install it).
        SignatureError: the model is not waveform in, embedding out.
        Exception: onnxruntime's own error for a file that is not a loadable model.
    """
    return _signature(_session(path, 1))


def threads_for(n_jobs: int) -> int:
    """Intra-op threads of one of ``n_jobs`` extraction processes (-1 or 0: all cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    workers = cores if n_jobs <= 0 else n_jobs
    return max(1, cores // max(1, workers))


def load_session(path: Path, threads: int) -> tuple[Any, ModelSignature]:
    """This process's session of ``path`` (created once per content, then reused) and its
    signature."""
    # Keyed by content: a rewritten file (even one keeping its size and mtime) or a forked
    # child gets a new session.
    key = (os.getpid(), str(path), file_sha256(path), threads)
    if key not in _SESSIONS:
        # Drop this process's stale session of a changed file. A session inherited through
        # fork stays referenced: destroying it would join thread-pool threads that do not
        # exist in the child, which hangs.
        for old in [k for k in _SESSIONS if k[0] == key[0] and k[1] == key[1]]:
            del _SESSIONS[old]
        session = _session(path, threads)
        _SESSIONS[key] = (session, _signature(session))
        if log := os.environ.get("AUDIOML_SESSION_LOG"):
            with open(log, "a") as handle:  # one short append: whole lines, many processes
                handle.write(f"{os.getpid()} {path.name} {threads}\n")
    return _SESSIONS[key]


def model_problem(path: Path, spec: EmbeddingSpec) -> str | None:
    """Why ``spec`` cannot run here (missing file, unloadable, wrong signature), or None.

    Messages start with the spec key they are about and say what to do.
    """
    key = "features.embedding.model"
    if not path.is_file():
        return f"{key}: no file at {path}; give the path of an ONNX model (see docs/embeddings.md)"
    try:
        signature = read_signature(path)
    except ImportError as exc:
        return f"{key}: {exc}"
    except SignatureError as exc:
        return f"{key}: {path.name} does not fit: {exc}; export one that does (docs/embeddings.md)"
    except Exception as exc:  # onnxruntime's error for a damaged or unsupported file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{key}: {path.name} is not a loadable ONNX model ({first})"
    samples = round(spec.window_s * spec.sample_rate)
    if signature.samples is not None and signature.samples != samples:
        return (
            f"features.embedding.window_s: {path.name} takes exactly {signature.samples} "
            f"samples ({signature.describe()}), but window_s {spec.window_s:g} s at "
            f"sample_rate {spec.sample_rate} is {samples}; set window_s to "
            f"{signature.samples / spec.sample_rate:g}"
        )
    return None


def model_check(features: FeaturesSpec) -> list[str]:
    """The ``embedding`` record's check: its settings are given, and the model file loads
    and fits them (onnxruntime imported, the model loaded once)."""
    spec = features.embedding
    if spec is None:
        return [
            format_error(
                "features.embedding.model", None,
                must="an ONNX file (waveform in, embedding out) for extractor 'embedding'",
                hint="see docs/embeddings.md",
            )
        ]  # fmt: skip
    problem = model_problem(resolve_model_path(spec.model), spec)
    return [] if problem is None else [problem]


def model_stamp(features: FeaturesSpec) -> dict[str, Any] | None:
    """The ``embedding`` record's stamp: :func:`cache_token` of its settings, or None when
    there are none (the check refuses that config)."""
    return None if features.embedding is None else cache_token(features.embedding)


def model_files(features: Mapping[str, Any]) -> dict[str, Path]:
    """The ``embedding`` record's files: its ONNX model, under ``embedding.model``."""
    if not features.get("embedding"):
        return {}
    return {"embedding.model": resolve_model_path(features["embedding"]["model"])}


def describe_model(path: Path) -> dict[str, str]:
    """The model's hash, file name, signature and size, as run parameters."""
    try:
        signature = read_signature(path).describe()
    except Exception as exc:  # logged, not raised: validation already refused such models
        signature = f"unreadable ({type(exc).__name__})"
    return {
        "sha256": file_sha256(path),
        "name": path.name,
        "signature": signature,
        "bytes": str(path.stat().st_size),
    }


def cache_token(spec: EmbeddingSpec) -> dict[str, Any]:
    """What of the embedding changes feature values: the file's content hash (not its path),
    the settings (not ``batch_size``) and the onnxruntime version."""
    try:
        runtime = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        runtime = None
    settings = spec.model_dump(mode="json", exclude={"model", "batch_size"})
    return {**settings, "sha256": file_sha256(resolve_model_path(spec.model)), "ort": runtime}
