"""The stacking layer: its nested CV is the stacker refit per fold on the other folds'
out-of-fold rows, it learns what averaging cannot (a sum of two views), and the served
estimator feeds the stacker the members' predictions exactly as training did."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from runner.data.splits import Split
from runner.final.ensemble import Oof, select_ensemble
from runner.final.stacking import STACK_SIZE, clip_features, fit_stack, make_stacker
from runner.metrics import score_all
from runner.models import TABLE, Inputs, Rows, get_family
from runner.models._bagged import BaggedModel
from runner.models._stacked import StackedModel, stack_inputs
from runner.models._weighted_ensemble import EnsembleMember
from runner.search.evaluation import cross_validate

COLUMNS = ["a1", "a2", "b1", "b2"]


def _folds(n: int, k: int = 4) -> list[Split]:
    fold = np.arange(n) % k
    return [Split(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]


def _sum_of_views(rng, n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    """y = view a + view b: a model of one view misses the other's half."""
    frame = pd.DataFrame(rng.normal(0, 1, (n, 4)), columns=COLUMNS)
    y = 3 * frame["a1"] - 2 * frame["a2"] + 3 * frame["b1"] + 2 * frame["b2"]
    return frame, (y + rng.normal(0, 0.1, n)).to_numpy()


def _ids(n: int) -> np.ndarray:
    return np.asarray([f"c{i}" for i in range(n)])


def _view_cv(frame: pd.DataFrame, y: np.ndarray, columns: list[str], task: str, **kw):
    family = get_family("ridge" if task == "regression" else "logistic", task)
    inputs = Inputs(TABLE, Rows(frame), columns)
    return cross_validate(
        lambda: family.make({}, task=task, seed=0), inputs, y, _ids(len(y)), _folds(len(y)),
        task=task, classes=kw.get("classes"), keep_models=True,
    )  # fmt: skip


def _oof(number: int, cv, metric: str) -> Oof:
    values = np.vstack(cv.oof_proba) if cv.oof_proba else np.asarray(cv.oof_pred, float)
    return Oof(number, "ridge", cv.mean()[metric], values)


def test_the_stack_learns_a_sum_that_averaging_cannot(rng) -> None:
    frame, y = _sum_of_views(rng)
    cv_a = _view_cv(frame, y, ["a1", "a2"], "regression")
    cv_b = _view_cv(frame, y, ["b1", "b2"], "regression")
    oofs = [_oof(0, cv_a, "mae"), _oof(1, cv_b, "mae")]
    truth, folds = np.asarray(cv_a.oof_true), np.asarray(cv_a.oof_fold)
    ids = np.asarray(cv_a.oof_ids)
    stack = fit_stack(
        oofs, truth, folds, ids, task="regression", metric="mae", classes=None, seed=0
    )
    selection = select_ensemble(oofs, truth, folds, task="regression", metric="mae")
    # Each view alone misses half of y (MAE 2.87 with this seed); their mean halves both
    # (2.05); the ridge stacker learns the sum (0.54).
    assert min(o.value for o in oofs) > 2.5
    assert selection.score > 1.8
    assert stack.value < 0.6 and stack.kind == "linear"
    assert stack.members == oofs and len(stack.cv.folds) == 4


def test_nested_cv_refits_the_stacker_on_the_other_folds(rng) -> None:
    frame, y = _sum_of_views(rng, 120)
    cvs = [_view_cv(frame, y, cols, "regression") for cols in (["a1", "a2"], ["b1", "b2"])]
    oofs = [_oof(n, cv, "rmse") for n, cv in enumerate(cvs)]
    truth, folds = np.asarray(cvs[0].oof_true), np.asarray(cvs[0].oof_fold)
    ids = np.asarray(cvs[0].oof_ids)
    stack = fit_stack(
        oofs, truth, folds, ids, task="regression", metric="rmse", classes=None, seed=0
    )
    X = stack_inputs([o.values for o in oofs], None)
    for k in range(4):
        inside, held = folds != k, folds == k
        by_hand = make_stacker("linear", "regression", 0).fit(X[inside], truth[inside])
        expected = score_all("regression", truth[held], by_hand.predict(X[held]))
        assert stack.cv.folds[k] == pytest.approx(expected, rel=1e-12)
        # The trials' metric keys, so its child run compares with theirs.
        assert set(stack.cv.folds[k]) == set(cvs[0].folds[k])


