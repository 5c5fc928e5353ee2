"""The peers the search benchmark runs beside ``audioml run``, on the runner's own split.

:func:`split_of` takes the training and test rows, the CV folds and the speaker groups from
the runner's :class:`~runner.session.pipeline.Prepared` object of one spec and seed, so FLAML and
the grid fit on exactly the rows the runner's search sees and are tested on exactly the rows its
registered model is tested on; the notebook's forest (and AutoGluon, in
``benchmarks._autogluon``) likewise. :func:`held_out` scores any fitted estimator the way
``runner.session.finalize`` scores the registered model: predictions aggregated to clips
(``segments.aggregate``), then ``runner.metrics.score_all``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from runner.data.dataset import targets
from runner.metrics import greater_is_better, score_all
from runner.models import ColumnRoles
from runner.models._predict import aggregate_clips, predict_rows

__all__ = [
    "GRIDS", "Result", "RunnerSplit", "held_out", "run_flaml", "run_forest", "run_grid",
    "split_of",
]  # fmt: skip


@dataclass
class RunnerSplit:
    """One spec's held-out split and CV folds as the runner cut them (row positions)."""

    task: str
    metric: str
    classes: list | None
    aggregate: str
    X_train: pd.DataFrame  # feature and metadata columns, raw (metadata not encoded)
    y_train: np.ndarray
    X_test: pd.DataFrame
    test_clips: np.ndarray  # clip id of every test row
    test_truth: pd.Series  # one label per test clip, indexed by clip id
    folds: list[tuple[np.ndarray, np.ndarray]]  # over the training rows
    groups: np.ndarray | None  # speaker of every training row, when the spec groups
    roles: ColumnRoles = field(default_factory=ColumnRoles)
    train_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    test_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))


def split_of(p: Any) -> RunnerSplit:
    """The runner's split of ``p`` (a ``runner.session.pipeline.Prepared``)."""
    frame, columns = p.dataset.frame, p.dataset.feature_columns
    train, test = frame.iloc[p.split.train], frame.iloc[p.split.test]
    group = train["group"] if "group" in train.columns else None
    has_groups = group is not None and group.notna().all()
    truth = test.groupby("clip_id", sort=False)["label"].first()
    return RunnerSplit(
        task=p.spec.task, metric=p.spec.search.metric, classes=p.data.classes,
        aggregate=p.spec.segments.aggregate,
        X_train=train[columns].reset_index(drop=True), y_train=p.data.y,
        X_test=test[columns].reset_index(drop=True), test_clips=test["clip_id"].to_numpy(),
        test_truth=pd.Series(targets(truth, p.spec.task), index=truth.index),
        folds=[(np.asarray(f.train), np.asarray(f.test)) for f in p.data.folds],
        groups=group.to_numpy() if has_groups else None, roles=p.dataset.roles,
        train_rows=np.asarray(p.split.train), test_rows=np.asarray(p.split.test),
    )  # fmt: skip


def held_out(s: RunnerSplit, estimator: Any, X_test: Any) -> dict[str, float]:
    """Every metric of ``estimator`` on the test clips, aggregated and scored as finalize does.

    A classifier without ``predict_proba`` votes (``majority``) and has no probability
    metrics.
    """
    voting = s.task == "classification" and not hasattr(estimator, "predict_proba")
    if voting:
        pred = np.asarray(estimator.predict(X_test)).astype(str)
        proba = (pred[:, None] == np.asarray(s.classes)[None, :]).astype(float)
    else:
        pred, proba = predict_rows(estimator, X_test, task=s.task, classes=s.classes)
    ids, clip_pred, clip_proba = aggregate_clips(
        s.test_clips, pred, proba, how="majority" if voting else s.aggregate, classes=s.classes
    )
    truth = s.test_truth.loc[ids].to_numpy()
    scores = score_all(s.task, truth, clip_pred, None if voting else clip_proba, s.classes)
    return {k: v for k, v in scores.items() if np.isfinite(v)}


@dataclass
class Result:
    """One contender's run on one task and seed."""

    contender: str
    score: float  # the spec's metric on the held-out clips
    wall_s: float
    detail: str = ""
    seed: int | None = None  # set by the benchmark loop


def _encoder(s: RunnerSplit) -> Any:
    """Metadata impute/scale/one-hot as the runner's families do; audio columns pass."""
    if not s.roles:
        return "passthrough"
    from runner.models._encoding import metadata_encoder

    return metadata_encoder(s.roles)


def run_flaml(s: RunnerSplit, *, budget_s: float, seed: int, name: str = "flaml") -> Result:
    """FLAML ``AutoML`` with ``time_budget=budget_s`` on the runner's training rows (grouped
    by speaker when the spec groups), tested on its test rows."""
    from flaml import AutoML
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    encode = make_pipeline(_encoder(s)).fit(s.X_train)  # fitted on training rows only
    automl = AutoML()
    kwargs = {"groups": s.groups} if s.groups is not None else {}
    automl.fit(
        np.asarray(encode.transform(s.X_train), dtype=float), s.y_train,
        task=s.task, metric="macro_f1" if s.metric == "f1_macro" else s.metric,
        time_budget=budget_s, seed=seed, n_jobs=-1, verbose=0, **kwargs,
    )  # fmt: skip
    X_test = np.asarray(encode.transform(s.X_test), dtype=float)
    score = held_out(s, automl, X_test)[s.metric]
    detail = f"best {automl.best_estimator}; time_budget {budget_s:.0f} s"
    return Result(name, score, time.perf_counter() - start, detail)


