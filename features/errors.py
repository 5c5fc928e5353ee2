"""The feature engine's one error, and the one message format of the whole project.

The engine stands alone and imports nothing of the runner; the runner reports ``FeatureError``
like its own errors (``runner.errors.REPORTED``) and re-exports :func:`format_error`, so that
a spec, a registry, the feature engine and the command line word bad input alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["FeatureError", "format_error", "in_file", "shown"]

#: Longest value repr a message shows (a 5000-character name is shown by its start).
_MAX_SHOWN = 60


class FeatureError(ValueError):
    """A feature could not be computed or the feature table is unusable."""

    exit_code = 2


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


def shown(value: object) -> str:
    """``value`` as a message shows it: YAML's words for booleans and null, else its repr
    (strings quoted, as scikit-learn does), cut to a readable length. A path is shown whole
    and quoted like a string: its end names the file."""
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if value is None or isinstance(value, bool):
        text = {None: "null", True: "true", False: "false"}[value]
    else:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def format_error(
    key: str,
    value: object = _UNSET,
    *,
    one_of: Iterable[object] | None = None,
    what: str | None = None,
    must: str | None = None,
    problem: str | None = None,
    hint: str | None = None,
    file: str | os.PathLike[str] | None = None,
) -> str:
    """The one error message: ``[file: ]key: value <is not one of | must be | problem>[; hint]``.

    Modelled on scikit-learn's parameter validation: what was given, where, and what is
    expected, e.g. ``experiments/genre.yaml: search.sampler: 'tpee' is not one of tpe,
    random, cmaes, gp`` or ``features.n_mels: 0 must be an int >= 8``.

    Args:
        key: the dotted spec key (``search.sampler``), or the name of what is looked up
            (``model family``) where there is no key.
        value: the value given (omitted when there is none, e.g. a missing key).
        one_of: the allowed values, for an unknown name.
        what: what the allowed values are (``keys of search``), shown before them.
        must: what is expected (``an int >= 8``), for a value of the wrong kind or range.
        problem: what is wrong in words, when neither ``one_of`` nor ``must`` says it.
        hint: what to do about it (an install command, another key to set).
        file: the spec or data file the key is in.

    Returns:
        The message, one line.
    """
    subject = "" if value is _UNSET else shown(value) + " "
    if one_of is not None:
        choices = ", ".join(str(c) for c in one_of)
        body = f"{subject}is not one of " + (f"the {what}: {choices}" if what else choices)
    elif must is not None:
        body = f"{subject}must be {must}"
    elif problem is not None:
        body = f"{subject}{problem}"
    else:
        raise TypeError("format_error needs one of one_of, must or problem")
    head = f"{key}: " if key else ""
    where = f"{os.fspath(file)}: " if file is not None else ""
    return f"{where}{head}{body}" + (f"; {hint}" if hint else "")


def in_file(file: str | os.PathLike[str], messages: Iterable[str]) -> str:
    """Messages of one file, one a line, each starting with the file (as :func:`format_error`
    writes them when it is given ``file``)."""
    return "\n".join(f"{os.fspath(file)}: {m}" for m in messages)
