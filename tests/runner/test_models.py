"""Model families: one contract suite over the registry, plus narrowing, pickling, importance."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from runner.errors import RegistryError, SpecError
from runner.models import (
    IMAGE_TABLE,
    MODELS,
    SEARCH_SPACES_DIR,
    ColumnRoles,
    Rows,
    ensure_loaded,
    feature_importance,
    get_family,
    importance_by_group,
    resolve_space,
)
from runner.models.keras_cnn import KerasCNNRegressor
from runner.models.keras_mlp import KerasMLPClassifier
from runner.models.lgbm import LGBMEarlyStoppingClassifier

ensure_loaded()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _param(*values: Any, id: str) -> Any:
    """A contract case, skipped where the family's optional package is not installed."""
    reason = MODELS[values[0]].missing_requirement()
    return pytest.param(*values, id=id, marks=pytest.mark.skipif(bool(reason), reason=str(reason)))


FAMILY_TASKS = [
    _param(name, task, id=f"{name}-{task}")
    for name in sorted(MODELS)
    for task in sorted(MODELS[name].tasks)
]
# Every family again with metadata columns beside the audio: table families read them
# encoded with the features, image+table families as a second input.
FAMILY_TASKS_META = [
    _param(name, task, meta, id=f"{name}-{task}-{'meta' if meta else 'audio'}")
    for name in sorted(MODELS)
    for task in sorted(MODELS[name].tasks)
    for meta in (False, True)
]
ROLES = ColumnRoles(numeric=("m_num",), categorical=("m_cat",))
# Keep keras training to a few epochs: the contract is about the API, not accuracy.
FAST = {"keras_mlp": {"epochs": 3}, "keras_cnn": {"epochs": 2, "batch_size": 16}}


