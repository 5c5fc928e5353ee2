"""The catboost family: native categorical metadata, threads, early stopping, scikit-learn's
estimator checks, and the refusal of a spec naming it where CatBoost is not installed."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runner.models import ColumnRoles, feature_importance, get_family

REPO = Path(__file__).resolve().parents[2]
HAS_CATBOOST = importlib.util.find_spec("catboost") is not None
needs_catboost = pytest.mark.skipif(not HAS_CATBOOST, reason="the catboost extra")


def _table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise features; the label is the category of ``city`` (missing and blank cells are
    one more category, 'missing'), so only a model that reads ``city`` learns it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["f0", "f1", "f2", "f3"])
    cities = np.array(["oslo", "lima", " rome ", None, ""], dtype=object)
    frame["city"] = cities[np.arange(n) % 5]
    frame["age"] = rng.normal(40, 10, n)
    frame.loc[3, "age"] = np.nan
    labels = np.array(["north", "south", "south", "unknown", "unknown"])
    return frame, labels[np.arange(n) % 5]


@needs_catboost
def test_categorical_metadata_reach_catboost_as_categories() -> None:
    X, y = _table(200, 0)
    roles = ColumnRoles(numeric=("age",), categorical=("city",))
    family = get_family("catboost", "classification")
    model = family.make({"iterations": 200}, task="classification", seed=0, metadata=roles)
    model.fit(X, y)
    # Not one-hot encoded in front: CatBoost itself holds city as its one categorical column.
    assert type(model).__name__ == "CatBoostClassifierES"
    assert model.model_.get_cat_feature_indices() == [4]
    test, truth = _table(50, 1)
    assert (model.predict(test) == truth).all()
    unseen = test.assign(city="paris")  # a category never seen in training still predicts
    assert model.predict_proba(unseen).shape == (50, 3)
    importance = feature_importance(model, test, truth, list(X.columns), task="classification",
                                    seed=0)  # fmt: skip
    assert importance.index[0] == "city"
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(test), model.predict_proba(test))


@needs_catboost
def test_threads_come_from_the_resource_plan_and_trees_from_early_stopping(rng) -> None:
    X = rng.normal(size=(300, 5))
    y = X[:, 0] + rng.normal(0, 2.0, 300)  # noisy: the validation loss stalls early
    family = get_family("catboost", "regression")
    model = family.make({"iterations": 1000, "learning_rate": 0.3}, task="regression", seed=0,
                        threads=3)  # fmt: skip
    model.fit(X, y)
    assert model.model_.get_params()["thread_count"] == 3
    assert model.best_iteration_ < 200
    assert model.model_.tree_count_ == model.best_iteration_


def _checks():  # collected only where CatBoost is installed
    if not HAS_CATBOOST:
        return pytest.mark.skip(reason="the catboost extra")
    from sklearn.utils.estimator_checks import parametrize_with_checks

    from runner.models._catboost_estimator import CatBoostClassifierES, CatBoostRegressorES

    return parametrize_with_checks([CatBoostClassifierES(iterations=20),
                                    CatBoostRegressorES(iterations=20)])  # fmt: skip


@_checks()
def test_estimators_pass_scikit_learns_checks(estimator, check) -> None:
    check(estimator)


def test_a_spec_naming_catboost_is_refused_where_it_is_not_installed() -> None:
    """`audioml validate` exits 2 with the install command; CatBoost is made unimportable
    in that process the way an environment without it is (``find_spec`` finds nothing)."""
    code = (
        "import sys; sys.modules['catboost'] = None\n"
        "from runner.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    argv = ["validate", "experiments/gender.yaml", "--set", "search.models=[lightgbm,catboost]"]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    message = done.stdout + done.stderr
    assert (
        "search.models: model family 'catboost' needs catboost, which is not installed; "
        'pip install "audioml[catboost]"'
    ) in message
