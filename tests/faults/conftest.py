"""Fixtures of the fault tests (the harness is in _harness.py)."""

from __future__ import annotations

from _harness import corpus, job

__all__ = ["corpus", "job"]
