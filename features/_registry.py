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

A record also answers for its settings, so that no module tests an extractor's name: its
``stamp`` (what beyond the code version changes its values, such as a model file's digest:
part of the feature-cache key, :func:`stamps`) and its ``check`` (problems with its settings,
reported by ``audioml validate``, :func:`settings_problems`). Validation reads the records
of run-time extractors and of the built-ins marked ``light``, whose module imports no heavy
library; the other built-ins have neither hook.

A new built-in extractor is one module plus one :data:`BUILTIN` line.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from features.errors import FeatureError, format_error
from features.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from features.config import FeaturesSpec
    from features.context import SpectralContext

__all__ = [
    "ALL_EXTRACTORS",
    "BUILTIN",
    "FEATURES",
    "MODEL_EXTRACTORS",
    "VOICE_EXTRACTORS",
    "BatchExtractor",
    "Builtin",
    "Check",
    "Extractor",
    "ExtractorOutput",
    "FeatureExtractor",
    "Requirement",
    "Stamp",
    "adopt",
    "describe_file",
    "ensure_loaded",
    "extractor_files",
    "file_artifact",
    "known_extractors",
    "missing_requirement",
    "plugins",
    "records",
    "register_batched",
    "register_feature",
    "settings_problems",
    "stamps",
]

#: What an extractor returns: frames shaped ``(n_frames,)`` or ``(n_rows, n_frames)``, which
#: the table code summarises (mean, std, ...), or a mapping ``{suffix: value}`` of scalars
#: per segment that become columns ``<name>_<suffix>`` as they are (e.g. ``tempo_bpm``).
ExtractorOutput = "np.ndarray | Mapping[str, float]"
Extractor = Callable[["SpectralContext"], "np.ndarray | Mapping[str, float]"]
#: The batch form of an extractor: contexts of many segments (of many clips) to one output
#: per context, in order, each equal (to float rounding) to the extractor's on that context.
BatchExtractor = Callable[[Sequence["SpectralContext"]], "list[np.ndarray | Mapping[str, float]]"]
#: What beyond the code version changes an extractor's values under a feature config, as
#: JSON (a model file's digest, its settings), or None when nothing does.
Stamp = Callable[["FeaturesSpec"], "str | Mapping[str, Any] | None"]
#: The problems with an extractor's settings under a feature config, each one message in
#: ``features.errors.format_error``'s format; empty when it can run.
Check = Callable[["FeaturesSpec"], "list[str]"]
#: The files an extractor reads beyond the audio (a model), from a features config's JSON
#: dump (as a spec or a logged model holds it): the settings key under ``features.`` that
#: names each (``embedding.model``) -> its path. The run logs what the record's ``describe``
#: says of each file, and the served model carries a copy (artifact: the key, dots as
#: underscores) that serving puts back under that key.
Files = Callable[[Mapping[str, Any]], "Mapping[str, Path]"]


@dataclass(frozen=True)
class Requirement:
    """An optional package an extractor needs: its import name and how to install it."""

    package: str
    distribution: str
    install: str


class Builtin(NamedTuple):
    """A built-in extractor's declaration, read without importing its module.

    Attributes:
        module: the module that registers it.
        requirement: the optional package it needs, or None.
        light: its module imports no heavy library (librosa, scipy), so validation imports
            it to ask the record's ``check``; a record with settings to check must be light.
    """

    module: str
    requirement: Requirement | None = None
    light: bool = False


_VOICE = 'pip install "audioml[voice]"'
_EMBEDDINGS = 'pip install "audioml[embeddings]"'

#: name -> declaration, in the column order of a table that uses them all.
BUILTIN: dict[str, Builtin] = {
    "mfcc": Builtin("features.extractors.cepstral"),
    "delta_mfcc": Builtin("features.extractors.cepstral"),
    "zcr": Builtin("features.extractors.temporal"),
    "spectral_contrast": Builtin("features.extractors.spectral"),
    "chroma": Builtin("features.extractors.tonal"),
    "rms": Builtin("features.extractors.temporal"),
    "rolloff": Builtin("features.extractors.spectral"),
    "bandwidth": Builtin("features.extractors.spectral"),
    "centroid": Builtin("features.extractors.spectral"),
    "flatness": Builtin("features.extractors.spectral"),
    "hnr": Builtin("features.extractors.harmonic"),
    "tempo": Builtin("features.extractors.rhythm"),
    "mel": Builtin("features.extractors.mel_bands"),
    "pitch": Builtin("features.extractors.pitch"),
    "hpss": Builtin("features.extractors.hpss"),
    "tonnetz": Builtin("features.extractors.tonal"),
    "onset": Builtin("features.extractors.rhythm"),
    "praat": Builtin(
        "features.extractors.voice", Requirement("parselmouth", "praat-parselmouth", _VOICE)
    ),
    "egemaps": Builtin("features.extractors.voice", Requirement("opensmile", "opensmile", _VOICE)),
    # A pretrained network the user brings as an ONNX file (features.embedding).
    "embedding": Builtin(
        "features.extractors.embedding",
        Requirement("onnxruntime", "onnxruntime", _EMBEDDINGS),
        light=True,
    ),
}

