"""The error hierarchy of the runner: one place, built-in second bases (as in scikit-learn)."""

from __future__ import annotations

__all__ = [
    "DataError",
    "FeatureError",
    "RegistryError",
    "RunnerError",
    "SpecError",
    "TrialFailed",
    "TrialSkipped",
]


class RunnerError(Exception):
    """Base class of every error the runner reports to the user without a traceback."""

    exit_code = 1


class SpecError(RunnerError, ValueError):
    """The experiment spec is invalid: names the file and the dotted key."""

    exit_code = 2


class DataError(RunnerError, ValueError):
    """The data a spec names is missing or unusable (file, column, too few clips)."""

    exit_code = 2


class FeatureError(RunnerError, ValueError):
    """A feature could not be computed or the feature table is unusable."""

    exit_code = 2


class RegistryError(RunnerError, KeyError):
    """An unknown or unsuitable name in a registry (model family, feature extractor)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class TrialFailed(RunnerError):
    """A trial could not be evaluated (e.g. a degenerate fold); the study goes on."""


class TrialSkipped(TrialFailed):
    """A trial not run at all (its model family was dropped); it does not count as a trial."""
