"""Which device the Keras families fit on, and one fit at a time on an accelerator.

On a CPU, fits of parallel trials share the cores like any other family's. An accelerator is
one device: two networks training on it at once contend for its memory and gain nothing over
taking turns (each fit already fills it), so Keras fits take a per-device lock there. Folds
of one Keras trial already run in turn (the families are not thread-safe); the lock keeps
trials run side by side (``search.parallel_trials``) from meeting on the device.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["accelerator_kind", "fit_slot", "keras_device"]

_ACCELERATORS = {"gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "metal": "gpu", "tpu": "tpu"}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def accelerator_kind(platforms: Sequence[str]) -> str:
    """``gpu`` or ``tpu`` when the backend lists such a device (its first is used), else
    ``cpu``."""
    for platform in platforms:
        if (kind := _ACCELERATORS.get(platform.lower())) is not None:
            return kind
    return "cpu"


@functools.cache
def keras_device() -> str:
    """The device Keras trains on in this process: ``cpu``, ``gpu`` or ``tpu``.

    Read from Keras's own device list (``keras.distribution.list_devices``: ``gpu:0``, ...)
    for whichever backend it runs on; imports Keras, so call it only where a Keras family
    fits.
    """
    from runner.models._keras import import_keras

    try:
        devices = import_keras().distribution.list_devices()
    except (ImportError, RuntimeError, ValueError):  # no backend, or a device failed to start
        return "cpu"
    return accelerator_kind([str(d).split(":")[0] for d in devices])


@contextmanager
def fit_slot(device: str) -> Iterator[None]:
    """Hold ``device`` for one fit: exclusive on an accelerator, free on the CPU."""
    if device == "cpu":
        yield
        return
    with _GUARD:
        lock = _LOCKS.setdefault(device, threading.Lock())
    with lock:
        yield
