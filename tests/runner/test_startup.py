"""The command line starts without the heavy libraries: `audioml --help` and `audioml
validate` must not import MLflow, Keras, JAX, librosa, LightGBM, scikit-learn, pandas or
SciPy (each is loaded where it is used: tracking, fitting, feature extraction; the model
families register their names, tasks and search spaces without scikit-learn)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(str(p) for p in (REPO / "experiments").glob("*.yaml"))
WIDENED = str(REPO / "tests" / "specs" / "invalid" / "space_widened.yaml")
HEAVY = (
    *("mlflow", "keras", "jax", "librosa", "lightgbm", "tensorflow", "torch"),
    *("sklearn", "pandas", "scipy"),
)
PROBE = """
import json, sys
from runner.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help exits from argparse
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["validate", *SHIPPED], id="validate-every-shipped-spec"),
        pytest.param(["validate", WIDENED], id="validate-invalid"),
    ],
)
def test_no_heavy_library_is_imported(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *argv],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, 2), done.stderr
    assert result["heavy"] == []
