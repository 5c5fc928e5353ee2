"""Per-signal feature extraction: the one code path shared by the table and served models.

:func:`extract_signal` segments a decoded signal, builds one :class:`SpectralContext` per
segment, runs the configured extractors in ``features.extractors`` order and summarises frame
outputs with ``features.stats``.

Column names (grouped by extractor, in the spec's extractor order):

* single-row extractors (``(n_frames,)``): ``<name>_<stat>``, e.g. ``zcr_mean``;
* multi-row extractors (``(n_rows, n_frames)``): ``<name>_<row>_<stat>`` with a two-digit
  **0-based** row index, e.g. ``mfcc_00_mean`` (c0) or ``chroma_00_std`` (pitch class C);
* scalar extractors (a mapping): ``<name>_<key>``, e.g. ``tempo_bpm``, not summarised;
* with ``features.beat_level``, after all of those: ``beat_count`` (beats tracked in the
  segment) and, for every frame-level extractor, ``beat_<column>``: its frames averaged
  within each beat interval (``features.beat.sync_frames``), then the same statistics
  across the beat intervals, e.g. ``beat_mfcc_00_std`` (how c0 varies from beat to beat).
  A segment with fewer than :data:`MIN_BEATS` beats has no beat structure to summarise; its
  ``beat_*`` columns take the clip-level values (``beat_mfcc_00_std = mfcc_00_std``) and the
  build summary counts such clips (``few_beats``). All ``beat_*`` columns form one group,
  ``beat``, so feature-group search can keep or drop the beat level as a whole.

Values are float64 and finite: NaN and +/-inf become 0.0, both in the frames before the
statistics and in the statistics (e.g. an extractor that is undefined on a silent frame).

BLAS runs on one thread during extraction, so values do not depend on the machine's thread
settings (librosa's chroma uses a BLAS product whose rounding changes with the thread count);
parallelism comes from processes. Idle OpenBLAS threads would also spin and burn CPU.

Refused signals (:class:`FeatureError`): not 1-D, non-finite samples, digital silence (peak
amplitude at most 2**-24, below one 24-bit step), or any segment shorter than ``n_fft``
samples (one frame).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from functools import cache, lru_cache

import librosa
import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from features._registry import FEATURES, ensure_loaded, stamps
from features.beat import sync_frames
from features.config import FeaturesSpec, SegmentsSpec
from features.context import SpectralContext
from features.errors import FeatureError
from features.mel import fit_mel_image
from features.segments import segment_signal
from features.stats import summarise

__all__ = [
    "BEAT_GROUP",
    "MIN_BEATS",
    "SILENCE_PEAK",
    "extract_contexts",
    "extract_signal",
    "feature_layout",
    "few_beats",
    "signal_contexts",
]

SILENCE_PEAK = 2.0**-24
#: Beats a segment needs for beat-level statistics (3 full beat intervals).
MIN_BEATS = 4
BEAT_GROUP = "beat"
Output = np.ndarray | Mapping[str, float]


@cache
def _blas() -> ThreadpoolController:
    """The BLAS thread-pool controller (scanning the loaded libraries once is the slow part)."""
    return ThreadpoolController()


def _check_signal(y: np.ndarray, sr: int, features: FeaturesSpec) -> np.ndarray:
    """Validate ``y`` and bring it to ``features.sample_rate``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise FeatureError(f"expected a mono 1-D signal, got shape {y.shape}")
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise FeatureError("non-finite samples (NaN or inf)")
    if sr != features.sample_rate:
        y = librosa.resample(y, orig_sr=sr, target_sr=features.sample_rate, res_type="soxr_hq")
    if len(y) < features.n_fft:
        raise FeatureError(
            f"shorter than one frame: {len(y)} samples < n_fft={features.n_fft} "
            f"({len(y) / features.sample_rate:.3f} s)"
        )
    if float(np.max(np.abs(y))) <= SILENCE_PEAK:
        raise FeatureError("digital silence (all samples zero)")
    return y


def _summarise_frames(
    name: str, frames: np.ndarray, stats: list[str]
) -> tuple[list[str], np.ndarray]:
    """Column names and statistics of frame output ``(n_frames,)`` or ``(n_rows, n_frames)``."""
    single = frames.ndim == 1
    frames = np.nan_to_num(np.atleast_2d(frames), nan=0.0, posinf=0.0, neginf=0.0)
    table = np.nan_to_num(summarise(frames, stats), nan=0.0, posinf=0.0, neginf=0.0)
    if single:
        names = [f"{name}_{stat}" for stat in stats]
    else:
        names = [f"{name}_{row:02d}_{stat}" for row in range(len(frames)) for stat in stats]
    return names, table.ravel()


def _frames_of(name: str, output: np.ndarray | Mapping[str, float]) -> np.ndarray | None:
    """The float64 frames of a frame-level output, None for a scalar (mapping) output."""
    if isinstance(output, Mapping):
        return None
    frames = np.asarray(output, dtype=np.float64)
    if frames.ndim not in (1, 2) or frames.shape[-1] == 0:
        raise FeatureError(f"extractor '{name}' returned shape {frames.shape}")
    return frames


def _summarise_output(
    name: str, output: np.ndarray | Mapping[str, float], stats: list[str]
) -> tuple[list[str], np.ndarray]:
    """Column names and float64 values for one extractor's output on one segment."""
    frames = _frames_of(name, output)
    if frames is None:
        names = [f"{name}_{key}" for key in output]
        values = np.array([float(v) for v in output.values()], dtype=np.float64)
        return names, np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return _summarise_frames(name, frames, stats)


