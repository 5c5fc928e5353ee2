"""Checks that need no audio: everything a spec can get wrong that would otherwise fail later.

:func:`check_spec` runs inside :func:`runner.config.loading.load_spec`, the one place every
command loads a spec, so ``validate``, ``run``, ``features`` and ``worker`` stop before
touching audio or creating an MLflow run. What the data source lists (missing files, classes
too rare for the folds) is checked by ``runner.data.checks`` (``validate --check-data``).

Every message has the one shape of :func:`runner.errors.format_error`:
``<file>: <dotted.key>: <value> is not one of a, b`` or ``... <value> must be <expected>``.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import SpecError, format_error, in_file

if TYPE_CHECKING:
    from runner.config.spec import ExperimentSpec

__all__ = ["check_spec", "registry_name_problem"]

# What the MLflow Model Registry refuses (mlflow.utils.validation, MLflow 3).
_ALIAS = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")


def check_spec(spec: ExperimentSpec, *, source: str | Path) -> None:
    """Raise :class:`SpecError` listing every problem of ``spec`` found without audio.

    Args:
        spec: a spec that passed the schema.
        source: the spec file, named in every message.
    """
    problems = [*_spaces(spec), *_register(spec), *_finite(spec), *_features(spec), *_data(spec)]
    if problems:
        raise SpecError(in_file(source, problems))


def _spaces(spec: ExperimentSpec) -> Iterator[str]:
    """Every ``search.spaces`` entry: a known family of the search, and only narrowing."""
    from runner.models import MODELS, ensure_loaded, resolve_space

    ensure_loaded()
    for name, overrides in spec.search.spaces.items():
        key = f"search.spaces.{name}"
        if name not in MODELS or name not in spec.search.models:
            # A space of a family not searched would be silently ignored.
            yield format_error(
                key, name, one_of=spec.search.models, what="families of search.models"
            )
            continue
        try:
            resolve_space(MODELS[name], spec.task, overrides)
        except SpecError as exc:
            yield str(exc)


def registry_name_problem(name: str) -> str | None:
    """Why the MLflow Model Registry would refuse ``name`` as a model name, or None."""
    if not name.strip():
        return "an empty name"
    if "/" in name or ":" in name:
        return "a name with '/' or ':'"
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        return f"a name that resolves to another path ({norm!r})"
    return None


def _register(spec: ExperimentSpec) -> Iterator[str]:
    name = spec.model_name
    problem = registry_name_problem(name)
    if problem is not None:
        key = "register.model_name" if spec.register.model_name else "name"
        yield format_error(
            key, name, problem=f"is {problem}, which the MLflow Model Registry refuses",
            hint="use letters, digits, '-', '_' and '.'",
        )  # fmt: skip
    alias = spec.register.alias
    if not _ALIAS.match(alias) or alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        yield format_error(
            "register.alias", alias,
            problem="is reserved or refused by the MLflow Model Registry ('latest' and "
            "v<digits> name versions)",
            hint="use letters, digits, '-' and '_'",
        )  # fmt: skip


def _features(spec: ExperimentSpec) -> Iterator[str]:
    """Feature and segment settings that cannot work together."""
    f, seg = spec.features, spec.segments
    if f.hop_length > f.n_fft:
        yield format_error(
            "features.hop_length", f.hop_length, must=f"<= features.n_fft ({f.n_fft})",
            hint="a longer hop leaves samples between frames unanalysed",
        )  # fmt: skip
    bins = f.n_fft // 2 + 1
    if f.n_mels > bins:
        yield format_error(
            "features.n_mels", f.n_mels,
            must=f"<= {bins}, the FFT bins of features.n_fft {f.n_fft}",
            hint="more mel bands than bins leave bands empty",
        )  # fmt: skip
    if {"mfcc", "delta_mfcc"} & set(f.extractors) and f.mfcc.n_mfcc > f.n_mels:
        yield format_error(
            "features.mfcc.n_mfcc", f.mfcc.n_mfcc, must=f"<= features.n_mels ({f.n_mels})"
        )
    if seg.length_s is not None and seg.length_s * f.sample_rate < f.n_fft:
        yield format_error(
            "segments.length_s", seg.length_s,
            must=f">= {f.n_fft / f.sample_rate:.3g} s, one analysis frame (features.n_fft "
            f"{f.n_fft} at features.sample_rate {f.sample_rate})",
        )  # fmt: skip
    # Each configured extractor's own check (the embedding loads its model once: a missing,
    # damaged or misfitting file stops here).
    from features import settings_problems

    yield from settings_problems(f)


def _data(spec: ExperimentSpec) -> Iterator[str]:
    if spec.task == "regression" and spec.data.min_clips_per_class is not None:
        yield format_error(
            "data.min_clips_per_class", spec.data.min_clips_per_class,
            must="null for task 'regression' (dropping rare classes needs classification)",
        )  # fmt: skip
    if spec.data.allow_outside_root:
        return
    for key, name in (
        ("data.manifest", spec.data.manifest),
        ("data.audio_dir", spec.data.audio_dir),
    ):
        if name is not None and not _inside(spec, name):
            yield format_error(
                key, name, problem=f"is outside data.root '{spec.data.root}'",
                hint="name a path inside it, or set data.allow_outside_root: true",
            )  # fmt: skip


def _inside(spec: ExperimentSpec, name: str) -> bool:
    """Whether ``name`` (relative to data.root, or absolute) stays inside data.root, by its
    text: a spec must not read /etc/passwd because someone wrote ../../../../etc/passwd."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        norm = posixpath.normpath(path.as_posix())
        return norm != ".." and not norm.startswith("../")
    root = Path(posixpath.normpath(spec.data_root().absolute().as_posix()))
    return Path(posixpath.normpath(path.as_posix())).is_relative_to(root)


def _finite(spec: ExperimentSpec) -> Iterator[str]:
    """Seconds given as .inf pass ``gt=0`` and then overflow deep in extraction or timing."""
    seconds = {
        "segments.length_s": spec.segments.length_s,
        "segments.hop_s": spec.segments.hop_s,
        "features.max_duration_s": spec.features.max_duration_s,
        "features.clip_timeout_s": spec.features.clip_timeout_s,
        "search.timeout_s": spec.search.timeout_s,
    }
    for key, value in seconds.items():
        if value is not None and not math.isfinite(value):
            yield format_error(key, value, must="a finite number of seconds, or null")
