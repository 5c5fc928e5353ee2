"""Ensemble selection: its metrics equal the reference ones, a one-member ensemble scores what
its trial scored, two complementary views beat either, and a whole run registers a served
ensemble that predicts like the estimator it pickled."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from runner.cli import main
from runner.data.splits import Split
from runner.final.ensemble import Oof, ensemble_cv, fast_score, select_ensemble
from runner.metrics import score_all
from runner.models import TABLE, Inputs, Rows, get_family
from runner.models._weighted_ensemble import EnsembleMember, WeightedEnsemble
from runner.search.evaluation import cross_validate
from runner.search.plan import plan_resources

CLASSES = ["a", "b", "c"]


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "recall_macro", "log_loss"])
def test_fast_classification_metrics_equal_the_reference(rng, metric: str) -> None:
    for n in (5, 40):  # small folds miss classes: scikit-learn's label handling must hold
        truth = rng.integers(0, 3, n)
        proba = rng.dirichlet(np.ones(3), n)
        names = np.asarray(CLASSES)
        ref = score_all("classification", names[truth], names[proba.argmax(1)], proba, CLASSES)
        got = fast_score("classification", metric, truth, proba, 3, CLASSES)
        assert got == pytest.approx(ref[metric], abs=1e-12)


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_fast_regression_metrics_equal_the_reference(rng, metric: str) -> None:
    truth, pred = rng.normal(30, 10, 50), rng.normal(30, 10, 50)
    ref = score_all("regression", truth, pred)[metric]
    assert fast_score("regression", metric, truth, pred) == pytest.approx(ref, abs=1e-9)


def _views(rng, n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    """Two independent noisy views of one label: each view alone is a weak classifier."""
    y = rng.integers(0, 2, n)
    view_a = y[:, None] * 0.8 + rng.normal(0, 1, (n, 3))
    view_b = y[:, None] * 0.8 + rng.normal(0, 1, (n, 3))
    frame = pd.DataFrame(np.hstack([view_a, view_b]), columns=[*"abc", *"def"])
    return frame, np.asarray(["no", "yes"])[y]


def _cv(frame: pd.DataFrame, y: np.ndarray, columns: list[str], folds: list[Split]):
    family = get_family("logistic", "classification")
    inputs = Inputs(TABLE, Rows(frame), columns)
    ids = np.asarray([f"c{i}" for i in range(len(y))])
    return cross_validate(
        lambda: family.make({"C": 1.0}, task="classification", seed=0),
        inputs, y, ids, folds, task="classification", classes=["no", "yes"],
    )  # fmt: skip


def _folds(n: int, k: int = 4) -> list[Split]:
    fold = np.arange(n) % k
    return [Split(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]


def _oof(number: int, cv) -> Oof:
    return Oof(number, "logistic", cv.mean()["f1_macro"], np.vstack(cv.oof_proba))


def test_one_member_scores_its_trial_and_two_views_beat_either(rng) -> None:
    frame, y = _views(rng)
    folds = _folds(len(y))
    cv_a, cv_b = _cv(frame, y, [*"abc"], folds), _cv(frame, y, [*"def"], folds)
    truth, fold_of = np.asarray(cv_a.oof_true), np.asarray(cv_a.oof_fold)
    assert cv_a.oof_ids == cv_b.oof_ids  # the same folds give the same clip order
    kwargs = {"task": "classification", "metric": "f1_macro", "classes": ["no", "yes"]}

    alone = select_ensemble([_oof(0, cv_a)], truth, fold_of, **kwargs)
    assert alone.counts == {0: 1}  # repeating it scores the same: the smaller one stays
    assert alone.score == pytest.approx(cv_a.mean()["f1_macro"], abs=1e-12)

    both = select_ensemble([_oof(0, cv_a), _oof(1, cv_b)], truth, fold_of, **kwargs)
    assert both.size == 2, both.counts
    best_single = max(cv_a.mean()["f1_macro"], cv_b.mean()["f1_macro"])
    # Averaging two independent views: the fixture makes the gain several points.
    assert both.score > best_single + 0.03, (both.score, best_single)
    assert sum(both.weights.values()) == pytest.approx(1.0)

    # The ensemble's CV metrics (its child run's) come from the trials' metric code: one
    # member reproduces its trial's every fold score; two give the selection's score.
    ids, classes = np.asarray(cv_a.oof_ids), ["no", "yes"]
    one = ensemble_cv([_oof(0, cv_a)], alone, truth, fold_of, ids, task="classification",
                      classes=classes)  # fmt: skip
    for got, want in zip(one.folds, cv_a.folds, strict=True):
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k], abs=1e-12, nan_ok=True) for k in got)
    assert one.oof_pred == cv_a.oof_pred and one.oof_ids == cv_a.oof_ids
    pair = ensemble_cv([_oof(0, cv_a), _oof(1, cv_b)], both, truth, fold_of, ids,
                       task="classification", classes=classes)  # fmt: skip
    assert pair.mean()["f1_macro"] == pytest.approx(both.score, abs=1e-12)


def test_selection_minimises_an_error_metric(rng) -> None:
    truth = rng.normal(40, 10, 200)
    good, bad = truth + rng.normal(0, 2, 200), truth + rng.normal(0, 8, 200)
    folds = np.arange(200) % 4
    oofs = [Oof(0, "ridge", 6.4, bad), Oof(1, "ridge", 1.6, good)]
    sel = select_ensemble(oofs, truth, folds, task="regression", metric="mae")
    assert max(sel.counts, key=sel.counts.get) == 1
    assert sel.score <= fast_score("regression", "mae", truth, good) + 1e-12


def test_weighted_ensemble_feeds_each_member_its_columns(rng) -> None:
    frame, y = _views(rng, 200)
    family = get_family("logistic", "classification")

    def member(cols: list[str]) -> EnsembleMember:
        estimator = family.make({"C": 1.0}, task="classification", seed=0)
        return EnsembleMember(estimator, cols, frame=False, label="m")

    ens = WeightedEnsemble(
        [member([*"abc"]), member([*"def"])], [0.5, 0.5], [*"abcdef"], "classification"
    )
    ens.fit(frame.to_numpy(), y)
    alone = family.make({"C": 1.0}, task="classification", seed=0).fit(
        frame[[*"abc"]].to_numpy(), y
    )
    other = family.make({"C": 1.0}, task="classification", seed=0).fit(
        frame[[*"def"]].to_numpy(), y
    )
    expected = 0.5 * alone.predict_proba(frame[[*"abc"]].to_numpy())
    expected += 0.5 * other.predict_proba(frame[[*"def"]].to_numpy())
    np.testing.assert_allclose(ens.predict_proba(frame.to_numpy()), expected)
    # A DataFrame input (metadata in the table) gives the same answer.
    np.testing.assert_allclose(ens.predict_proba(frame), expected)
    assert list(ens.classes_) == ["no", "yes"]


class _ThreadProbe(BaseEstimator, ClassifierMixin):
    """Logistic regression that notes the thread it was fitted in; with a ``barrier``, its
    fit waits there for the other member's (so both must be fitting at once)."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.barrier = barrier

    def fit(self, X, y):
        self.thread_ = threading.current_thread().name
        if self.barrier is not None:
            self.barrier.wait(timeout=30)
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_members_fit_side_by_side_to_the_same_model(rng) -> None:
    frame, y = _views(rng, 200)

    def ensemble(n_jobs: int) -> WeightedEnsemble:
        barrier = threading.Barrier(2) if n_jobs == 2 else None
        members = [
            EnsembleMember(_ThreadProbe(barrier), [*c], frame=False, label="m")
            for c in ("abc", "def")
        ]
        return WeightedEnsemble(members, [0.3, 0.7], [*"abcdef"], "classification", n_jobs, 1)

    serial, parallel = ensemble(1).fit(frame.to_numpy(), y), ensemble(2).fit(frame.to_numpy(), y)
    np.testing.assert_array_equal(
        serial.predict_proba(frame.to_numpy()), parallel.predict_proba(frame.to_numpy())
    )
    assert {m.estimator.thread_ for m in serial.members} == {threading.current_thread().name}
    threads = {m.estimator.thread_ for m in parallel.members}
    assert len(threads) == 2 and all(t.startswith("audioml-member") for t in threads)