def test_the_better_stacker_kind_is_kept_and_one_member_is_no_stack(rng) -> None:
    frame, y = _sum_of_views(rng, 120)
    cvs = [_view_cv(frame, y, cols, "regression") for cols in (["a1", "a2"], ["b1", "b2"])]
    oofs = [_oof(n, cv, "mae") for n, cv in enumerate(cvs)]
    truth, folds = np.asarray(cvs[0].oof_true), np.asarray(cvs[0].oof_fold)
    ids = np.asarray(cvs[0].oof_ids)
    kw = {"task": "regression", "metric": "mae", "classes": None, "seed": 0}
    both = fit_stack(oofs, truth, folds, ids, boosted=True, **kw)
    linear = fit_stack(oofs, truth, folds, ids, **kw)
    # A sum is linear: the shallow boosted stacker cannot beat the ridge on 120 clips.
    assert both.kind == "linear" and both.value == pytest.approx(linear.value)
    assert fit_stack(oofs[:1], truth, folds, ids, **kw) is None
    assert STACK_SIZE == 5 and len(fit_stack(oofs * 4, truth, folds, ids, **kw).members) == 5


def test_served_stack_feeds_the_stacker_the_members_predictions(rng) -> None:
    frame, y = _sum_of_views(rng)
    views = [["a1", "a2"], ["b1", "b2"]]
    cvs = [_view_cv(frame, y, cols, "regression") for cols in views]
    oofs = [_oof(n, cv, "mae") for n, cv in enumerate(cvs)]
    truth, folds = np.asarray(cvs[0].oof_true), np.asarray(cvs[0].oof_fold)
    ids = np.asarray(cvs[0].oof_ids)
    stack = fit_stack(
        oofs, truth, folds, ids, task="regression", metric="mae", classes=None, seed=0
    )
    ridge = get_family("ridge", "regression")
    refit = [EnsembleMember(ridge.make({}, task="regression", seed=0), c, False, f"m{i}")
             for i, c in enumerate(views)]  # fmt: skip
    model = StackedModel(refit, COLUMNS, "regression", stack.stacker).fit(frame.to_numpy(), y)
    model = pickle.loads(pickle.dumps(model))
    X = frame.to_numpy()
    members = [m.estimator.predict(X[:, [COLUMNS.index(c) for c in m.columns]]) for m in refit]
    expected = stack.stacker.predict(np.column_stack(members))
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
    assert np.abs(model.predict(X) - y).mean() < 0.6  # the sum, as the nested CV said

    # Bagged members: already fitted, so fit() refits nothing.
    bagged = [
        EnsembleMember(BaggedModel(cv.fold_models, "regression").fit(None), c, False, f"m{i}")
        for i, (c, cv) in enumerate(zip(views, cvs, strict=True))
    ]
    model = StackedModel(bagged, COLUMNS, "regression", stack.stacker).fit(frame, y)
    folds_mean = [np.mean([f.predict(frame[c].to_numpy()) for f in cv.fold_models], axis=0)
                  for c, cv in zip(views, cvs, strict=True)]  # fmt: skip
    expected = stack.stacker.predict(np.column_stack(folds_mean))
    np.testing.assert_allclose(model.predict(frame), expected, rtol=1e-12)


def test_classification_stack_with_the_feature_columns(rng) -> None:
    n = 160
    frame = pd.DataFrame(rng.normal(0, 1, (n, 4)), columns=COLUMNS)
    label = np.where(frame["a1"] + frame["b1"] > 0, "yes", "no")
    classes = ["no", "yes"]
    cvs = [_view_cv(frame, label, c, "classification", classes=classes)
           for c in (["a1", "a2"], ["b1", "b2"])]  # fmt: skip
    oofs = [_oof(n, cv, "f1_macro") for n, cv in enumerate(cvs)]
    truth, folds = np.asarray(cvs[0].oof_true), np.asarray(cvs[0].oof_fold)
    ids = np.asarray(cvs[0].oof_ids)
    passed = clip_features(frame, _ids(n), COLUMNS, ids)
    np.testing.assert_array_equal(passed, frame.loc[[int(i[1:]) for i in ids]].to_numpy())
    kw = {"task": "classification", "metric": "f1_macro", "classes": classes, "seed": 0}
    plain = fit_stack(oofs, truth, folds, ids, **kw)
    with_features = fit_stack(oofs, truth, folds, ids, passthrough=passed, **kw)
    # a1 + b1 > 0 is linear in the features: the stacker reading them gets it near right.
    assert with_features.value > max(o.value for o in oofs) + 0.1
    assert with_features.value > plain.value
    logistic = get_family("logistic", "classification")
    members = [EnsembleMember(logistic.make({}, task="classification", seed=0), c, False, f"m{i}")
               for i, c in enumerate((["a1", "a2"], ["b1", "b2"]))]  # fmt: skip
    model = StackedModel(members, COLUMNS, "classification", with_features.stacker, COLUMNS,
                         classes).fit(frame, label)  # fmt: skip
    proba = model.predict_proba(frame)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert model.classes_.tolist() == classes
    assert (model.predict(frame) == label).mean() > 0.9
