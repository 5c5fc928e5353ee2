"""A model saved by an earlier release still loads and predicts with today's code.

``tests/data/models/audioml-0.1.0-logistic`` is the MLflow model that `audioml demo` (release
0.1.0; logistic, one trial kind) registered, without its bundled code copy: loading it here
unpickles ``runner.serving.AudioModel`` and the fitted estimator with the code under test, as
the champion gate and `audioml predict` do when they load an older version in process. Its
``expected.json`` holds what that release predicted for the example row scaled by four
factors. A moved or renamed class, or a changed input handling, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from runner.serving import AudioModel

MODEL = Path(__file__).resolve().parents[1] / "data" / "models" / "audioml-0.1.0-logistic"


def test_a_model_of_release_0_1_0_loads_and_predicts_as_it_did() -> None:
    expected = json.loads((MODEL / "expected.json").read_text())
    example = json.loads((MODEL / "input_example.json").read_text())
    base = pd.DataFrame(example["data"], columns=example["columns"])
    rows = pd.concat([base * f for f in expected["factors"]], ignore_index=True)
    model = mlflow.pyfunc.load_model(str(MODEL))
    assert isinstance(model.unwrap_python_model(), AudioModel)
    out = model.predict(rows)
    assert out["label"].tolist() == expected["label"]
    np.testing.assert_allclose(out["proba_music"], expected["proba_music"], atol=1e-6)
    np.testing.assert_allclose(out["proba_music"] + out["proba_speech"], 1.0, atol=1e-9)
