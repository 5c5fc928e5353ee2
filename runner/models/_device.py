"""Which device the Keras families fit on, and one fit at a time on an accelerator.

On a CPU, fits of parallel trials share the cores like any other family's. An accelerator is
one device: two networks training on it at once contend for its memory and gain nothing over
taking turns (each fit already fills it), so Keras fits take a per-device lock there. Folds
of one Keras trial already run in turn (the families are not thread-safe); the lock keeps
trials run side by side (``search.parallel_trials``) from meeting on the device.
"""

from __future__ import annotations

import functools
import os
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

    Asks the backend Keras runs on (JAX unless ``KERAS_BACKEND`` says otherwise); imports
    it, so call it only where a Keras family fits.
    """
    backend = os.environ.get("KERAS_BACKEND", "jax")
    try:
        if backend == "jax":
            import jax

            return accelerator_kind([d.platform for d in jax.devices()])
        if backend == "tensorflow":
            import tensorflow as tf

            found = tf.config.list_physical_devices()
            return accelerator_kind([d.device_type for d in found])
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
    except (ImportError, RuntimeError):  # no backend, or a device that failed to start
        return "cpu"
    return "cpu"


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
