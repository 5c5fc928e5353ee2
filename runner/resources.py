"""The files the package ships: ``configs/`` (defaults, search spaces) and ``experiments/``.

The checkout's top-level ``configs/`` and ``experiments/`` folders are the source of truth.
Run from a checkout (an editable install, or ``PYTHONPATH``), they are read in place; a wheel
carries the same files as the package data of ``audioml_configs`` and ``audioml_experiments``
(pyproject.toml maps the two folders to those names), read through importlib.resources. A
user's own spec may live anywhere; only the shipped files are looked up here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["PACKAGES", "shipped"]

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