#: The built-in extractors of the default install, in table column order.
ALL_EXTRACTORS: tuple[str, ...] = tuple(n for n, b in BUILTIN.items() if b.requirement is None)
#: The field-standard voice sets behind the ``voice`` extra.
VOICE_EXTRACTORS: tuple[str, ...] = tuple(
    n for n, b in BUILTIN.items() if b.requirement and b.requirement.install == _VOICE
)
#: Extractors that run a model file the user supplies (``features.embedding``).
MODEL_EXTRACTORS: tuple[str, ...] = tuple(
    n for n, b in BUILTIN.items() if b.requirement and b.requirement.install == _EMBEDDINGS
)


def _no_stamp(features: FeaturesSpec) -> None:
    return None


def _no_problems(features: FeaturesSpec) -> list[str]:
    return []


def _no_files(features: Mapping[str, Any]) -> Mapping[str, Path]:
    return {}


def describe_file(path: Path) -> dict[str, str]:
    """A file as run parameters: its content hash, name and size."""
    from features.onnx_model import file_sha256  # the memoised hash the cache key uses

    return {"sha256": file_sha256(path), "name": path.name, "bytes": str(path.stat().st_size)}


@dataclass(frozen=True)
class FeatureExtractor:
    """A registered extractor: called like its function, so ``FEATURES[name](ctx)`` runs it.

    Attributes:
        name: the name in ``features.extractors`` and the prefix of its columns.
        extract: the extractor, one segment's context to its frames or scalars.
        batch: its batch form, or None (see :data:`BatchExtractor`).
        stamp: what beyond the code version changes its values (see :data:`Stamp`); it
            enters the feature-cache key, so a changed stamp rebuilds.
        check: the problems with its settings (see :data:`Check`), which ``audioml
            validate`` reports; it may read files but must not import heavy libraries.
        files: the files it reads beyond the audio (see :data:`Files`).
        describe: a file of ``files`` as run parameters (name -> value).
    """

    name: str
    extract: Extractor
    batch: BatchExtractor | None = None
    stamp: Stamp = _no_stamp
    check: Check = _no_problems
    files: Files = _no_files
    describe: Callable[[Path], Mapping[str, str]] = describe_file

    def __call__(self, ctx: SpectralContext) -> np.ndarray | Mapping[str, float]:
        return self.extract(ctx)


#: Every registered extractor by name, in registration order.
FEATURES: Registry[FeatureExtractor] = Registry(
    "extractor", "features.extractors", error=FeatureError
)


def register_feature(
    name: str,
    *,
    batch: BatchExtractor | None = None,
    stamp: Stamp | None = None,
    check: Check | None = None,
    files: Files | None = None,
    describe: Callable[[Path], Mapping[str, str]] | None = None,
) -> Callable[[Extractor], Extractor]:
    """Register the decorated function as extractor ``name`` (with its batch form, stamp,
    check, files and their description, if any); returns the function unchanged. Duplicate
    names are refused (FeatureError).

    ``batch(contexts)`` must return what the extractor returns on each context, in order.
    """

    def decorator(fn: Extractor) -> Extractor:
        FEATURES.register(
            FeatureExtractor(
                name, fn, batch, stamp or _no_stamp, check or _no_problems, files or _no_files,
                describe or describe_file,
            )
        )  # fmt: skip
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
            raise FeatureError(
                format_error("extractor", name, problem="already has a batch form registered")
            )
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


def records(names: Sequence[str]) -> list[FeatureExtractor]:
    """The records of ``names`` that validation may read: those registered, and the light
    built-ins (their modules imported here); heavy built-ins check no settings."""
    for name in names:
        builtin = BUILTIN.get(name)
        if name not in FEATURES and builtin is not None and builtin.light:
            importlib.import_module(builtin.module)
    return [FEATURES[name] for name in dict.fromkeys(names) if name in FEATURES]


def extractor_files(features: Mapping[str, Any]) -> dict[str, tuple[Path, FeatureExtractor]]:
    """The files the configured extractors of a features config's JSON dump read: settings
    key -> (path, the extractor's record); see :data:`Files`."""
    return {
        key: (path, record)
        for record in records(features.get("extractors", []))
        for key, path in record.files(features).items()
    }


def file_artifact(key: str) -> str:
    """The served model's artifact holding the file of settings ``key`` (``embedding.model``
    -> ``embedding_model``, the name models logged before this hook carry too)."""
    return key.replace(".", "_")


def settings_problems(features: FeaturesSpec) -> list[str]:
    """Every problem the ``check`` of a configured extractor finds, in extractor order."""
    return [
        problem for record in records(features.extractors) for problem in record.check(features)
    ]


def stamps(features: FeaturesSpec) -> dict[str, str | Mapping[str, Any]]:
    """Extractor name -> stamp, for the configured extractors whose stamp is not None.

    Loads every built-in (the stamps key extraction's results, which needs them anyway).
    """
    ensure_loaded()
    found = {name: FEATURES.get_record(name).stamp(features) for name in features.extractors}
    return {name: stamp for name, stamp in found.items() if stamp is not None}


def missing_requirement(name: str) -> str | None:
    """Why extractor ``name`` cannot run here (its optional package is absent), or None.

    Uses ``importlib.util.find_spec``: the package is located, not imported.
    """
    builtin = BUILTIN.get(name)
    requirement = builtin.requirement if builtin is not None else None
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
    for module in dict.fromkeys(builtin.module for builtin in BUILTIN.values()):
        importlib.import_module(module)
