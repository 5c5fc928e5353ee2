"""AutoGluon's ``TabularPredictor`` as a search benchmark contender, on the runner's split.

The strongest tabular AutoML peer: ``medium_quality`` (its default preset: gradient boosting,
CatBoost, XGBoost, forests, extra trees, a weighted ensemble) with ``time_limit`` = the
budget, fitted on the runner's training rows and scored by
:func:`benchmarks._contenders.held_out` on its test rows, as FLAML is.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._contenders import Result, RunnerSplit, held_out

__all__ = ["TabularEstimator", "fit_autogluon", "run_autogluon"]

#: AutoGluon's name for a spec metric where the two differ (binary ROC AUC).
_AG_METRIC = {"roc_auc_ovr": "roc_auc"}
#: Default models that need PyTorch, which the bench extra leaves out (CPU torch is not on
#: PyPI for Linux; its default wheel brings CUDA).
_AG_TORCH = {"NN_TORCH": "torch", "FASTAI": "fastai"}
_LABEL = "_label"


class TabularEstimator:
    """A fitted ``TabularPredictor`` seen as the estimator ``held_out`` scores: ``predict``,
    and for classifiers ``predict_proba`` with columns in ``classes_`` order."""

    def __init__(self, predictor: Any, columns: list[str]) -> None:
        self.predictor, self.columns = predictor, columns
        self.classes_ = np.asarray(predictor.class_labels) if predictor.can_predict_proba else None

    def _frame(self, X: Any) -> pd.DataFrame:
        return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.columns)

    def predict(self, X: Any) -> np.ndarray:
        """Row predictions."""
        return self.predictor.predict(self._frame(X)).to_numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of every row, one column per ``classes_`` entry."""
        return self.predictor.predict_proba(self._frame(X))[list(self.classes_)].to_numpy()


def excluded_models() -> list[str]:
    """The default models whose library is not installed (left out, and said so)."""
    return [m for m, lib in _AG_TORCH.items() if importlib.util.find_spec(lib) is None]


def fit_autogluon(
    s: RunnerSplit, *, budget_s: float, path: Path, presets: str = "medium_quality"
) -> TabularEstimator:
    """``TabularPredictor(...).fit`` with ``time_limit=budget_s``, saved under ``path``.

    Raw metadata columns go in as they are (AutoGluon encodes its own). Without bagging
    (``medium_quality``) AutoGluon picks models and ensemble weights on a validation set: it
    gets the runner's first CV fold, so on grouped specs no speaker is on both sides (its own
    holdout would be random rows) and it trains on that fold's training rows.
    """
    from autogluon.tabular import TabularPredictor

    fit_rows, tune_rows = s.folds[0]
    data = s.X_train.assign(**{_LABEL: s.y_train})
    metric = s.metric
    if s.task == "classification" and len(s.classes or ()) == 2:
        metric = _AG_METRIC.get(metric, metric)
    problem = "regression" if s.task == "regression" else None  # it tells binary/multiclass
    predictor = TabularPredictor(
        label=_LABEL, problem_type=problem, eval_metric=metric, path=str(path), verbosity=0
    ).fit(
        data.iloc[fit_rows], tuning_data=data.iloc[tune_rows], time_limit=budget_s,
        presets=presets, excluded_model_types=excluded_models(),
    )  # fmt: skip
    return TabularEstimator(predictor, list(s.X_train.columns))


def run_autogluon(s: RunnerSplit, *, budget_s: float, presets: str = "medium_quality") -> Result:
    """AutoGluon fitted in a temporary folder (removed afterwards) and tested on the runner's
    test rows; the wall time covers fit, test predictions and clean-up.

    Each model keeps AutoGluon's fixed default seed: the benchmark's seed changes the split.
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-autogluon-") as tmp:
        model = fit_autogluon(s, budget_s=budget_s, path=Path(tmp), presets=presets)
        score = held_out(s, model, s.X_test)[s.metric]
        trained = ", ".join(model.predictor.model_names())
        detail = f"best {model.predictor.model_best} (trained {trained}); {presets}; "
    detail += f"time_limit {budget_s:.0f} s"
    if excluded := excluded_models():
        detail += f"; no {', '.join(excluded)} (no PyTorch)"
    return Result("autogluon", score, time.perf_counter() - start, detail)
