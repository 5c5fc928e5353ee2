"""``audioml predict``: label an archive with a registered model.

``command`` runs it (features through the model's own config, predictions, skipped clips,
the least certain clips back to a person); ``inputs`` lists DATA (folder, manifest, labels
JSON) with the source readers' conventions; ``model`` resolves and loads MODEL and logs a
prediction run.
"""

from __future__ import annotations

from runner.predict.command import (
    UNCERTAINTY,
    PredictOptions,
    least_certain,
    predict_table,
    run_predict,
    uncertainty,
)

__all__ = [
    "UNCERTAINTY",
    "PredictOptions",
    "least_certain",
    "predict_table",
    "run_predict",
    "uncertainty",
]
