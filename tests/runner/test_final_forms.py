"""Bagged and stacked final models from real runs: registered, then served by a real
`mlflow models serve` on 127.0.0.1 and by `audioml predict`, all three giving one answer.

Two runs on a tiny synthetic corpus: one serves its best trial bagged (its CV fold models
averaged), one serves the stacker over its trials (refit members).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_serving import Server, Store, _assert_same, _start, _stop, _wait_ready

from runner.cli import main
from runner.data.demo_data import synthesize_corpus
from runner.models._bagged import BaggedModel
from runner.models._stacked import StackedModel

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
BAGGED, STACKED = "final-bagged", "final-stacked"
RUNS = {
    BAGGED: ["search.models=[logistic]", "final.form=bagged", "final.candidate=trial"],
    STACKED: ["search.models=[logistic,random_forest]", "final.form=refit",
              "final.candidate=stack"],
}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("final-forms")
    corpus = synthesize_corpus(root / "corpus", clips_per_class=10, duration_s=2.0)
    common = ["search.n_trials=4", "search.cv.folds=3", "features.n_jobs=1",
              "tracking.plots=[]", f"data.root={corpus}"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, sets in RUNS.items():
            sets = [*common, *sets, f"register.model_name={name}"]
            assert main(["run", str(DEMO), "-q", *[a for s in sets for a in ("--set", s)]]) == 0
    yield Store(root, corpus)


@pytest.fixture(scope="module")
def servers(store: Store) -> Iterator[dict[str, Server]]:
    started = {name: _start(store, name, {}) for name in RUNS}
    try:
        out = {}
        for name, (proc, url, log) in started.items():
            _wait_ready(proc, url, log)
            out[name] = Server(url, proc, mlflow.pyfunc.load_model(store.model_path(name)))
        yield out
    finally:
        for proc, _, _ in started.values():
            _stop(proc)


def _runs(store: Store, name: str) -> tuple[object, list, object]:
    """The parent run, its trial runs, and the registered champion version."""
    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name("demo")
    version = client.get_model_version_by_alias(name, "champion")
    parent = client.get_run(version.tags["run_id"])
    children = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    return parent, children, version


@pytest.mark.slow
def test_the_bagged_run_serves_its_trials_fold_models(store: Store) -> None:
    parent, children, version = _runs(store, BAGGED)
    assert parent.data.tags["final_form"] == "bagged"
    assert version.tags["final_form"] == "bagged"
    assert version.tags["model_family"] == "logistic"
    best = [
        r for r in children if r.data.tags.get("trial_number") == parent.data.tags["best_trial"]
    ]
    names = {a.path for a in MlflowClient(store.uri).list_artifacts(best[0].info.run_id)}
    assert {"oof.npz", "folds.pkl"} <= names
    model = mlflow.pyfunc.load_model(store.model_path(BAGGED)).unwrap_python_model()
    assert isinstance(model.estimator, BaggedModel) and len(model.estimator.models) == 3
    assert model.config["form"] == "bagged"


@pytest.mark.slow
def test_the_stack_is_a_child_run_with_the_trials_metric_keys(store: Store) -> None:
    parent, children, version = _runs(store, STACKED)
    (stack,) = [r for r in children if r.data.tags.get("candidate") == "stack"]
    trials = [r for r in children if r.data.tags.get("state") == "COMPLETE"]
    assert stack.data.tags["chosen"] == "true" and stack.info.status == "FINISHED"
    assert set(stack.data.metrics) == set(trials[0].data.metrics)
    assert stack.data.params["stack.stacker"] == "linear"
    members = stack.data.params["stack.members"].split(", ")
    assert len(members) == min(5, len(trials))
    assert version.tags["model_family"] == "stack"
    assert version.tags["stack_members"] == stack.data.params["stack.members"]
    assert float(version.tags["cv_f1_macro"]) == pytest.approx(
        stack.data.metrics["cv_f1_macro_mean"]
    )
    assert parent.data.tags["final_form"] == version.tags["final_form"] == "refit"
    model = mlflow.pyfunc.load_model(store.model_path(STACKED)).unwrap_python_model()
    assert isinstance(model.estimator, StackedModel)
    assert [m.label for m in model.estimator.members] == members


def _clips(store: Store) -> list[str]:
    return sorted(str(p.relative_to(store.corpus)) for p in store.corpus.rglob("*.wav"))[::3]


@pytest.mark.slow
@pytest.mark.parametrize("name", [BAGGED, STACKED])
def test_server_and_predict_give_the_pyfunc_answer(
    store: Store, servers: dict[str, Server], name: str
) -> None:
    clips = _clips(store)
    audio = [base64.b64encode((store.corpus / c).read_bytes()).decode() for c in clips]
    served = _assert_same(servers[name], pd.DataFrame({"audio_base64": audio}))
    truth = [c.split("/")[0] for c in clips]
    assert (served["label"] == truth).mean() >= 0.7  # a learnable corpus; chance is 0.5

    listing = store.corpus / f"{name}.csv"  # its paths are relative to its folder
    pd.DataFrame({"path": clips}).to_csv(listing, index=False)
    out = store.root / f"{name}-pred.csv"
    args = ["predict", f"models:/{name}@champion", str(listing), "--out", str(out)]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store.root)
        assert main([*args, "--tracking-uri", store.uri, "-q"]) == 0
    pred = pd.read_csv(out).set_index("path").loc[clips]
    assert pred["label"].tolist() == served["label"].tolist()
    proba = [c for c in served.columns if c.startswith("proba_")]
    np.testing.assert_allclose(pred[proba].to_numpy(), served[proba].to_numpy(), atol=1e-12)
