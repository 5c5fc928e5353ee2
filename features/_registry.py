"""The feature-extractor registry: functions of a shared SpectralContext, one record each.

Two halves, so that validating a spec stays cheap:

* :data:`BUILTIN` declares every built-in extractor's name, the module that registers it and
  the optional package it needs (with the install command). Reading it imports nothing: spec
  validation checks names and requirements here (``importlib.util.find_spec``, which locates
  a package without importing it), never librosa or the extractor modules.
* :data:`FEATURES` holds a :class:`FeatureExtractor` record per name (a
  :class:`features.registry.Registry`, the pattern of every extension point), filled by
  :func:`register_feature` when the extractor modules are imported (:func:`ensure_loaded`).
  Third-party extractors register the same way and are known to validation once their module
  is imported. A record may carry its extractor's batch form: one call on the segments of
  many clips, for extractors with a fixed cost per call, such as running a model. The build
  hands it every segment of a worker's clips at once (``features.batch``); extractors
  without one need nothing.

A new built-in extractor is one module plus one :data:`BUILTIN` line.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from features.errors import FeatureError
from features.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from features.context import SpectralContext

__all__ = [
    "ALL_EXTRACTORS",
    "BUILTIN",
    "FEATURES",
    "MODEL_EXTRACTORS",
    "VOICE_EXTRACTORS",
    "BatchExtractor",
    "Extractor",
    "ExtractorOutput",
    "FeatureExtractor",
    "Requirement",
    "adopt",
    "ensure_loaded",
    "known_extractors",
    "missing_requirement",
    "plugins",
    "register_batched",
    "register_feature",
]

#: What an extractor returns: frames shaped ``(n_frames,)`` or ``(n_rows, n_frames)``, which
#: the table code summarises (mean, std, ...), or a mapping ``{suffix: value}`` of scalars
#: per segment that become columns ``<name>_<suffix>`` as they are (e.g. ``tempo_bpm``).
ExtractorOutput = "np.ndarray | Mapping[str, float]"
Extractor = Callable[["SpectralContext"], "np.ndarray | Mapping[str, float]"]
#: The batch form of an extractor: contexts of many segments (of many clips) to one output
#: per context, in order, each equal (to float rounding) to the extractor's on that context.
BatchExtractor = Callable[[Sequence["SpectralContext"]], "list[np.ndarray | Mapping[str, float]]"]


@dataclass(frozen=True)
class Requirement:
    """An optional package an extractor needs: its import name and how to install it."""

    package: str
    distribution: str
    install: str


_VOICE = 'pip install "audioml[voice]"'
_EMBEDDINGS = 'pip install "audioml[embeddings]"'

#: name -> (registering module, optional requirement), in the column order of a table that
#: uses them all.
BUILTIN: dict[str, tuple[str, Requirement | None]] = {
    "mfcc": ("features.extractors.cepstral", None),
    "delta_mfcc": ("features.extractors.cepstral", None),
    "zcr": ("features.extractors.temporal", None),
    "spectral_contrast": ("features.extractors.spectral", None),
    "chroma": ("features.extractors.tonal", None),
    "rms": ("features.extractors.temporal", None),
    "rolloff": ("features.extractors.spectral", None),
    "bandwidth": ("features.extractors.spectral", None),
    "centroid": ("features.extractors.spectral", None),
    "flatness": ("features.extractors.spectral", None),
    "hnr": ("features.extractors.harmonic", None),
    "tempo": ("features.extractors.rhythm", None),
    "mel": ("features.extractors.mel_bands", None),
    "pitch": ("features.extractors.pitch", None),
    "hpss": ("features.extractors.hpss", None),
    "tonnetz": ("features.extractors.tonal", None),
    "onset": ("features.extractors.rhythm", None),
    "praat": (
        "features.extractors.voice",
        Requirement("parselmouth", "praat-parselmouth", _VOICE),
    ),
    "egemaps": ("features.extractors.voice", Requirement("opensmile", "opensmile", _VOICE)),
    # A pretrained network the user brings as an ONNX file (features.embedding).
    "embedding": (
        "features.extractors.embedding",
        Requirement("onnxruntime", "onnxruntime", _EMBEDDINGS),
    ),
}

#: The built-in extractors of the default install, in table column order.
ALL_EXTRACTORS: tuple[str, ...] = tuple(n for n, (_, req) in BUILTIN.items() if req is None)
#: The field-standard voice sets behind the ``voice`` extra.
VOICE_EXTRACTORS: tuple[str, ...] = tuple(
    n for n, (_, req) in BUILTIN.items() if req and req.install == _VOICE
)
#: Extractors that run a model file the user supplies (``features.embedding``).
MODEL_EXTRACTORS: tuple[str, ...] = tuple(
    n for n, (_, req) in BUILTIN.items() if req and req.install == _EMBEDDINGS
)


@dataclass(frozen=True)
class FeatureExtractor:
    """A registered extractor: called like its function, so ``FEATURES[name](ctx)`` runs it.

    Attributes:
        name: the name in ``features.extractors`` and the prefix of its columns.
        extract: the extractor, one segment's context to its frames or scalars.
        batch: its batch form, or None (see :data:`BatchExtractor`).
    """

    name: str
    extract: Extractor
    batch: BatchExtractor | None = None

    def __call__(self, ctx: SpectralContext) -> np.ndarray | Mapping[str, float]:
        return self.extract(ctx)


#: Every registered extractor by name, in registration order.
FEATURES: Registry[FeatureExtractor] = Registry(
    "extractor", "features.extractors", error=FeatureError
)


def register_feature(
    name: str, *, batch: BatchExtractor | None = None
) -> Callable[[Extractor], Extractor]:
    """Register the decorated function as extractor ``name`` (with its batch form ``batch``,
    if any); returns the function unchanged. Duplicate names are refused (FeatureError).

    ``batch(contexts)`` must return what the extractor returns on each context, in order.
    """

    def decorator(fn: Extractor) -> Extractor:
        FEATURES.register(FeatureExtractor(name, fn, batch))
        return fn

    return decorator


def register_batched(name: str) -> Callable[[BatchExtractor], BatchExtractor]:
    """Give the registered extractor ``name`` its batch form; returns it unchanged.

    Prefer ``register_feature(name, batch=...)``; this is for a batch form defined after its
    extractor. A second batch form of one extractor is refused.
    """

    def decorator(fn: BatchExtractor) -> BatchExtractor:
        record = FEATURES.get_record(name)
        if record.batch is not None:
            raise FeatureError(f"the batch form of extractor '{name}' is already registered")
        FEATURES[name] = replace(record, batch=fn)
        return fn

    return decorator


def known_extractors() -> list[str]:
    """Every extractor name a spec may use: the built-ins and any registered at run time."""
    return [*BUILTIN, *(name for name in FEATURES if name not in BUILTIN)]


def plugins(names: Sequence[str]) -> tuple[FeatureExtractor, ...]:
    """The records of ``names`` registered at run time rather than built in.

    Worker processes started from a clean server (``features._worker``) import the built-in
    modules only; these records travel with the job (their functions pickled by reference)
    and are registered there again.
    """
    return tuple(FEATURES[n] for n in dict.fromkeys(names) if n not in BUILTIN and n in FEATURES)


def adopt(records: Sequence[FeatureExtractor]) -> None:
    """Register ``records`` (:func:`plugins` of another process) where still unknown."""
    for record in records:
        if record.name not in FEATURES:
            FEATURES.register(record)


def missing_requirement(name: str) -> str | None:
    """Why extractor ``name`` cannot run here (its optional package is absent), or None.

    Uses ``importlib.util.find_spec``: the package is located, not imported.
    """
    requirement = BUILTIN.get(name, ("", None))[1]
    if requirement is None:
        return None
    try:
        if importlib.util.find_spec(requirement.package) is not None:
            return None
    except (ImportError, ValueError):  # a broken install counts as absent
        pass
    return (
        f"extractor '{name}' needs the {requirement.distribution} package, which is not "
        f"installed; install it with: {requirement.install}"
    )


def ensure_loaded() -> None:
    """Import the modules that register the built-in extractors."""
    for module in dict.fromkeys(module for module, _ in BUILTIN.values()):
        importlib.import_module(module)
