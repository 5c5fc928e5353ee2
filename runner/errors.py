"""The error hierarchy of the runner: one place, built-in second bases (as in scikit-learn).

``FeatureError`` and the one message format (:func:`format_error`) live in ``features.errors``,
which the feature engine uses without the runner, and are re-exported here."""

from __future__ import annotations

from features.errors import FeatureError, format_error, in_file, shown

__all__ = [
    "REPORTED",
    "DataError",
    "FeatureError",
    "RegistryError",
    "RunnerError",
    "SpecError",
    "TrialFailed",
    "TrialSkipped",
    "format_error",
    "in_file",
    "shown",
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


class RegistryError(RunnerError, KeyError):
    """An unknown or unsuitable name in a registry (model family, feature extractor)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class TrialFailed(RunnerError):
    """A trial could not be evaluated (e.g. a degenerate fold); the study goes on."""


class TrialSkipped(TrialFailed):
    """A trial not run at all (its model family was dropped); it does not count as a trial."""


#: What a command reports as a message and an exit code instead of a traceback: the runner's
#: errors and the feature engine's (which stands alone, so it is no RunnerError).
REPORTED = (RunnerError, FeatureError)
