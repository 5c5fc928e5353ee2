"""Fixtures shared by the runner's test modules."""

from __future__ import annotations

import pytest
from _registered import Store, register_models


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The two tiny registered models of ``_registered`` (trained once per session)."""
    return register_models(tmp_path_factory.mktemp("registered"))
