"""Metadata columns with roles: spec and source checks, encoders fitted on training folds
only, importance and the served model's handling of metadata, and the log target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from runner.config.loading import load_spec
from runner.data.dataset import prepare_dataset
from runner.data.splits import Split
from runner.errors import DataError, SpecError
from runner.models import (
    MODELS,
    TABLE,
    ColumnRoles,
    Inputs,
    Rows,
    ensure_loaded,
    feature_importance,
    importance_by_group,
)
from runner.search.evaluation import cross_validate
from runner.serving.model import AudioModel, Limits

ensure_loaded()
REPO = Path(__file__).resolve().parents[2]
ROLES = ColumnRoles(numeric=("votes",), categorical=("accent",))


def _spec(tmp_path: Path, **data: object) -> Path:
    lines = ["name: meta", "task: regression", "search: {metric: mae, models: [ridge]}", "data:"]
    base = {"source": "manifest", "root": str(tmp_path), "manifest": "m.csv",
            "label_column": "age"}  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in {**base, **data}.items()]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"metadata": "{categorical: [age]}"}, r"data\.metadata: 'age' is data\.label_column"),
        ({"metadata": "{numeric: [v], categorical: [v]}"}, r"'v' is listed twice"),
        (
            {"source": "folder", "metadata": "{numeric: [v]}"},
            r"data\.source: 'folder' is not one of the sources with metadata columns",
        ),
    ],
)
def test_spec_refuses_bad_metadata(tmp_path: Path, data: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_spec(_spec(tmp_path, **data))


def test_log_target_needs_regression(tmp_path: Path) -> None:
    path = _spec(tmp_path)
    with pytest.raises(
        SpecError,
        match=r"search\.target_transform: 'log' must be 'none' for task 'classification'",
    ):
        load_spec(path, ["task=classification", "search.metric=f1_macro",
                         "search.models=[logistic]", "search.target_transform=log"])  # fmt: skip


def _manifest(tmp_path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)


def test_source_names_a_missing_or_non_numeric_metadata_column(tmp_path: Path) -> None:
    _manifest(tmp_path, [{"path": "a.wav", "age": 30, "votes": "x", "accent": "us"}])
    spec = load_spec(_spec(tmp_path, metadata="{numeric: [votes], categorical: [region]}"))
    with pytest.raises(
        DataError, match=r"data\.metadata\.categorical: 'region' is not one of the columns"
    ):
        prepare_dataset(spec, progress=False)
    spec = load_spec(_spec(tmp_path, metadata="{numeric: [votes]}"))
    with pytest.raises(DataError, match=r"row 1, column 'votes': 'x' must be a number"):
        prepare_dataset(spec, progress=False)


def test_log_target_refuses_negative_targets_naming_the_smallest(tmp_path: Path) -> None:
    _manifest(tmp_path, [{"path": f"{i}.wav", "age": a} for i, a in enumerate([3, -2.5, 7])])
    spec = load_spec(_spec(tmp_path), ["search.target_transform=log"])
    with pytest.raises(DataError, match=r"needs targets >= 0; the smallest is -2\.5 \(clip '1"):
        prepare_dataset(spec, progress=False)


def test_feature_table_keeps_declared_metadata_with_roles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "filename": [f"c{i}.wav" for i in range(12)],
            "f_mean": rng.normal(size=12),
            "age": np.arange(12) + 20.0,
            "accent": ["us", "", "uk"] * 4,
            "votes": ["1", "", "3"] * 4,
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    spec = load_spec(_spec(tmp_path, source="feature_table", manifest="t.csv",
                           metadata="{numeric: [votes], categorical: [accent]}"))  # fmt: skip
    ds = prepare_dataset(spec, progress=False)
    assert ds.feature_columns == ["f_mean", "votes", "accent"]
    assert ds.groups["metadata"] == ["votes", "accent"]
    assert ds.roles == ROLES
    assert ds.frame["votes"].dtype == float and ds.frame["votes"].isna().sum() == 4
    assert ds.frame["accent"].dtype == object
    assert ds.schema()["metadata"] == {"numeric": ["votes"], "categorical": ["accent"]}


# -- encoders are fitted on the training rows of each fold only ---------------------------


def _rows_with_fold_only_accents(n: int = 40) -> tuple[Rows, np.ndarray, list[Split]]:
    """Two folds; each fold's test half holds an accent its training half never has."""
    rng = np.random.default_rng(1)
    first = np.arange(n) < n // 2
    accent = np.where(np.arange(n) % 2 == 0, "us", "uk").astype(object)
    accent[first & (np.arange(n) % 5 == 0)] = "only_in_fold_0"
    accent[~first & (np.arange(n) % 5 == 0)] = "only_in_fold_1"
    votes = np.where(first, 100.0, 0.0) + rng.normal(size=n)
    frame = pd.DataFrame({"f0": rng.normal(size=n), "votes": votes, "accent": accent})
    y = np.where(accent == "us", 10.0, 0.0) + rng.normal(0, 0.1, n)
    index = np.arange(n)
    folds = [Split(train=index[~first], test=index[first]),
             Split(train=index[first], test=index[~first])]  # fmt: skip
    return Rows(frame), y, folds


