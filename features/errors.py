"""The feature engine's one error: the engine stands alone and imports nothing of the runner.

The runner reports it like its own errors (``runner.errors.REPORTED``): the message names the
file, clip or key, and the command exits with ``exit_code``.
"""

from __future__ import annotations

__all__ = ["FeatureError"]


class FeatureError(ValueError):
    """A feature could not be computed or the feature table is unusable."""

    exit_code = 2
