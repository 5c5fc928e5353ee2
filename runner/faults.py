"""Named pause points, so that the fault tests can SIGKILL a real run at a chosen moment.

With ``AUDIOML_PAUSE_AT=<name>`` in its environment, the process stops at that point, writes
its pid to ``AUDIOML_PAUSE_FILE`` (if set) and sleeps until it is killed, or until that file
is removed (then it goes on: the test may change the world meanwhile, e.g. break a folder).
Unset, a pause point is one dictionary look-up. Points: ``parent`` (this process holds the
parent run, new or adopted, and has not yet logged its lineage), ``opened`` (a trial's child
run is open, its id not yet noted on the trial), ``fold`` (after a trial's first CV fold),
``plots`` (on the background thread, before a trial's plots render), ``waiting`` (the final
step is claimed and waits for trials running in other processes), ``finalize`` (before the
final model is logged), ``registered`` (after the version is registered, before the study is
marked finalized).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["pause_point"]


def pause_point(name: str) -> None:
    """Sleep forever here when ``AUDIOML_PAUSE_AT`` names this point."""
    if os.environ.get("AUDIOML_PAUSE_AT") != name:
        return
    marker = os.environ.get("AUDIOML_PAUSE_FILE")
    if not marker:
        while True:
            time.sleep(3600)
    Path(marker).write_text(f"{os.getpid()} {name}\n")
    while Path(marker).exists():
        time.sleep(0.05)