def test_metadata_encoders_fit_on_training_folds_only() -> None:
    rows, y, folds = _rows_with_fold_only_accents()
    columns = ["f0", *ROLES.columns]
    inputs = Inputs(TABLE, rows, columns, ROLES)
    result = cross_validate(
        lambda: MODELS["ridge"].make({"alpha": 1e-3}, task="regression", seed=0, metadata=ROLES),
        inputs, y, np.arange(len(y)).astype(str), folds, task="regression", classes=None,
    )  # fmt: skip
    assert len(result.folds) == 2  # the unseen accent in each test half did not fail
    fitted = result.last_estimator  # trained on fold 1's training half (the first 20 rows)
    encoder = fitted.encoder_
    categories = encoder.named_transformers_["categorical"]["onehot"].categories_[0]
    assert set(categories) == {"us", "uk", "only_in_fold_0"}  # nothing from its test half
    # The numeric scaler saw only the training half (votes ~100 there, ~0 in the test half).
    assert encoder.named_transformers_["numeric"]["scale"].mean_[0] == pytest.approx(100, abs=1)
    # An unseen accent is encoded as no known one: two different unseen values agree.
    test_rows = inputs.take(folds[1].test)
    a, b = test_rows.copy(), test_rows.copy()
    a["accent"], b["accent"] = "only_in_fold_1", "never_seen_anywhere"
    np.testing.assert_allclose(fitted.predict(a), fitted.predict(b))
    # The metadata is learned: well under half the error of always predicting the mean
    # (unseen accents, a fifth of each test half, are the error that remains).
    assert result.mean()["mae"] < 0.5 * np.abs(y - y.mean()).mean()


def test_metadata_is_its_own_importance_group() -> None:
    rows, y, _ = _rows_with_fold_only_accents()
    columns = ["f0", *ROLES.columns]
    X = Inputs(TABLE, rows, columns, ROLES).all()
    model = MODELS["random_forest"].make({"n_estimators": 30}, task="regression", seed=0,
                                         metadata=ROLES).fit(X, y)  # fmt: skip
    imp = feature_importance(model, X, y, columns, task="regression", seed=0)
    assert imp.index[0] == "accent"
    grouped = importance_by_group(imp, {"f": ["f0"], "metadata": ROLES.columns})
    assert grouped.index[0] == "metadata"
    assert grouped["metadata"] > 5 * grouped["f"]


# -- the served model: metadata columns from the request ---------------------------------


def _served(tmp_path: Path) -> AudioModel:
    rows, y, _ = _rows_with_fold_only_accents()
    columns = ["f0", *ROLES.columns]
    X = Inputs(TABLE, rows, columns, ROLES).all()
    model = AudioModel()
    model.estimator = MODELS["ridge"].make({}, task="regression", seed=0, metadata=ROLES)
    model.estimator.fit(X, y)
    model.setup(
        {"task": "regression", "classes": None, "columns": columns, "input": "table",
         "metadata": ROLES.to_json(), "aggregate": "mean_proba",
         "features": {"extractors": ["rms"]}, "segments": {}},
        Limits(),
    )  # fmt: skip
    return model


def test_served_rows_impute_missing_values_and_name_missing_columns(tmp_path: Path) -> None:
    model = _served(tmp_path)
    rows = pd.DataFrame([{"f0": 0.1, "votes": 3.0, "accent": "us"},
                         {"f0": 0.1, "votes": None, "accent": None},
                         {"f0": 0.1, "votes": "", "accent": "martian"}])  # fmt: skip
    out = model.predict(None, rows)
    assert out["prediction"].iloc[0] > out["prediction"].iloc[1] + 5  # 'us' speakers score 10
    assert np.isfinite(out["prediction"]).all()
    with pytest.raises(MlflowException, match=r"request: lacks the metadata column\(s\) accent "):
        model.predict(None, rows.drop(columns="accent"))
    with pytest.raises(
        MlflowException, match=r"row 0, column 'votes': 'many' must be a number \(numeric"
    ):
        model.predict(None, rows.assign(votes=["many", 1, 2]))


def test_log_target_scores_in_original_units() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(80, 2))
    y = np.expm1(3.0 * X[:, 0])  # exactly linear in log space
    plain = MODELS["ridge"].make({"alpha": 1e-6}, task="regression", seed=0).fit(X, y)
    logged = (
        MODELS["ridge"]
        .make({"alpha": 1e-6}, task="regression", seed=0, target_transform="log")
        .fit(X, y)
    )
    mae = lambda m: float(np.abs(m.predict(X) - y).mean())  # noqa: E731
    assert mae(logged) < 0.01 < mae(plain)
    assert logged.predict(X).max() == pytest.approx(y.max(), rel=0.01)  # years, not log-years
