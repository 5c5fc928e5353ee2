"""scikit-learn's own estimator checks over the runner's custom estimators (CatBoost's run in
test_catboost.py, where the extra is installed; Keras's are too slow for the suite and are
covered by test_models.py's family contract)."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from runner.models._balanced import BalancedClassifier
from runner.models._lgbm_estimator import LGBMEarlyStoppingClassifier, LGBMEarlyStoppingRegressor
from runner.models._svr_estimator import BlasSVR

ESTIMATORS = [
    LGBMEarlyStoppingClassifier({"n_estimators": 20, "verbose": -1}, n_jobs=1),
    LGBMEarlyStoppingRegressor({"n_estimators": 20, "verbose": -1}, n_jobs=1),
    BlasSVR(),
    BalancedClassifier(LogisticRegression()),
]


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, BlasSVR):  # scikit-learn lists the same for its own SVR
        reason = "libsvm's sample weights are not equivalent to repeating or removing rows"
        return dict.fromkeys(
            ["check_sample_weight_equivalence_on_dense_data",
             "check_sample_weight_equivalence_on_sparse_data"], reason
        )  # fmt: skip
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_estimators_pass_scikit_learns_checks(estimator, check) -> None:
    check(estimator)
