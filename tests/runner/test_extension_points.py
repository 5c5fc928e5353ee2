"""Extension points are closed: a metric, a model family, a data source and a sampler
registered from this file alone are read, searched, tracked, refit and tested by a real run,
with no other module knowing their names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score
from sklearn.naive_bayes import GaussianNB
from test_search import _spec, _table

from runner.config.samplers import SAMPLERS, SamplerKind, register_sampler
from runner.config.source_registry import SOURCES, Source, register_source
from runner.config.spec import ExperimentSpec
from runner.metrics import METRICS, Metric, register_metric
from runner.session.pipeline import RunOptions
from runner.session.session import run_experiment


@pytest.fixture
def balanced_accuracy():
    metric = register_metric(Metric(
        "balanced_accuracy_for_test", "classification", True,
        lambda t, p, *_: float(balanced_accuracy_score(t, p)),
    ))  # fmt: skip
    yield metric
    del METRICS[metric.name]


def _read_table(spec, *, base=None):
    """A layout of its own: the feature table reader under another name."""
    from runner.data.sources.feature_table import load_feature_table

    return load_feature_table(spec, base=base)


@pytest.fixture
def quasi_random():
    import optuna

    kind = register_sampler(SamplerKind(
        "qmc_for_test", lambda spec: optuna.samplers.QMCSampler(seed=spec.seed, scramble=True)
    ))  # fmt: skip
    yield kind
    del SAMPLERS[kind.name]


@pytest.fixture
def table_source():
    source = register_source(Source("table_for_test", _read_table, metadata=True, audio=False))
    yield source
    del SOURCES[source.name]


def test_a_metric_family_source_and_sampler_from_a_test_file_run_a_study(
    workdir: Path, temporary_family, balanced_accuracy, table_source, quasi_random
) -> None:
    temporary_family("bayes_for_test", lambda params, **kw: GaussianNB())
    _table(workdir / "table.csv")
    spec = _spec(workdir, models=["logistic", "bayes_for_test"], n_trials=4,
                 metric=balanced_accuracy.name)  # fmt: skip
    raw = spec.model_dump()  # validated again: the checks read the source's record
    raw["data"]["source"] = table_source.name
    raw["search"]["sampler"] = quasi_random.name
    raw["final"] = {"candidate": "trial", "stack": False}
    spec = ExperimentSpec.model_validate(raw)
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
    assert parent.data.params["search.sampler"] == quasi_random.name
    assert parent.data.params["data.source"] == table_source.name
    test = parent.data.metrics[f"test_{balanced_accuracy.name}"]
    # The held-out score is the metric of the final model's clip predictions.
    assert test == pytest.approx(summary["test"][balanced_accuracy.name])
    assert np.isfinite(test)


def test_an_unregistered_source_is_refused_with_the_choices(workdir: Path) -> None:
    raw = _spec(workdir).model_dump()
    raw["data"]["source"] = "nowhere"
    with pytest.raises(
        ValueError, match=r"data\.source: 'nowhere' is not one of folder, manifest"
    ):
        ExperimentSpec.model_validate(raw)
