"""The ``keras_cnn`` family: a small 2-D CNN on log-mel images ``(n, n_mels, frames)``.

With ``data.metadata`` the network has a second input: the encoded metadata of the same
rows goes through a dense branch (``metadata_units`` wide) and is concatenated with the
pooled image vector before the dense layer and the head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.models._base import BOTH, KERAS_REQUIREMENTS, check_params
from runner.models._inputs import IMAGE_TABLE
from runner.models._lazy import lazy_exports
from runner.models._registry import ModelFamily, register_family

__all__ = ["KERAS_CNN"]


# The estimators import scikit-learn: loaded by ``build`` (and by unpickling a logged model).
__getattr__ = lazy_exports(
    __name__,
    {
        "KerasCNNClassifier": "runner.models._keras_cnn_estimator",
        "KerasCNNRegressor": "runner.models._keras_cnn_estimator",
    },
)


def keras_cnn_space(task: str) -> dict[str, BaseDistribution]:
    """Small networks only: training runs on CPU (configs/search_spaces/keras_cnn.yaml).

    ``metadata_units`` is used only when the spec has ``data.metadata``.
    """
    return {
        "n_blocks": IntDistribution(1, 3),
        "filters": CategoricalDistribution([8, 16, 32]),
        "kernel_size": CategoricalDistribution([3, 5]),
        "dense_units": CategoricalDistribution([32, 64, 128]),
        "metadata_units": CategoricalDistribution([4, 8, 16, 32]),
        "dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64]),
        "epochs": IntDistribution(2, 60, log=True),
    }


def build_keras_cnn(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Any:
    """Keras CNN for ``task``; it standardises pixels itself (no Pipeline: X is 3-D)."""
    from runner.models._keras_cnn_estimator import KerasCNNClassifier, KerasCNNRegressor

    p = check_params("keras_cnn", params, keras_cnn_space)
    cls = KerasCNNClassifier if task == "classification" else KerasCNNRegressor
    return cls(**p, balanced=balanced and task == "classification", random_state=seed)


KERAS_CNN = register_family(
    ModelFamily(
        name="keras_cnn",
        tasks=BOTH,
        space=keras_cnn_space,
        build=build_keras_cnn,
        input=IMAGE_TABLE,
        requirements=KERAS_REQUIREMENTS,
        # Keras seeds and builds through process-wide state: one fit at a time.
        thread_safe=False,
    )
)
