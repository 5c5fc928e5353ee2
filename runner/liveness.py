"""Which process owns a trial, a run or a claim, and whether that process is still alive.

An owner is ``{"host", "pid", "start"}``: ``start`` is the boot id and the process start time
(Linux ``/proc``), so a PID reused after the owner died, or after a reboot, is not mistaken for
it. On the owner's own host death is seen at once; on another host only through the trial's
heartbeat going stale (``runner.study.GRACE_S``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["HOST", "Heartbeat", "describe", "is_alive", "me"]

log = logging.getLogger(__name__)
HOST = socket.gethostname()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_BOOT = _boot_id()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such process
    (or no /proc to ask)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def me() -> dict[str, Any]:
    """This process as an owner record."""
    pid = os.getpid()
    start = _start_time(pid)
    return {"host": HOST, "pid": pid, "start": f"{_BOOT}:{start}" if start else None}


def describe(owner: Mapping[str, Any]) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def is_alive(owner: Mapping[str, Any] | None) -> bool | None:
    """True or False when it can be told from here; None for a process on another host."""
    if not owner or owner.get("host") != HOST:
        return None
    pid = int(owner["pid"])
    start = owner.get("start")
    if start and Path("/proc/self/stat").exists():
        now = _start_time(pid)
        return now is not None and f"{_BOOT}:{now}" == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Records a running trial's heartbeat in its RDB storage every ``interval`` seconds."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        if self._interval:
            # The first beat is written here, before the trial's claim is released, so every
            # claimed trial has one.
            self._storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # a busy database must not end the trial; retried next beat
                log.warning("trial heartbeat not recorded: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
