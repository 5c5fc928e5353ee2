"""Fixtures of the fault tests (the harness is in _harness.py)."""

from __future__ import annotations

from _harness import corpus, job, prepared, warm_job

__all__ = ["corpus", "job", "prepared", "warm_job"]
