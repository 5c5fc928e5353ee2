"""The ``keras_mlp`` family: a dense network on the feature table (keras, JAX backend).

With ``data.metadata`` the table holds the encoded metadata beside the audio features.
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

from runner.models._base import BOTH, KERAS_REQUIREMENTS, check_params, scaled
from runner.models._lazy import lazy_exports
from runner.models._registry import ModelFamily, register_family

__all__ = ["KERAS_MLP"]


# The estimators import scikit-learn: loaded by ``build`` (and by unpickling a logged model).
__getattr__ = lazy_exports(
    __name__,
    {
        "KerasMLPClassifier": "runner.models._keras_mlp_estimator",
        "KerasMLPRegressor": "runner.models._keras_mlp_estimator",
    },
)


def keras_mlp_space(task: str) -> dict[str, BaseDistribution]:
    """``epochs`` is a cap: early stopping on the inner split ends most runs sooner."""
    return {
        "n_layers": IntDistribution(1, 3),
        "units": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "epochs": IntDistribution(5, 200, log=True),
    }


def build_keras_mlp(
    params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False
) -> Any:
    """StandardScaler + keras dense network for ``task``."""
    from runner.models._keras_mlp_estimator import KerasMLPClassifier, KerasMLPRegressor

    p = check_params("keras_mlp", params, keras_mlp_space)
    cls = KerasMLPClassifier if task == "classification" else KerasMLPRegressor
    return scaled(cls(**p, balanced=balanced and task == "classification", random_state=seed))


KERAS_MLP = register_family(
    ModelFamily(
        name="keras_mlp",
        tasks=BOTH,
        space=keras_mlp_space,
        build=build_keras_mlp,
        requirements=KERAS_REQUIREMENTS,
        warm_start=(
            {
                "n_layers": 2,
                "units": 128,
                "dropout": 0.2,
                "learning_rate": 1e-3,
                "batch_size": 32,
                "epochs": 60,
            },
        ),
        # Keras seeds and builds through process-wide state: one fit at a time.
        thread_safe=False,
    )
)
