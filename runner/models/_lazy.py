"""Module attributes imported on first use (PEP 562), so that reading the registry stays cheap.

Estimator classes that subclass scikit-learn live in modules only the build path imports; the
module that used to define a class re-exports it lazily, so that a model logged (pickled)
under the old module path still loads.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each of ``names`` (attribute -> defining module)
    when it is first read, and keeps it in ``module``."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