def make_table(task: str, n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """60 x 8 features; feature f0 carries the label (3 classes) or most of the target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    labels = np.array(["blues", "jazz", "rock"])[np.arange(n) % 3]
    X[:, 0] += 3.0 * (np.arange(n) % 3)
    y = labels if task == "classification" else 2.0 * X[:, 0] + 0.1 * rng.normal(size=n)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y


def make_rows(task: str, n: int = 60, seed: int = 0) -> tuple[Rows, np.ndarray]:
    """``make_table``'s features, metadata (one value missing in each column) and aligned
    16x16 images, as the search hands them to an input kind."""
    frame, y = make_table(task, n, seed)
    rng = np.random.default_rng(seed + 1)
    frame["m_num"] = rng.normal(size=n)
    frame["m_cat"] = np.array(["a", "b", "c", "d"], dtype=object)[rng.integers(0, 4, n)]
    frame.loc[5, "m_num"], frame.loc[7, "m_cat"] = np.nan, None
    images = rng.normal(size=(n, 16, 16)).astype(np.float32)
    images[:, :4] += (np.arange(n) % 3)[:, None, None].astype(np.float32)
    return Rows(frame, lambda rows: images[rows]), y


def make_images(task: str, n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16, 16) float32 'log-mels'; class 1 is brighter in the low bands."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16, 16)).astype(np.float32)
    codes = np.arange(n) % 2
    X[codes == 1, :4] += 2.0
    return X, (codes if task == "classification" else codes * 10.0 + 20.0)


def sample_params(name: str, task: str, seed: int = 3) -> dict[str, Any]:
    """One parameter set, asked from a real in-memory study as the search does."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params = study.ask(fixed_distributions=resolve_space(MODELS[name], task)).params
    params.update(FAST.get(name, {}))
    if name == "voting":  # the search injects the best trials of other families
        first = "logistic" if task == "classification" else "ridge"
        params["members"] = [(first, {}), ("random_forest", {"n_estimators": 20}), ("knn", {})]
    return params


def data_for(name: str, task: str, meta: bool = False) -> tuple[Any, np.ndarray]:
    """The family's input, built by its input kind (as training and serving build it)."""
    rows, y = make_rows(task)
    columns = [f"f{i}" for i in range(8)] + (ROLES.columns if meta else [])
    roles = ROLES.restrict(columns)
    return MODELS[name].input.take(rows, np.arange(len(y)), columns, roles), y


def fit_predict(
    name: str, task: str, params: dict[str, Any], meta: bool = False
) -> tuple[Any, np.ndarray]:
    X, y = data_for(name, task, meta)
    metadata = ROLES if meta else None
    estimator = MODELS[name].make(params, task=task, seed=7, metadata=metadata).fit(X, y)
    out = estimator.predict_proba(X) if task == "classification" else estimator.predict(X)
    return estimator, out


# --- the contract every family passes ---------------------------------------------------


@pytest.mark.parametrize(("name", "task"), FAMILY_TASKS)
def test_space_is_nonempty_and_loggable(name: str, task: str) -> None:
    space = MODELS[name].space(task)
    assert space
    for dist in space.values():
        assert isinstance(dist, BaseDistribution)
        json.loads(distribution_to_json(dist))


@pytest.mark.parametrize(("name", "task", "meta"), FAMILY_TASKS_META)
def test_family_fits_predicts_and_is_deterministic(name: str, task: str, meta: bool) -> None:
    params = sample_params(name, task)
    json.dumps(params)  # logged as MLflow params
    X, y = data_for(name, task, meta)
    estimator, out = fit_predict(name, task, params, meta)
    assert estimator.predict(X).shape == (len(y),)
    if task == "classification":
        assert out.shape == (len(y), len(np.unique(y)))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
        assert set(estimator.predict(X)) <= set(y)
    else:
        assert np.isfinite(out).all()
    if MODELS[name].deterministic:
        _, again = fit_predict(name, task, params, meta)
        np.testing.assert_array_equal(out, again)


# Keras's fits take a minute per space here, and Keras announces removals otherwise.
NOT_KERAS = [p for p in FAMILY_TASKS if not p.values[0].startswith("keras_")]


@pytest.mark.parametrize(("name", "task"), NOT_KERAS)
def test_every_choice_of_the_space_fits_without_a_removal_notice(name: str, task: str) -> None:
    """scikit-learn and LightGBM announce a removal with a FutureWarning (scikit-learn 1.9:
    the friedman_mse criterion); a searched value that draws one breaks on an upgrade."""
    choices = {
        k: d.choices
        for k, d in MODELS[name].space(task).items()
        if isinstance(d, CategoricalDistribution)
    }
    base = sample_params(name, task)
    for params in [base] + [{**base, k: c} for k, cs in choices.items() for c in cs]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            fit_predict(name, task, params)


@pytest.mark.parametrize(("name", "task"), FAMILY_TASKS)
def test_build_refuses_unknown_param(name: str, task: str) -> None:
    with pytest.raises(ValueError, match=r"params: 'bogus' is not one of the parameters"):
        MODELS[name].make({"bogus": 1}, task=task, seed=0)


@pytest.mark.parametrize(
    "name",
    [_param(n, id=n) for n in sorted(MODELS) if MODELS[n].supports("classification")],
)
def test_balanced_classifiers_fit_imbalanced_data(name: str) -> None:
    X, _ = data_for(name, "classification")
    y = np.where(np.arange(60) % 6 == 0, "rare", "common")  # 1 in 6, in every prefix
    params = sample_params(name, "classification")
    estimator = MODELS[name].make(params, task="classification", seed=0, balanced=True)
    assert estimator.fit(X, y).predict_proba(X).shape == (len(y), 2)


def test_balanced_sets_class_weight() -> None:
    model = MODELS["logistic"].make({}, task="classification", seed=0, balanced=True)
    assert model.get_params()["model__class_weight"] == "balanced"


def test_registry_refuses_unsupported_task() -> None:
    with pytest.raises(
        RegistryError,
        match=r"'logistic' is not one of the model families of task 'regression'.*ridge",
    ):
        get_family("logistic", "regression")
    with pytest.raises(
        RegistryError, match="task: 'classification' is not one of the tasks of model family"
    ):
        MODELS["ridge"].make({}, task="classification", seed=0)
    with pytest.raises(RegistryError, match=r"search\.models: 'lgbm' is not one of .*lightgbm"):
        get_family("lgbm")


def test_registry_lists_every_documented_family() -> None:
    documented = {
        "logistic",
        "ridge",
        "svm",
        "knn",
        "decision_tree",
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "hist_gradient_boosting",
        "mlp",
        "lightgbm",
        "keras_mlp",
        "keras_cnn",
        "voting",
        "catboost",
    }
    assert set(MODELS) == documented
    assert MODELS["keras_cnn"].input is IMAGE_TABLE
    assert {n for n, f in MODELS.items() if f.tasks != {"classification", "regression"}} == {
        "logistic",
        "ridge",
    }


def test_voting_members_and_refusals() -> None:
    params = {"n_members": 2, "members": [("logistic", {}), ("knn", {}), ("svm", {})]}
    model = MODELS["voting"].make(params, task="classification", seed=0)
    assert [name for name, _ in model.estimators] == ["0_logistic", "1_knn"]
    with pytest.raises(ValueError, match=r"voting params\.members: \[\] must be a non-empty list"):
        MODELS["voting"].make({"n_members": 2}, task="classification", seed=0)
    with pytest.raises(
        ValueError, match=r"members\[0\]: 'keras_cnn' is not one of the table families: "
    ):
        MODELS["voting"].make({"members": [("keras_cnn", {})]}, task="regression", seed=0)


def test_lightgbm_stops_early_on_an_inner_split() -> None:
    X, y = make_table("classification", n=300)
    model = MODELS["lightgbm"].make({"n_estimators": 1000}, task="classification", seed=0)
    model.fit(X, y)
    assert isinstance(model, LGBMEarlyStoppingClassifier)
    assert 1 <= model.best_iteration_ < 1000
    assert model.model_.n_estimators == model.best_iteration_


# --- search-space narrowing ------------------------------------------------------------


def test_narrowing_keeps_scale_and_fixes_values() -> None:
    overrides = {"C": [0.1, 10], "kernel": ["rbf"], "gamma": 0.01}
    space = resolve_space(MODELS["svm"], "classification", overrides)
    assert space["C"] == FloatDistribution(0.1, 10.0, log=True)
    assert space["kernel"] == CategoricalDistribution(["rbf"])
    assert space["gamma"] == FloatDistribution(0.01, 0.01, log=True)
    knn = resolve_space(MODELS["knn"], "regression", {"n_neighbors": {"high": 10}})
    assert knn["n_neighbors"] == IntDistribution(1, 10, log=True)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"C": [1e-4, 10]},
            r"search\.spaces\.svm\.C: \[0\.0001, 10\] must be .*\[0\.001, 1000\.0\]",
        ),
        ({"C": [10, 1]}, r"search\.spaces\.svm\.C: \[10, 1\] must be a float range"),
        (
            {"kernel": ["poly"]},
            r"search\.spaces\.svm\.kernel: \['poly'\] must be one of rbf, linear",
        ),
        (
            {"Cee": 1.0},
            r"search\.spaces\.svm\.Cee: 'Cee' is not one of the parameters .*: C, gamma",
        ),
        (
            {"epsilon": 0.1},
            r"search\.spaces\.svm\.epsilon: 'epsilon' is not one of the parameters",
        ),
    ],
)
def test_widening_or_unknown_is_refused(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        resolve_space(MODELS["svm"], "classification", overrides)


def test_int_parameters_refuse_fractions() -> None:
    with pytest.raises(SpecError, match=r"n_neighbors: 2\.5 must be an int range"):
        resolve_space(MODELS["knn"], "classification", {"n_neighbors": 2.5})


def test_yaml_file_narrows_first_and_spec_cannot_rewiden(tmp_path: Path) -> None:
    (tmp_path / "svm.yaml").write_text("C: [0.01, 100]\nepsilon: [0.01, 0.1]\n")
    space = resolve_space(MODELS["svm"], "classification", config_dir=tmp_path)
    assert space["C"] == FloatDistribution(0.01, 100.0, log=True)
    assert "epsilon" not in space  # a regression-only name is skipped for classification
    match = (
        r"^search\.spaces\.svm\.C: \[1, 1000\] must be a float range .*\[0\.01, 100\.0\], "
        r"log scale; only narrowing is allowed, and .*svm\.yaml narrows C$"
    )
    with pytest.raises(SpecError, match=match):
        resolve_space(MODELS["svm"], "classification", {"C": [1, 1000]}, config_dir=tmp_path)


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "knn.yaml").write_text("n_neighbors: [0, 100]\n")
    match = r"knn\.yaml: n_neighbors: \[0, 100\] must be an int range"
    with pytest.raises(SpecError, match=match):
        resolve_space(MODELS["knn"], "classification", config_dir=tmp_path)


