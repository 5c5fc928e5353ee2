"""Many decoded signals at once: batch-form extractors run once over all their segments.

:func:`extract_signals` gives each signal the rows :func:`features.extract_signal` would,
but an extractor with a batch form (``FeatureExtractor.batch``, e.g. ``embedding``) is
called once on the segments of every signal together, so a model runs the windows of many
clips in the same session runs. Every other extractor runs per segment as before.

Failures stay per signal: a signal that is unusable (:class:`FeatureError`) or whose
extraction raises comes back as its exception, and the others still get rows. A batch call
that raises is not retried as a batch: every signal then runs that extractor on its own
segments, so the error is raised by (and reported for) the clip that causes it, in the same
order of extractors as a clip-by-clip build. A batch form that returns a wrong number of
outputs is a bug of its own and raises :class:`ValueError` (no clip is to blame).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from features._registry import FEATURES, ensure_loaded
from features.config import FeaturesSpec, SegmentsSpec
from features.context import SpectralContext
from features.extract import Output, extract_contexts, signal_contexts

__all__ = ["Extracted", "batched_names", "extract_signals"]

#: One signal's rows and mel images, as :func:`features.extract_signal` returns them.
Extracted = tuple[pd.DataFrame, np.ndarray | None]


def batched_names(features: FeaturesSpec) -> list[str]:
    """The configured extractors that have a batch form, in spec order."""
    ensure_loaded()
    names = dict.fromkeys(features.extractors)
    return [name for name in names if FEATURES.get_record(name).batch is not None]


def _given(
    contexts: list[list[SpectralContext] | Exception], names: list[str]
) -> list[list[dict[str, Output]]]:
    """Per signal and segment, the outputs of the batch forms (missing where a batch failed)."""
    given: list[list[dict[str, Output]]] = [
        [{} for _ in c] if isinstance(c, list) else [] for c in contexts
    ]
    ok = {i: c for i, c in enumerate(contexts) if isinstance(c, list) and c}
    flat = [ctx for segments in ok.values() for ctx in segments]
    for name in names if flat else []:
        batch = FEATURES[name].batch
        if batch is None:
            continue
        try:
            outputs = list(batch(flat))
        except Exception:  # each clip runs the extractor alone and raises its own error
            continue
        if len(outputs) != len(flat):  # a bug in the batch form: no clip is to blame
            raise ValueError(
                f"the batch form of extractor '{name}' returned {len(outputs)} outputs for "
                f"{len(flat)} segments"
            )
        each = iter(outputs)
        for i in ok:
            for per_segment in given[i]:
                per_segment[name] = next(each)
    return given


def extract_signals(
    signals: Sequence[np.ndarray],
    sr: int,
    features: FeaturesSpec,
    segments: SegmentsSpec,
    *,
    on_each: Callable[[], None] | None = None,
) -> list[Extracted | Exception]:
    """:func:`features.extract_signal` of every signal, batch forms called once for all.

    Args:
        signals: mono signals at ``sr``.
        sr: their sample rate.
        features: which extractors and statistics.
        segments: how to cut each signal.
        on_each: called after each signal's rows are made (a worker's heartbeat).

    Returns:
        Per signal, in order: its rows and images, or the exception its extraction raised
        (a :class:`FeatureError` for an unusable signal).
    """
    contexts: list[list[SpectralContext] | Exception] = []
    for y in signals:
        try:
            contexts.append(signal_contexts(y, sr, features, segments))
        except Exception as exc:  # this signal alone; the ones beside it go on
            contexts.append(exc)
    given = _given(contexts, batched_names(features))
    out: list[Extracted | Exception] = []
    for i, item in enumerate(contexts):
        if isinstance(item, Exception):
            out.append(item)
            continue
        try:
            out.append(extract_contexts(item, features, given[i]))
        except Exception as exc:
            out.append(exc)
        given[i] = []  # the batch outputs of a finished signal are no longer needed
        if on_each is not None:
            on_each()
    return out
