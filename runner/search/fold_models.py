"""Which trials keep their fitted fold models, the members a bagged final model averages
(``runner.final.bagging``): only those that could be served. While the search runs, a
complete trial's fold models are logged (``folds.pkl`` beside ``oof.npz``) when it ranks
among the :data:`KEEP` best complete trials so far, and only when a bagged form can be chosen
(``final.form: bagged``, or ``auto`` with a ``search.timeout_s``).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

__all__ = ["KEEP", "keeps_folds", "worth_keeping"]

#: Complete trials (the best so far when each ended) whose fold models are logged.
KEEP = 8


def keeps_folds(spec: Any) -> bool:
    """Whether trials keep their fitted fold models: only if a bagged form can be chosen."""
    form = spec.final.form
    return form == "bagged" or (form == "auto" and spec.search.timeout_s is not None)


def worth_keeping(study: optuna.Study, value: float, *, keep: int = KEEP) -> bool:
    """Whether a trial scoring ``value`` ranks among the ``keep`` best complete trials of
    ``study`` (itself not yet among them)."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    better = sum(1 for t in done if t.value is not None and sign * t.value > sign * value)
    return better < keep