@pytest.mark.parametrize("path", sorted(SEARCH_SPACES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_space_files_narrow_valid_families(path: Path) -> None:
    family = get_family(path.stem)
    for task in family.tasks:
        assert resolve_space(family, task) != family.space(task)


def test_keras_cnn_epochs_are_capped_for_cpu() -> None:
    assert resolve_space(MODELS["keras_cnn"], "classification")["epochs"].high <= 25


# --- keras wrappers ----------------------------------------------------------------------


def test_keras_wrapper_follows_the_estimator_api() -> None:
    model = KerasMLPClassifier(units=8, epochs=2)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, 8)))


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_keras_classifier_pipeline_pickles_after_fit(dumps: Any) -> None:
    X, y = make_table("classification")
    model = (
        MODELS["keras_mlp"]
        .make(sample_params("keras_mlp", "classification"), task="classification", seed=0)
        .fit(X, y)
    )
    restored = pickle.loads(dumps(model))
    np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    assert list(restored.classes_) == ["blues", "jazz", "rock"]


def test_keras_cnn_regressor_pickles_after_fit() -> None:
    X, y = make_images("regression")
    model = KerasCNNRegressor(n_blocks=1, filters=4, dense_units=8, epochs=2, random_state=0)
    model.fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict(X), model.predict(X), rtol=1e-6)
    assert restored.n_epochs_ == model.n_epochs_ <= 2


