"""Metadata encoding inside the fitted estimator, and the log target of regressors.

Numeric metadata: impute, scale; categorical: impute, one-hot, unseen values ignored; fitted
on the training rows only (:class:`MetadataEncoded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from runner.models._inputs import ColumnRoles, ImageTable

__all__ = ["MetadataEncoded", "as_text", "log_target", "metadata_encoder"]


def as_text(X: Any) -> np.ndarray:
    """Categories as stripped text, with NaN for missing cells (None, NaN, blank)."""
    frame = pd.DataFrame(X).astype("string").apply(lambda col: col.str.strip())
    frame = frame.mask(frame == "")
    return frame.astype(object).where(frame.notna(), np.nan).to_numpy()


def metadata_encoder(roles: ColumnRoles) -> ColumnTransformer:
    """Numeric: median impute, scale. Categorical: constant impute, one-hot (unseen: zeros).

    Other columns (audio features) pass through after the metadata, unchanged.
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("text", FunctionTransformer(as_text)),
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(roles.numeric)),
            ("categorical", categorical, list(roles.categorical)),
        ],
        remainder="passthrough",
        sparse_threshold=0.0,
    )


class MetadataEncoded(MetaEstimatorMixin, BaseEstimator):
    """Encode the metadata columns (fitted on the training rows), then fit ``estimator``.

    ``X`` is a DataFrame (table families) or an :class:`ImageTable` (its table is encoded).

    Args:
        estimator: the family's unfitted estimator, which sees the encoded float columns.
        numeric: numeric metadata columns.
        categorical: categorical metadata columns.
    """

    def __init__(
        self, estimator: Any, numeric: Sequence[str] = (), categorical: Sequence[str] = ()
    ) -> None:
        self.estimator = estimator
        self.numeric = numeric
        self.categorical = categorical

    def __sklearn_tags__(self) -> Any:
        # Classifier or regressor exactly as the wrapped estimator.
        return self.estimator.__sklearn_tags__()

    def fit(self, X: Any, y: Any) -> MetadataEncoded:
        roles = ColumnRoles(tuple(self.numeric), tuple(self.categorical))
        self.encoder_ = metadata_encoder(roles).fit(_table_of(X))
        # ``fitted_``, not ``estimator_``: importance must not read the inner model's weights,
        # whose columns are the encoded ones, not the input's.
        self.fitted_ = clone(self.estimator).fit(self._encode(X), y)
        if hasattr(self.fitted_, "classes_"):
            self.classes_ = self.fitted_.classes_
        return self

    def _encode(self, X: Any) -> Any:
        encoded = np.asarray(self.encoder_.transform(_table_of(X)), dtype=np.float64)
        return ImageTable(X.images, encoded) if isinstance(X, ImageTable) else encoded

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        return self.fitted_.predict(self._encode(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        return self.fitted_.predict_proba(self._encode(X))


def _table_of(X: Any) -> Any:
    table = X.table if isinstance(X, ImageTable) else X
    if not isinstance(table, pd.DataFrame):
        raise ValueError("metadata columns need a DataFrame input (column names)")
    return table


def log_target(estimator: Any) -> TransformedTargetRegressor:
    """Fit on ``log1p(y)``, predict ``expm1`` of the output: scores stay in original units."""
    return TransformedTargetRegressor(
        regressor=estimator, func=np.log1p, inverse_func=np.expm1, check_inverse=False
    )
