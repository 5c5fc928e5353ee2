"""Logging a pyfunc model and a dataset to a run that is not the fluent active run, with
MLflow's public APIs only.

``mlflow.pyfunc.log_model`` and ``mlflow.log_input`` write to the fluent active run, and the
fluent ``start_run`` context ends that run on exit: here the parent run must stay RUNNING
until its model is registered and gated. So the model is saved locally
(``mlflow.pyfunc.save_model``) and attached to a logged model of the parent run
(``mlflow.initialize_logged_model``, ``MlflowClient.log_model_artifacts``,
``mlflow.finalize_logged_model``), which is what ``log_model`` does inside; the dataset entity
is built from the dataset's public ``to_dict``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag

__all__ = ["DATASET_CONTEXT_TAG", "dataset_input", "log_pyfunc"]

#: The input tag MLflow's UI reads for a dataset's context (``mlflow.log_input(context=)``).
DATASET_CONTEXT_TAG = "mlflow.data.context"


def dataset_input(dataset: Any, context: str) -> DatasetInput:
    """``dataset`` (an ``mlflow.data`` dataset) as a run input in ``context``."""
    return DatasetInput(
        Dataset(**dataset.to_dict()), tags=[InputTag(DATASET_CONTEXT_TAG, context)]
    )


def log_pyfunc(client: mlflow.MlflowClient, run_id: str, *, name: str, **save_kwargs: Any) -> str:
    """Save a pyfunc model (``mlflow.pyfunc.save_model`` arguments) as a logged model of
    ``run_id``, without touching the run's status; returns its ``models:/`` URI."""
    experiment_id = client.get_run(run_id).info.experiment_id
    model = mlflow.initialize_logged_model(
        name=name, source_run_id=run_id, experiment_id=experiment_id
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            mlflow.pyfunc.save_model(str(path), **save_kwargs)
            client.log_model_artifacts(model.model_id, str(path))
    except BaseException:
        mlflow.finalize_logged_model(model.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(model.model_id, "READY")
    return f"models:/{model.model_id}"
