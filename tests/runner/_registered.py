"""Two tiny registered models shared by the serving, fuzz and predict tests.

Each of those modules used to train its own with a full `audioml run`; one session-scoped
store (tests/runner/conftest.py) trains them once: the demo spec on a synthetic corpus of
10 clips a class, as whole clips (``WHOLE``) and as 1-s windows aggregated per clip
(``SEGMENTED``). Tests read the store and may add to it (new experiments, runs, served
logs), never change its models or aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
WHOLE, SEGMENTED = "serve-whole", "serve-windows"


@dataclass
class Store:
    """A tracking store with registered models, a working folder, and a corpus of clips."""

    root: Path  # the folder a test works in (its outputs, a server's log)
    corpus: Path
    db: Path | None = None  # the MLflow store; root/mlflow.db when None

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.db or self.root / 'mlflow.db'}"

    def model_path(self, name: str) -> str:
        client = MlflowClient(self.uri)
        version = client.get_model_version_by_alias(name, "champion").version
        return client.get_model_version_download_uri(name, version)


def register_models(root: Path) -> Store:
    """Train and register ``WHOLE`` and ``SEGMENTED`` in ``root`` with the real CLI."""
    from runner.cli import main
    from runner.data.demo_data import synthesize_corpus

    corpus = synthesize_corpus(root / "corpus", clips_per_class=10, duration_s=2.0)
    common = ["search.n_trials=2", "search.models=[logistic]", "search.cv.folds=2",
              "features.n_jobs=1", f"data.root={corpus}"]  # fmt: skip
    runs = {
        WHOLE: [*common, f"register.model_name={WHOLE}"],
        SEGMENTED: [*common, f"register.model_name={SEGMENTED}", "segments.mode=fixed",
                    "segments.length_s=1"],
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for sets in runs.values():
            args = [a for s in sets for a in ("--set", s)]
            assert main(["run", str(DEMO), "-q", *args]) == 0
    return Store(root, corpus)
