"""audioml: an MLflow-tracked AutoML runner for audio classification and regression."""

__version__ = "0.1.0"