def _extract_segment(
    ctx: SpectralContext, features: FeaturesSpec, given: Mapping[str, Output] | None = None
) -> tuple[dict[str, list[str]], list[np.ndarray]]:
    """Run every configured extractor on one segment's context: groups and values.

    ``given`` holds outputs already computed for this segment (by a batch form), by name.
    """
    groups: dict[str, list[str]] = {}
    parts: list[np.ndarray] = []
    stats = list(features.stats)
    beat_names: list[str] = []
    beat_parts: list[np.ndarray] = []
    beats = ctx.beats[1] if features.beat_level else None
    for name in features.extractors:
        output = given[name] if given and name in given else FEATURES.get_record(name)(ctx)
        cols, values = _summarise_output(name, output, stats)
        groups[name] = cols
        parts.append(values)
        frames = _frames_of(name, output) if beats is not None else None
        if frames is None:
            continue
        if len(beats) >= MIN_BEATS:
            _, values = _summarise_frames(name, sync_frames(frames, beats), stats)
        beat_names.extend(f"{BEAT_GROUP}_{col}" for col in cols)
        beat_parts.append(values)  # too few beats: the clip-level values
    if beats is not None:
        groups[BEAT_GROUP] = [f"{BEAT_GROUP}_count", *beat_names]
        parts.extend([np.array([float(len(beats))]), *beat_parts])
    return groups, parts


def few_beats(frame: pd.DataFrame) -> int:
    """Clips of a feature table with a segment below :data:`MIN_BEATS` beats (0 when the
    table has no beat level)."""
    column = f"{BEAT_GROUP}_count"
    if column not in frame.columns or frame.empty:
        return 0
    return int(frame.loc[frame[column] < MIN_BEATS, "clip_id"].nunique())


def extract_signal(
    y: np.ndarray, sr: int, features: FeaturesSpec, segments: SegmentsSpec
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Extract the feature rows (and mel images) of one decoded signal.

    Args:
        y: mono signal; resampled once to ``features.sample_rate`` when ``sr`` differs.
        sr: its sample rate.
        features: which extractors and statistics.
        segments: how to cut the signal.

    Returns:
        A DataFrame with one row per segment and exactly the feature columns (float64), and
        float32 mel images ``(n_segments, n_mels, mel_image_frames)`` or None when
        ``features.mel_image`` is false.

    Raises:
        FeatureError: the signal is unusable (see the module docstring).
    """
    return extract_contexts(signal_contexts(y, sr, features, segments), features)


def signal_contexts(
    y: np.ndarray, sr: int, features: FeaturesSpec, segments: SegmentsSpec
) -> list[SpectralContext]:
    """The checked signal's segments, one (lazy) :class:`SpectralContext` each.

    Raises:
        FeatureError: the signal is unusable (see the module docstring).
    """
    ensure_loaded()
    y = _check_signal(y, sr, features)
    contexts = []
    for segment in segment_signal(y, features.sample_rate, segments):
        if len(segment) < features.n_fft:
            raise FeatureError(f"segment shorter than one frame (n_fft={features.n_fft})")
        contexts.append(SpectralContext.from_spec(segment, features.sample_rate, features))
    return contexts


def extract_contexts(
    contexts: list[SpectralContext],
    features: FeaturesSpec,
    given: list[dict[str, Output]] | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """:func:`extract_signal` on a signal's :func:`signal_contexts`, with ``given[i]`` the
    outputs already computed for segment ``i`` (by name). Empties ``contexts`` as it goes, so
    each segment's spectra are freed once its row is made."""
    names: list[str] = []
    rows: list[np.ndarray] = []
    images: list[np.ndarray] = []
    queue = deque(contexts)
    contexts.clear()
    with _blas().limit(limits=1, user_api="blas"):
        for i in range(len(queue)):
            ctx = queue.popleft()
            groups, parts = _extract_segment(ctx, features, given[i] if given else None)
            names = [col for cols in groups.values() for col in cols]
            rows.append(np.concatenate(parts))
            if features.mel_image:
                images.append(fit_mel_image(ctx.mel_db, features.mel_image_frames))
    frame = pd.DataFrame(np.vstack(rows), columns=names)
    return frame, (np.stack(images) if features.mel_image else None)


def feature_layout(features: FeaturesSpec) -> tuple[list[str], dict[str, list[str]]]:
    """The feature columns and the extractor -> columns groups of a feature config.

    Found by extracting a fixed 1 s probe signal, so it always agrees with
    :func:`extract_signal` (e.g. spectral contrast has fewer bands at low sample rates).
    """
    columns, groups = _layout(features.model_dump_json(), _stamps_json(features))
    return list(columns), {name: list(cols) for name, cols in groups.items()}


def _stamps_json(features: FeaturesSpec) -> str | None:
    """The extractors' stamps as one string, part of the memoised layout's key: a new model
    file at the same path may have another embedding size, so the layout must not outlive it."""
    found = stamps(features)
    return json.dumps(found, sort_keys=True) if found else None


@lru_cache(maxsize=32)
def _layout(
    spec_json: str, stamps_json: str | None = None
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    ensure_loaded()
    features = FeaturesSpec.model_validate(json.loads(spec_json))
    n = max(features.sample_rate, 2 * features.n_fft)
    probe = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    ctx = SpectralContext.from_spec(probe, features.sample_rate, features)
    with _blas().limit(limits=1, user_api="blas"):
        groups, _ = _extract_segment(ctx, features)
    frozen = {name: tuple(cols) for name, cols in groups.items()}
    return tuple(c for cols in frozen.values() for c in cols), frozen
