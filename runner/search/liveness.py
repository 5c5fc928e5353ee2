"""Which process owns a trial, a run or a claim, and whether that process is still alive.

An owner is ``{"host", "pid", "start"}``: ``start`` is the boot id and the process start time
(Linux ``/proc``), so a PID reused after the owner died, or after a reboot, is not mistaken for
it. On the owner's own host death is seen at once, a zombie included (killed, not yet reaped by
its parent: a supervisor that waits for its children one by one leaves one for as long as it
likes); on another host only through the trial's heartbeat going stale
(``runner.search.study.GRACE_S``). On its own host a stale heartbeat counts only for a process that
is stopped (``kill -STOP``, Ctrl-Z): one that runs is alive, however long it holds the GIL.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["HOST", "Heartbeat", "describe", "is_alive", "is_stopped", "me"]

log = logging.getLogger(__name__)
HOST = socket.gethostname()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_BOOT = _boot_id()


_PROC = Path("/proc/self/stat").exists()
# Process states (Linux ``/proc/<pid>/stat`` and ``ps -o stat``): zombie or dead is gone;
# stopped by a signal or a debugger is alive but beats no heartbeat.
_GONE, _STOPPED = frozenset("ZXx"), frozenset("Tt")


def _stat(pid: int) -> tuple[str, str] | None:
    """The process's state letter and start time (clock ticks since boot), or None if there
    is no such process (or no /proc to ask)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def _start_time(pid: int) -> str | None:
    found = _stat(pid)
    return found[1] if found else None


def _ps_state(pid: int) -> str | None:
    """The state letter from ``ps`` (systems without /proc: macOS, the BSDs); "" when ``ps``
    cannot tell, None when there is no such process."""
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    text = out.stdout.strip()
    return text[:1] if text else (None if out.returncode == 1 else "")


def _state(owner: Mapping[str, Any]) -> str | None:
    """The state letter of ``owner``'s process on this host ("" when it exists in a state that
    cannot be read), or None when that process is gone (or its PID now names another one)."""
    pid, start = int(owner["pid"]), owner.get("start")
    if _PROC:
        found = _stat(pid)
        if found is None or (start and f"{_BOOT}:{found[1]}" != start):
            return None
        return found[0]
    try:
        os.kill(pid, 0)  # succeeds for a zombie too: ps tells those apart
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return _ps_state(pid)


def me() -> dict[str, Any]:
    """This process as an owner record."""
    pid = os.getpid()
    start = _start_time(pid)
    return {"host": HOST, "pid": pid, "start": f"{_BOOT}:{start}" if start else None}


def describe(owner: Mapping[str, Any]) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def is_alive(owner: Mapping[str, Any] | None) -> bool | None:
    """True or False when it can be told from here; None for a process on another host.

    A zombie (killed, not yet reaped by its parent) is dead."""
    if not owner or owner.get("host") != HOST:
        return None
    state = _state(owner)
    return state is not None and state not in _GONE


def is_stopped(owner: Mapping[str, Any] | None) -> bool:
    """Whether ``owner`` is a process on this host that is alive but stopped (SIGSTOP,
    Ctrl-Z, a debugger): it sends no heartbeat until it is continued."""
    if not owner or owner.get("host") != HOST:
        return False
    return _state(owner) in _STOPPED


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
