"""The files the package ships: ``configs/`` (defaults, search spaces) and ``experiments/``.

The checkout's top-level ``configs/`` and ``experiments/`` folders are the source of truth.
Run from a checkout (an editable install, or ``PYTHONPATH``), they are read in place; a wheel
carries the same files as the package data of ``audioml_configs`` and ``audioml_experiments``
(pyproject.toml maps the two folders to those names), read through importlib.resources. A
user's own spec may live anywhere; only the shipped files are looked up here.

A shipped spec can also be named without a path (``audioml run demo``): :func:`spec_file`
turns a command-line SPEC argument into a file, the same way in a checkout and after
``pip install``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from runner.errors import SpecError, format_error

__all__ = ["PACKAGES", "shipped", "shipped_specs", "spec_file"]

#: Top-level folder of the checkout -> the package name it has in a wheel.
PACKAGES: dict[str, str] = {"configs": "audioml_configs", "experiments": "audioml_experiments"}

_CHECKOUT = Path(__file__).resolve().parent.parent


def _in_checkout(folder: str) -> Path | None:
    # pyproject.toml beside the package marks a source tree; in site-packages there is none,
    # and a stray top-level "configs" folder of another distribution is never picked up.
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / folder).is_dir():
        return _CHECKOUT / folder
    return None


def shipped(folder: str, *parts: str) -> Path:
    """A path inside the shipped ``configs`` or ``experiments`` folder.

    Args:
        folder: ``"configs"`` or ``"experiments"``.
        parts: the path inside it, e.g. ``("search_spaces", "svm.yaml")``.

    Returns:
        The file or folder (it may not exist, e.g. a family without a search-space file).
    """
    local = _in_checkout(folder)
    if local is not None:
        return local.joinpath(*parts)
    try:
        base = files(PACKAGES[folder])
    except ModuleNotFoundError:
        # A logged model's copy of the code has neither a checkout nor the data packages,
        # and needs none of their files: name a path that does not exist.
        return (_CHECKOUT / folder).joinpath(*parts)
    for part in parts:
        base = base / part
    return Path(str(base))


def shipped_specs() -> dict[str, Path]:
    """The shipped experiment specs by name (file stem), sorted: ``{"age": .../age.yaml}``."""
    folder = shipped("experiments")
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def spec_file(arg: str | os.PathLike[str]) -> Path:
    """The spec file a command-line SPEC names: an existing file, else a shipped spec's name.

    Args:
        arg: a path (``experiments/genre.yaml``, ``~/my.yaml``) or the name of a shipped spec
            (``genre``, or ``genre.yaml`` without a folder).

    Returns:
        The file to read. A file of that name in the working directory wins over a shipped
        spec, so a user's own ``demo.yaml`` is never shadowed.

    Raises:
        SpecError: neither a file nor a shipped spec; the message lists the shipped names.
    """
    path = Path(arg).expanduser()
    if path.is_file():
        return path
    specs = shipped_specs()
    bare = path.parent == Path(".") and path.suffix.lower() in ("", ".yaml", ".yml")
    if bare and path.stem in specs:
        return specs[path.stem]
    hint = "give a spec file, or a shipped spec by name (e.g. `audioml validate demo`)"
    if bare:
        what = "spec files here or shipped specs"
        raise SpecError(format_error("SPEC", arg, one_of=specs, what=what, hint=hint))
    if path.stem in specs:
        hint = f"the shipped spec '{path.stem}' is named without a folder: {path.stem}"
    else:
        hint += f"; shipped specs: {', '.join(specs) or 'none found'}"
    raise SpecError(format_error("SPEC", arg, problem="is not a file", hint=hint))
