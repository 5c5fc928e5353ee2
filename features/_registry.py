"""The feature-extractor registry: plain functions of a shared SpectralContext."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from features.context import SpectralContext

__all__ = ["FEATURES", "Extractor", "ExtractorOutput", "ensure_loaded", "register_feature"]

#: What an extractor returns: frames shaped ``(n_frames,)`` or ``(n_rows, n_frames)``, which
#: the table code summarises (mean, std, ...), or a mapping ``{suffix: value}`` of scalars
#: per segment that become columns ``<name>_<suffix>`` as they are (e.g. ``tempo_bpm``).
ExtractorOutput = np.ndarray | Mapping[str, float]
Extractor = Callable[["SpectralContext"], ExtractorOutput]

#: name -> extractor, in registration order.
FEATURES: dict[str, Extractor] = {}


def register_feature(name: str) -> Callable[[Extractor], Extractor]:
    """Register ``fn`` under ``name``; returns it unchanged. Duplicate names are refused."""

    def decorator(fn: Extractor) -> Extractor:
        if name in FEATURES:
            raise ValueError(f"Feature extractor '{name}' is registered twice.")
        FEATURES[name] = fn
        return fn

    return decorator


def ensure_loaded() -> None:
    """Import the modules that register the built-in extractors."""
    import features.extractors  # noqa: F401
