"""The benchmark's XGBoost family (benchmarks/_xgboost_family.py): registered like a runner
family, it fits through the runner's estimator factory and predicts the original labels.
XGBoost comes with the bench extra, so these run where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("xgboost", reason="needs the bench extra (XGBoost)")


def test_the_family_predicts_the_original_labels_through_the_runners_factory() -> None:
    from benchmarks._xgboost_family import XGBOOST
    from runner.models import get_family

    assert get_family("xgboost") is XGBOOST
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = np.where(X[:, 0] > 0.3, "music", np.where(X[:, 1] > 0, "both", "dialogue"))
    params = {
        "n_estimators": 60,
        "learning_rate": 0.3,
        "max_depth": 3,
        "min_child_weight": 1.0,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "reg_alpha": 1e-8,
        "reg_lambda": 1.0,
    }
    model = XGBOOST.make(params, task="classification", seed=0, threads=2).fit(X, y)
    assert list(model.classes_) == ["both", "dialogue", "music"]
    assert model.get_params()["n_jobs"] == 2  # the resource plan's threads reach XGBoost
    assert (model.predict(X) == y).mean() > 0.95
    assert np.allclose(model.predict_proba(X).sum(axis=1), 1.0)
    reg = XGBOOST.make(params, task="regression", seed=0, target_transform="log")
    target = np.exp(X[:, 0])
    assert np.corrcoef(reg.fit(X, target).predict(X), target)[0, 1] > 0.9