# --- feature importance ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("random_forest", "classification"),
        ("lightgbm", "regression"),
        ("logistic", "classification"),
        ("svm", "regression"),
        ("knn", "classification"),
        ("hist_gradient_boosting", "regression"),
    ],
)
def test_importance_ranks_the_informative_feature_first(name: str, task: str) -> None:
    X, y = make_table(task, n=120)
    model = MODELS[name].make({}, task=task, seed=0).fit(X, y)
    importance = feature_importance(model, X, y, list(X.columns), task=task, seed=0)
    assert importance.index[0] == "f0"
    assert (importance >= 0).all()
    assert importance.is_monotonic_decreasing
    assert sorted(importance.index) == sorted(X.columns)


def test_importance_by_group_sums_per_group() -> None:
    importance = pd.Series({"mfcc_1": 0.5, "mfcc_2": 0.25, "zcr": 0.125, "tempo": 0.0625})
    grouped = importance_by_group(importance, {"mfcc": ["mfcc_1", "mfcc_2"], "zcr": ["zcr"]})
    assert grouped.to_dict() == {"mfcc": 0.75, "zcr": 0.125, "other": 0.0625}


def test_importance_refuses_images() -> None:
    with pytest.raises(ValueError, match="2-D X"):
        feature_importance(
            None, np.zeros((4, 2, 2)), np.zeros(4), ["a", "b"], task="regression", seed=0
        )


def test_forests_use_their_native_importances() -> None:
    """A fitted forest keeps its own feature_importances_ (no permutation fallback)."""
    from runner.models import MODELS, ensure_loaded, feature_importance

    ensure_loaded()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    y = np.where(X[:, 2] > 0, "a", "b")
    for name in ("random_forest", "extra_trees", "gradient_boosting"):
        est = MODELS[name].make({}, task="classification", seed=0).fit(X, y)
        imp = feature_importance(est, X, y, list("vwxyz"), task="classification", seed=0)
        native = unwrap_importances(est)
        assert np.allclose(imp.loc[list("vwxyz")].to_numpy(), native), name
        assert imp.index[0] == "x"


def unwrap_importances(est) -> np.ndarray:
    from runner.models.importance import unwrap

    return unwrap(est).feature_importances_


# Where each estimator class (or pickled function) was defined before the family modules
# stopped importing scikit-learn, and where it is defined now.
MOVED = {
    b"runner.models._base\nBalancedClassifier": b"runner.models._balanced\nBalancedClassifier",
    b"runner.models._inputs\nMetadataEncoded": b"runner.models._encoding\nMetadataEncoded",
    b"runner.models._inputs\nas_text": b"runner.models._encoding\nas_text",
    b"runner.models.lgbm\nLGBMEarlyStoppingClassifier": (
        b"runner.models._lgbm_estimator\nLGBMEarlyStoppingClassifier"
    ),
}
UNPICKLE = """
import pickle, sys
import numpy as np
model = pickle.loads(sys.stdin.buffer.read())
print(type(model).__module__, type(model).__name__, list(model.predict(model.X_check_)))
"""


