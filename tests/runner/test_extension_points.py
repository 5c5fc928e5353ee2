"""Extension points are closed: a metric and a model family registered from this file alone
are searched, tracked, refit and tested by a real run, with no other module knowing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score
from sklearn.naive_bayes import GaussianNB
from test_search import _spec, _table

from runner.metrics import METRICS, Metric, register_metric
from runner.pipeline import RunOptions
from runner.session import run_experiment
from runner.spec import FinalSpec


@pytest.fixture
def balanced_accuracy():
    metric = register_metric(Metric(
        "balanced_accuracy_for_test", "classification", True,
        lambda t, p, *_: float(balanced_accuracy_score(t, p)),
    ))  # fmt: skip
    yield metric
    del METRICS[metric.name]


def test_a_metric_and_a_family_from_a_test_file_run_a_study(
    workdir: Path, temporary_family, balanced_accuracy
) -> None:
    temporary_family("bayes_for_test", lambda params, **kw: GaussianNB())
    _table(workdir / "table.csv")
    spec = _spec(workdir, models=["logistic", "bayes_for_test"], n_trials=4,
                 metric=balanced_accuracy.name)  # fmt: skip
    spec = spec.model_copy(update={"final": FinalSpec(candidate="trial", stack=False)})
    summary = run_experiment(spec, RunOptions(progress=False))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
    trials = [r for r in runs if "trial_number" in r.data.tags]
    assert {r.data.params["model"] for r in trials} == {"logistic", "bayes_for_test"}
    key = f"cv_{balanced_accuracy.name}_mean"
    assert all(
        0.0 < r.data.metrics[key] <= 1.0 for r in trials if r.data.tags["state"] == "COMPLETE"
    )
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    test = parent.data.metrics[f"test_{balanced_accuracy.name}"]
    # The held-out score is the metric of the final model's clip predictions.
    assert test == pytest.approx(summary["test"][balanced_accuracy.name])
    assert np.isfinite(test)
