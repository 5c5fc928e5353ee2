"""The bagged form: the fold models a trial's CV fitted, averaged; the rule that chooses it
over a refit; which trials keep their fold models."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from runner.config.loading import load_spec, spec_hash
from runner.data.splits import Split
from runner.final.bagging import choose_form, refit_estimate
from runner.models import TABLE, Inputs, Rows, get_family
from runner.models._bagged import BaggedModel
from runner.search.evaluation import cross_validate
from runner.search.fold_models import KEEP, keeps_folds, worth_keeping

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"


def _folds(n: int, k: int) -> list[Split]:
    fold = np.arange(n) % k
    return [Split(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]


def _table(rng, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    X = y[:, None] * 1.5 + rng.normal(0, 1, (n, 4))
    return X, np.asarray(["a", "b", "c"])[y]


def _cv(X: np.ndarray, y: np.ndarray, folds: list[Split], task: str = "classification"):
    name = "logistic" if task == "classification" else "ridge"
    family = get_family(name, task)
    inputs = Inputs(TABLE, Rows(pd.DataFrame(X, columns=[*"wxyz"])), [*"wxyz"])
    ids = np.asarray([f"c{i}" for i in range(len(y))])
    return cross_validate(
        lambda: family.make({}, task=task, seed=0), inputs, y, ids, folds, task=task,
        classes=sorted(set(y)) if task == "classification" else None, keep_models=True,
    )  # fmt: skip


def test_bagged_probabilities_are_the_fold_models_mean(rng) -> None:
    X, y = _table(rng)
    cv = _cv(X, y, _folds(len(y), 4))
    assert len(cv.fold_models) == 4 and len(cv.fold_fit_s) == 4
    bagged = pickle.loads(pickle.dumps(BaggedModel(cv.fold_models, "classification", "abc")))
    bagged.fit(None)  # fitted on the folds: nothing to refit
    expected = np.mean([m.predict_proba(X) for m in cv.fold_models], axis=0)
    np.testing.assert_allclose(bagged.predict_proba(X), expected, rtol=0, atol=1e-15)
    assert bagged.predict(X).tolist() == np.asarray(list("abc"))[expected.argmax(1)].tolist()
    assert (bagged.predict(X) == y).mean() > 0.8  # 0.90 with this seed; chance is 1/3


def test_a_fold_without_a_class_gives_it_zero(rng) -> None:
    X, y = _table(rng, 60)
    y = np.where(np.arange(60) < 20, "c", np.where(np.arange(60) % 2, "a", "b"))
    # Fold 0 holds every "c" row, so its model never saw "c".
    folds = [Split(np.arange(20, 60), np.arange(20)), Split(np.arange(40), np.arange(40, 60))]
    cv = _cv(X, y, folds)
    bagged = BaggedModel(cv.fold_models, "classification", ["a", "b", "c"]).fit(None)
    only_ab = cv.fold_models[0].predict_proba(X)[:, :2]
    with_c = cv.fold_models[1].predict_proba(X)
    expected = (np.hstack([only_ab, np.zeros((60, 1))]) + with_c) / 2
    np.testing.assert_allclose(bagged.predict_proba(X), expected, rtol=0, atol=1e-15)


def test_bagged_regression_is_the_mean_prediction(rng) -> None:
    X = rng.normal(0, 1, (90, 4))
    y = X @ np.asarray([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.1, 90)
    cv = _cv(X, y, _folds(90, 3), task="regression")
    bagged = BaggedModel(cv.fold_models, "regression").fit(None)
    expected = np.mean([m.predict(X) for m in cv.fold_models], axis=0)
    np.testing.assert_allclose(bagged.predict(X), expected, rtol=0, atol=1e-12)


def test_an_empty_bag_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one fitted fold model"):
        BaggedModel([], "regression").fit(None)


def test_the_form_rule() -> None:
    kept = {"folds_kept": True, "estimate_s": 12.0}
    assert choose_form("auto", **kept, left_s=5.0).form == "bagged"
    assert choose_form("auto", **kept, left_s=5.0).reason == (
        "refit estimated 12.0 s, 5.0 s left of search.timeout_s"
    )
    assert choose_form("auto", **kept, left_s=30.0).form == "refit"
    assert choose_form("auto", **kept, left_s=float("inf")).form == "refit"
    assert choose_form("refit", **kept, left_s=0.0).form == "refit"
    assert choose_form("bagged", **kept, left_s=1e9).form == "bagged"
    gone = choose_form("bagged", folds_kept=False, estimate_s=0, left_s=0, missing="trial 3")
    assert (gone.form, gone.reason) == (
        "refit",
        "no fold models kept for trial 3 (final.form bagged)",
    )


def test_refit_estimate_scales_the_mean_fold_by_k_over_k_minus_1() -> None:
    assert refit_estimate([1.0, 2.0, 3.0, 2.0]) == pytest.approx(2.0 * 4 / 3)
    assert np.isnan(refit_estimate([]))


def test_only_specs_that_can_bag_keep_fold_models() -> None:
    def spec(*sets: str):
        return load_spec(DEMO, list(sets))

    assert keeps_folds(spec("final.form=bagged"))
    assert keeps_folds(spec("final.form=auto", "search.timeout_s=30"))
    assert not keeps_folds(spec("final.form=auto", "search.timeout_s=null"))
    assert not keeps_folds(spec("final.form=refit", "search.timeout_s=30"))
    # The final step's settings never change the study (its name carries this hash).
    base = spec_hash(spec())
    assert spec_hash(spec("final.form=bagged", "final.stack=false")) == base


def test_only_the_best_trials_keep_their_fold_models() -> None:
    study = optuna.create_study(direction="maximize")
    for v in range(KEEP + 2):  # values 0 .. KEEP+1
        study.add_trial(optuna.trial.create_trial(value=float(v)))
    assert worth_keeping(study, float(KEEP + 5))
    assert worth_keeping(study, 2.5)  # 7 complete trials score better
    assert not worth_keeping(study, 1.5)  # 8 do
    minimize = optuna.create_study(direction="minimize")
    for v in range(KEEP + 2):
        minimize.add_trial(optuna.trial.create_trial(value=float(v)))
    assert worth_keeping(minimize, KEEP - 1.5) and not worth_keeping(minimize, KEEP - 0.5)


@pytest.mark.slow
def test_keras_fold_models_bag_after_a_pickle_round_trip(rng) -> None:
    pytest.importorskip("keras")
    X, y = _table(rng, 60)
    family = get_family("keras_mlp", "classification")
    params = {"n_layers": 1, "units": 16, "dropout": 0.0, "learning_rate": 1e-2,
              "batch_size": 16, "epochs": 20}  # fmt: skip
    inputs = Inputs(TABLE, Rows(pd.DataFrame(X, columns=[*"wxyz"])), [*"wxyz"])
    cv = cross_validate(
        lambda: family.make(params, task="classification", seed=0), inputs, y,
        np.asarray([f"c{i}" for i in range(60)]), _folds(60, 3), task="classification",
        classes=["a", "b", "c"], keep_models=True,
    )  # fmt: skip
    blob = pickle.dumps(BaggedModel(cv.fold_models, "classification", "abc"))
    bagged = pickle.loads(blob).fit(None)  # how folds.pkl and the logged model travel
    expected = np.mean([m.predict_proba(X) for m in cv.fold_models], axis=0)
    np.testing.assert_allclose(bagged.predict_proba(X), expected, rtol=1e-6)
    assert (bagged.predict(X) == y).mean() > 0.6  # chance is 1/3
