"""The Keras device choice and the one-fit-at-a-time rule on an accelerator (checked on the
CPU: the rule is a lock, the choice a reading of the backend's device list)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from runner.models._device import accelerator_kind, fit_slot, keras_device


@pytest.mark.parametrize(
    ("platforms", "kind"),
    [
        (["cpu"], "cpu"),
        ([], "cpu"),
        (["gpu", "gpu"], "gpu"),  # JAX with CUDA: one entry per card
        (["cuda"], "gpu"),
        (["CPU", "GPU"], "gpu"),  # TensorFlow's device types
        (["tpu"], "tpu"),
    ],
)
def test_accelerator_kind_reads_the_backends_device_list(platforms, kind) -> None:
    assert accelerator_kind(platforms) == kind


def _overlap(device: str) -> bool:
    """Whether two threads were ever inside ``fit_slot(device)`` at once."""
    inside, peak, guard = [0], [0], threading.Lock()

    def fit() -> None:
        with fit_slot(device):
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.2)  # a fit long enough for the other thread to try to start
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=fit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return peak[0] > 1


def test_fits_take_turns_on_an_accelerator_and_share_the_cpu() -> None:
    assert _overlap("cpu")
    assert not _overlap("gpu")


def test_a_keras_fit_records_the_device_the_backend_reports() -> None:
    keras = pytest.importorskip("keras")
    from runner.models import get_family

    expected = accelerator_kind([d.split(":")[0] for d in keras.distribution.list_devices()])
    assert keras_device() == expected
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), np.array(["a", "b"] * 20)
    family = get_family("keras_mlp", "classification")
    est = family.make({"epochs": 1}, task="classification", seed=0).fit(X, y)
    assert est[-1].device_ == expected  # the network is the pipeline's last step
