"""The ``mlp`` family: scikit-learn's multi-layer perceptron with early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from runner.models._base import BOTH, check_params, scaled
from runner.models._registry import ModelFamily, register_family

__all__ = ["MLP"]


def mlp_space(task: str) -> dict[str, BaseDistribution]:
    """Depth and width (one width for every layer keeps the space flat and JSON-loggable)."""
    return {
        "n_layers": IntDistribution(1, 3),
        "units": IntDistribution(16, 256, log=True),
        "alpha": FloatDistribution(1e-6, 1e-1, log=True),
        "learning_rate_init": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128]),
    }


def build_mlp(params: Mapping[str, Any], *, task: str, seed: int, balanced: bool = False) -> Any:
    """StandardScaler + MLP; early stopping on an inner 10% split of the training fold."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    from runner.models._balanced import BalancedClassifier

    p = check_params("mlp", params, mlp_space)
    layers = (int(p.pop("units", 100)),) * int(p.pop("n_layers", 1))
    common = {"hidden_layer_sizes": layers, "early_stopping": True, "max_iter": 500}
    if task == "classification":
        model: Any = MLPClassifier(**common, **p, random_state=seed)
        # MLPClassifier has no class_weight but its fit takes sample_weight.
        return scaled(BalancedClassifier(model) if balanced else model)
    model = MLPRegressor(**common, **p, random_state=seed)
    # The squared loss and the default init assume a target of unit scale.
    return TransformedTargetRegressor(regressor=scaled(model), transformer=StandardScaler())


_MLP_START = {
    "n_layers": 2, "units": 128, "alpha": 1e-4, "learning_rate_init": 1e-3, "batch_size": 32,
}  # fmt: skip
MLP = register_family(
    ModelFamily(name="mlp", tasks=BOTH, space=mlp_space, build=build_mlp, warm_start=(_MLP_START,))
)
