"""The MLflow side of ``audioml predict``: which model MODEL names, loading it, and ``--log``.

MODEL is a model URI (``models:/name@alias``, ``models:/name/3``, ``runs:/<id>/model``, a
local model folder) or an experiment spec file, which stands for its registered model at
its alias (``register.model_name`` at ``register.alias``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import DataError, format_error

__all__ = ["LoadedModel", "load_model", "log_predictions", "model_uri"]

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_RUN = re.compile(r"^runs:/(?P<run>[^/]+)/")
_SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedModel:
    """A loaded AudioModel and what identifies it in the tracking store.

    Attributes:
        uri: the URI loaded.
        audio: the ``runner.serving.model.AudioModel`` inside the pyfunc.
        input_names: the columns the model's signature accepts.
        name, version, run_id: the registered model and version, and the run that logged
            it, where known (a ``runs:/`` URI has no version).
    """

    uri: str
    audio: Any
    input_names: list[str] = field(default_factory=list)
    name: str | None = None
    version: str | None = None
    run_id: str | None = None

    @property
    def tags(self) -> dict[str, str]:
        """Tags that point a predictions run to the model version used."""
        known = {"model_uri": self.uri, "model_name": self.name}
        known |= {"model_version": self.version, "model_run_id": self.run_id}
        return {f"audioml.{k}": str(v) for k, v in known.items() if v is not None}


def model_uri(model: str, overrides: list[str] | None = None) -> str:
    """The model URI MODEL stands for (a spec file becomes ``models:/<name>@<alias>``).

    Raises:
        SpecError: MODEL is a spec file that does not validate.
    """
    path = Path(model).expanduser()
    if path.suffix.lower() in _SPEC_SUFFIXES:
        from runner.config.loading import load_spec

        if not path.is_file():
            raise DataError(format_error("MODEL", path, problem="is not a file"))
        spec = load_spec(path, overrides or [])
        return f"models:/{spec.model_name}@{spec.register.alias}"
    return model


def load_model(uri: str, tracking_uri: str) -> LoadedModel:
    """Load ``uri`` from the tracking store and check it is an audioml model.

    Raises:
        DataError: the URI is unknown to the store, or the model is not an AudioModel.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from runner.serving.model import AudioModel

    mlflow.set_tracking_uri(tracking_uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise DataError(
            f"MODEL: cannot load '{uri}' from {tracking_uri}: {_first_line(exc)} (a model "
            "URI is models:/name@alias, models:/name/3 or runs:/<run id>/model)"
        ) from None
    try:
        audio = pyfunc.unwrap_python_model()
    except MlflowException:
        audio = None
    if not isinstance(audio, AudioModel):
        must = "an audioml model (it holds no AudioModel)"
        raise DataError(format_error("MODEL", uri, must=must))
    schema = pyfunc.metadata.get_input_schema()
    loaded = LoadedModel(uri, audio, list(schema.input_names()) if schema else [])
    _identify(loaded, tracking_uri)
    return loaded


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _identify(model: LoadedModel, tracking_uri: str) -> None:
    """Fill in the registered name, version and source run the URI points to."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if match := _REGISTERED.match(model.uri):
        name, alias, version = match["name"], match["alias"], match["version"]
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        model.name, model.version, model.run_id = name, str(mv.version), mv.run_id
    elif match := _RUN.match(model.uri):
        model.run_id = match["run"]


def log_predictions(
    model: LoadedModel,
    *,
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: dict[str, str],
    metrics: dict[str, float],
    summary: dict[str, Any],
    files: list[Path],
) -> str:
    """One finished MLflow run holding the prediction files and their summary; its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {**model.tags, "audioml.kind": "predict"}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.log_dict(run_id, summary, "summary.json")
        for path in files:
            client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