def run_forest(s: RunnerSplit, *, seed: int) -> Result:
    """The notebook's own method: one plain 300-tree random forest (metadata encoded as the
    runner's families do), fitted on the training rows and tested once."""
    kind = "Classifier" if s.task == "classification" else "Regressor"
    make = _plain(f"sklearn.ensemble.RandomForest{kind}", n_estimators=300, n_jobs=-1,
                  random_state=seed)  # fmt: skip
    start = time.perf_counter()
    model = _with_encoder(s, make).fit(s.X_train, s.y_train)
    score = held_out(s, model, s.X_test)[s.metric]
    return Result("forest", score, time.perf_counter() - start, "300 trees, library defaults")


def _sk(name: str) -> Callable[..., Any]:
    """A scikit-learn (or LightGBM) estimator class by dotted name, imported when used."""
    module, _, cls = name.rpartition(".")
    return getattr(__import__(module, fromlist=[cls]), cls)


def _scaled(name: str, **fixed: Any) -> Callable[[], Any]:
    def make() -> Any:
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()), ("model", _sk(name)(**fixed))])

    return make


def _plain(name: str, **fixed: Any) -> Callable[[], Any]:
    return lambda: _sk(name)(**fixed)


_TREES = {"n_estimators": [100, 300], "max_depth": [None, 20], "min_samples_leaf": [1, 3]}
_LGBM = {"num_leaves": [15, 31, 63], "learning_rate": [0.05, 0.1]}
_HGB = {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]}
_MLP = {"model__hidden_layer_sizes": [(100,), (64, 64)], "model__alpha": [1e-4, 1e-2]}
_KNN = {"model__n_neighbors": [3, 5, 11, 21], "model__weights": ["uniform", "distance"]}
_SVM = {"model__C": [0.1, 1, 10, 100], "model__gamma": ["scale", 0.01]}

#: What a notebook writes per family: (classifier, regressor, grid). Families without an
#: entry (the Keras ones: a notebook grid uses scikit-learn's MLP) are left out and said so.
GRIDS: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any] | None, dict]] = {
    "logistic": (_scaled("sklearn.linear_model.LogisticRegression", max_iter=2000), None,
                 {"model__C": [0.01, 0.1, 1, 10]}),
    "ridge": (None, _scaled("sklearn.linear_model.Ridge"), {"model__alpha": [0.1, 1, 10, 100]}),
    "svm": (_scaled("sklearn.svm.SVC"), _scaled("sklearn.svm.SVR"), _SVM),
    "knn": (_scaled("sklearn.neighbors.KNeighborsClassifier"),
            _scaled("sklearn.neighbors.KNeighborsRegressor"), _KNN),
    "random_forest": (_plain("sklearn.ensemble.RandomForestClassifier", random_state=0),
                      _plain("sklearn.ensemble.RandomForestRegressor", random_state=0), _TREES),
    "extra_trees": (_plain("sklearn.ensemble.ExtraTreesClassifier", random_state=0),
                    _plain("sklearn.ensemble.ExtraTreesRegressor", random_state=0), _TREES),
    "lightgbm": (_plain("lightgbm.LGBMClassifier", random_state=0, verbose=-1, n_jobs=1),
                 _plain("lightgbm.LGBMRegressor", random_state=0, verbose=-1, n_jobs=1), _LGBM),
    "hist_gradient_boosting": (
        _plain("sklearn.ensemble.HistGradientBoostingClassifier", random_state=0),
        _plain("sklearn.ensemble.HistGradientBoostingRegressor", random_state=0), _HGB),
    "mlp": (_scaled("sklearn.neural_network.MLPClassifier", max_iter=500, random_state=0),
            _scaled("sklearn.neural_network.MLPRegressor", max_iter=500, random_state=0), _MLP),
}  # fmt: skip


def _scorer(s: RunnerSplit) -> Callable[[Any, Any, np.ndarray], float]:
    """The spec's metric from ``score_all`` on a fold's rows, signed so greater is better
    (every benchmark task has one row per clip, so rows are clips)."""
    sign = 1.0 if greater_is_better(s.metric) else -1.0
    return lambda est, X, y: sign * score_all(s.task, y, est.predict(X))[s.metric]


def _with_encoder(s: RunnerSplit, make: Callable[[], Any]) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([("encode", _encoder(s)), ("est", make())])


def run_grid(s: RunnerSplit, families: list[str]) -> Result:
    """GridSearchCV per family (``n_jobs=-1``, the runner's CV folds), run to completion;
    the family with the best mean CV score is refit on all training rows and tested."""
    from sklearn.model_selection import GridSearchCV

    start, best, done, skipped = time.perf_counter(), None, [], []
    for family in families:
        classifier, regressor, grid = GRIDS.get(family, (None, None, {}))
        make = classifier if s.task == "classification" else regressor
        if make is None:
            skipped.append(family)
            continue
        search = GridSearchCV(
            _with_encoder(s, make), {f"est__{k}": v for k, v in grid.items()},
            scoring=_scorer(s), cv=s.folds, n_jobs=-1, refit=False,
        )  # fmt: skip
        began = time.perf_counter()
        search.fit(s.X_train, s.y_train)
        done.append(f"{family} {time.perf_counter() - began:.0f}s")
        if best is None or search.best_score_ > best[0]:
            best = (search.best_score_, family, make, search.best_params_)
    if best is None:
        raise ValueError(f"no grid for any of {families}; grids exist for {sorted(GRIDS)}")
    _, family, make, params = best
    model = _with_encoder(s, make).set_params(**params).fit(s.X_train, s.y_train)
    score = held_out(s, model, s.X_test)[s.metric]
    detail = f"best {family}; grids: {', '.join(done)}"
    if skipped:
        detail += f"; no grid: {', '.join(skipped)}"
    return Result("grid", score, time.perf_counter() - start, detail)