class _PredictProbe(_ThreadProbe):
    """Fitted as its parent; each ``predict_proba`` call notes its thread and rows, and with
    a ``predict_barrier`` waits there for another call (so two must run at once)."""

    def __init__(self, barrier=None, predict_barrier=None) -> None:
        super().__init__(barrier)
        self.predict_barrier = predict_barrier

    def predict_proba(self, X):
        self.calls_.append((threading.current_thread().name, len(X)))
        if self.predict_barrier is not None:
            self.predict_barrier.wait(timeout=30)
        return super().predict_proba(X)


def test_a_large_input_is_predicted_in_row_chunks_side_by_side(rng) -> None:
    """2,400 rows, two threads: each thread predicts one half through every member, at
    once; the probabilities equal those of one thread."""
    from runner.models._weighted_ensemble import CHUNK_ROWS

    n = 2 * CHUNK_ROWS + 400
    frame, y = _views(rng, n)
    X = frame.to_numpy()

    def ensemble(n_jobs: int) -> WeightedEnsemble:
        gate = threading.Barrier(2) if n_jobs == 2 else None
        members = [EnsembleMember(_PredictProbe(None, gate), [*c], frame=False, label="m")
                   for c in ("abc", "def")]  # fmt: skip
        ens = WeightedEnsemble(members, [0.3, 0.7], [*"abcdef"], "classification", n_jobs, 1)
        ens.fit(X, y)
        for m in ens.members:
            m.estimator.calls_ = []
        return ens

    serial, parallel = ensemble(1), ensemble(2)
    np.testing.assert_array_equal(serial.predict_proba(X), parallel.predict_proba(X))
    assert all(m.estimator.calls_ == [(threading.current_thread().name, n)]
               for m in serial.members)  # fmt: skip
    for m in parallel.members:
        threads = {t for t, _ in m.estimator.calls_}
        assert len(threads) == 2 and all(t.startswith("audioml-member") for t in threads)
        assert sorted(rows for _, rows in m.estimator.calls_) == [n // 2, n // 2]
    small = ensemble(2)  # fewer rows than two chunks' worth: one call, no threads
    for m in small.members:
        m.estimator.predict_barrier = None
    small.predict_proba(X[:CHUNK_ROWS])
    assert all(m.estimator.calls_ == [(threading.current_thread().name, CHUNK_ROWS)]
               for m in small.members)  # fmt: skip


def _ring_table(path: Path, n: int = 240, seed: int = 0) -> None:
    """A linear part and a local (ring) part: knn variants see different sides of it."""
    rng = np.random.default_rng(seed)
    lin, loc = rng.normal(size=(n, 4)), rng.uniform(-2, 2, size=(n, 2))
    ring = (np.hypot(loc[:, 0], loc[:, 1]) < 1.2) * 2.0 - 1
    score = lin[:, 0] + lin[:, 1] + 1.5 * ring + rng.normal(0, 0.7, n)
    cols = {f"mfcc{i}_mean": lin[:, i] for i in range(4)}
    cols |= {f"chroma{i}_mean": loc[:, i] for i in range(2)}
    frame = pd.DataFrame(cols)
    frame.insert(0, "filename", [f"c{i}.wav" for i in range(n)])
    frame["label"] = np.where(score > 0, "music", "speech")
    frame.to_csv(path, index=False)


@pytest.mark.slow
def test_a_run_registers_the_selected_ensemble_as_one_pyfunc(workdir: Path) -> None:
    _ring_table(workdir / "table.csv")
    (workdir / "spec.yaml").write_text(
        "name: ens-test\nseed: 1\n"
        "data: {source: feature_table, root: ., manifest: table.csv, label_column: label}\n"
        "search: {models: [logistic, knn], n_trials: 8, cv: {folds: 4}, pruner: none}\n"
        "tracking: {plots: []}\n"
    )
    assert main(["run", str(workdir / "spec.yaml")]) == 0
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ens-test")
    runs = client.search_runs([exp.experiment_id], "tags.ensemble = 'true'")
    assert len(runs) == 1
    ens_run = runs[0]
    assert ens_run.data.tags["chosen"] == "true"  # the fixture makes two knn variants win
    members = ens_run.data.params["ensemble.members"].split(", ")
    assert len(members) >= 2 and all(m.startswith("trial-") for m in members)
    weights = [float(v) for k, v in ens_run.data.params.items() if k.startswith("weight.")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)
    trial_scores = [
        r.data.metrics["cv_f1_macro_mean"]
        for r in client.search_runs([exp.experiment_id], "tags.state = 'COMPLETE'")
    ]
    assert ens_run.data.metrics["cv_f1_macro_mean"] > max(trial_scores)

    every = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    plan = plan_resources("auto", 1, 4)
    assert parent.data.params["plan_folds"] == str(plan.folds)
    assert parent.data.params["plan_threads"] == str(plan.threads)
    version = client.get_model_version_by_alias("ens-test", "champion")
    assert version.tags["model_family"] == "ensemble"
    tagged = dict(item.split(": ") for item in version.tags["ensemble_members"].split(", "))
    assert tagged.keys() == set(members)  # weights shown to 3 decimals, logged to more
    assert all(
        float(tagged[m]) == pytest.approx(float(ens_run.data.params[f"weight.{m}"]), abs=6e-4)
        for m in members
    )
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/ens-test@champion")
    table = pd.read_csv(workdir / "table.csv")
    rows = table.drop(columns=["filename", "label"]).head(40)
    out = model.predict(rows)
    inner = model.unwrap_python_model().estimator
    assert isinstance(inner, WeightedEnsemble)
    np.testing.assert_array_equal(out["label"].to_numpy(), inner.predict(rows.to_numpy()))
    accuracy = (out["label"].to_numpy() == table["label"].head(40).to_numpy()).mean()
    assert accuracy > 0.6  # majority class is about 0.5 here