@pytest.mark.parametrize("family", ["gradient_boosting", "lightgbm"])
def test_a_model_pickled_under_the_old_module_paths_still_loads(family: str) -> None:
    """A logged model names its classes by module path: written before the estimators moved
    (old paths in the pickle), it loads in a fresh process and predicts as when it was fitted.
    """
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "a": np.r_[rng.normal(-2, 1, 30), rng.normal(2, 1, 30)],
            "m_num": rng.normal(size=60),
            "m_cat": rng.choice(["x", "y", " ", None], size=60),
        }
    )
    y = np.array(["low"] * 30 + ["high"] * 30)
    params = {"n_estimators": 20} if family == "gradient_boosting" else {"n_estimators": 50}
    model = get_family(family).make(
        params, task="classification", seed=0, balanced=True, metadata=ROLES
    )
    model.fit(X, y)
    model.X_check_ = X.iloc[[0, 59]]
    data = pickle.dumps(model, protocol=2)  # protocol 2 names classes as "module\nname"
    for old, new in MOVED.items():
        data = data.replace(new, old)
    olds = [old for old in MOVED if old in data]
    assert len(olds) >= 3, olds  # the wrapper, its text encoder and the balanced/LGBM model
    done = subprocess.run(
        [sys.executable, "-c", UNPICKLE], input=data, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    expected = f"runner.models._encoding MetadataEncoded {list(model.predict(model.X_check_))}"
    assert done.stdout.decode().strip() == expected
    assert list(model.predict(model.X_check_)) == ["low", "high"]


def test_svm_stops_at_its_iteration_cap_on_a_hard_linear_problem(rng) -> None:
    """A linear kernel at a large C on a noisy log target once ran one fold for over 12
    minutes; the cap ends it with a ConvergenceWarning and a usable model."""
    from sklearn.exceptions import ConvergenceWarning

    X = rng.normal(size=(800, 60))
    y = np.exp(3.5 + 0.3 * X[:, 0] + rng.normal(0, 0.5, 800))
    family = get_family("svm", "regression")
    params = {"C": 224.0, "gamma": 0.01, "kernel": "linear", "epsilon": 0.1}
    model = family.make(params, task="regression", seed=0, target_transform="log")
    with pytest.warns(ConvergenceWarning, match="max_iter=200000"):
        model.fit(X, y)
    assert np.corrcoef(np.log(model.predict(X)), X[:, 0])[0, 1] > 0.5


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_svm_regressor_predicts_what_libsvm_predicts(rng, kernel) -> None:
    """The family's SVR computes its kernel with matrix products, in row blocks; its
    predictions are libsvm's to rounding, for every block and the remainder."""
    from sklearn.svm import SVR

    from runner.models._svr_estimator import BlasSVR, kernel_predict

    X = rng.normal(size=(300, 12))
    y = X[:, 0] - 2 * X[:, 1] ** 2 + rng.normal(0, 0.1, 300)
    params = {"C": 10.0, "gamma": 0.05, "kernel": kernel, "epsilon": 0.05}
    model = get_family("svm", "regression").make(params, task="regression", seed=0).fit(X, y)
    svr = model.regressor_.named_steps["model"]
    assert type(svr) is BlasSVR and len(svr.support_) > 50
    Z = model.regressor_.named_steps["scale"].transform(rng.normal(size=(1001, 12)))
    libsvm = SVR.predict(svr, Z)
    np.testing.assert_allclose(kernel_predict(svr, Z, rows=64), libsvm, rtol=0, atol=1e-9)
    np.testing.assert_allclose(svr.predict(Z), libsvm, rtol=0, atol=1e-9)
    assert np.std(libsvm) > 0.2  # a fitted function of the rows, not a constant
    with pytest.raises(ValueError, match="features"):
        svr.predict(Z[:, :5])


@pytest.mark.parametrize("as_frame", [False, True])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_stacked_permutation_importance_equals_scikit_learns(rng, task, as_frame) -> None:
    """The same permutations and scores as sklearn's, from a few predict calls (the final
    ensemble spent 44 s in one call per permuted copy)."""
    from sklearn.inspection import permutation_importance

    from runner.models import importance

    X = rng.normal(size=(120, 5))
    signal = X[:, 0] + 0.5 * X[:, 1]
    if task == "classification":
        y = np.where(signal + rng.normal(0, 0.5, 120) > 0, "a", "b")
        model = get_family("logistic", task).make({"C": 1.0}, task=task, seed=0)
    else:
        y = signal + rng.normal(0, 0.3, 120)
        model = get_family("ridge", task).make({"alpha": 1.0}, task=task, seed=0)
    data = pd.DataFrame(X, columns=list("vwxyz")) if as_frame else X
    model.fit(data, y)
    scoring = "accuracy" if task == "classification" else "r2"
    ref = permutation_importance(model, data, y, scoring=scoring, n_repeats=3, random_state=7)
    # 700 rows a call: several predict calls and a partial last one.
    got = importance.permuted_columns(
        model, data, y, task=task, seed=7, n_repeats=3, batch_rows=700
    )
    np.testing.assert_allclose(got, ref.importances_mean, atol=1e-12)
    assert got[0] > got[2] + 0.05  # the informative column matters
