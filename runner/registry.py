"""The one registry pattern of the runner's extension points (metrics, data sources,
samplers, pruners, model families, input kinds): :class:`features.registry.Registry`, which
raises :class:`runner.errors.RegistryError` here. The class lives in the feature engine so
that its extractors use the same pattern without importing the runner.
"""

from __future__ import annotations

from typing import TypeVar

from features.registry import Named
from features.registry import Registry as _Registry
from runner.errors import RegistryError

__all__ = ["Registry"]

T = TypeVar("T", bound=Named)


class Registry(_Registry[T]):
    """Records of one kind by name. ``kind`` names them in messages (``sampler``); ``key``
    is the spec key that selects one (``search.sampler``). Duplicate and unknown names raise
    :class:`RegistryError`."""

    error = RegistryError
