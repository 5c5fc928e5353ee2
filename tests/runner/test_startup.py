"""The command line starts without the heavy libraries: `audioml --help` and `audioml
validate` must not import MLflow, Keras, JAX, librosa, LightGBM, scikit-learn, pandas or
SciPy (each is loaded where it is used: tracking, fitting, feature extraction; the model
families register their names, tasks and search spaces without scikit-learn).

Nor must a refusal of `run`, `features` or `predict` that the spec, the arguments and the file
system decide (a missing data.root, an unknown --set key, a missing DATA, options that do not
go together): the user hears of it in a fraction of a second, not after the pipeline loaded
(the timings are in benchmarks/RESULTS_cli.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    result, done = _probe(argv, REPO, HEAVY)
    assert result["code"] in (0, 2), done.stderr
    assert result["heavy"] == []


def _probe(argv: list[str], cwd: Path, heavy: tuple[str, ...]) -> tuple[dict, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(heavy))), *argv],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1]), done


DEMO = str(REPO / "experiments" / "demo.yaml")
# predict's own module reads tables with pandas; what it must not load is the model's side.
PREDICT_HEAVY = (*(m for m in HEAVY if m != "pandas"), "optuna")


@pytest.mark.parametrize(
    ("argv", "heavy", "said"),
    [
        pytest.param(["run", "demo"], HEAVY, [DEMO, "audioml demo"], id="run-demo-no-data"),
        pytest.param(
            ["features", "genre"], HEAVY, ["genre.yaml: data.root:", "--set data.root="],
            id="features-missing-root",
        ),
        pytest.param(
            ["run", "demo", "--set", "search.n_trial=5"], HEAVY,
            [DEMO, "search.n_trial: 'n_trial' is not one of the keys of search:"],
            id="run-set-typo",
        ),
        pytest.param(
            ["predict", "models:/m@champion", "nodata", "--out", "p.csv"], PREDICT_HEAVY,
            ["DATA:", "nodata' does not exist"], id="predict-missing-data",
        ),
        pytest.param(
            ["predict", "models:/m@champion", ".", "--out", "p.csv", "--uncertain", "3"],
            PREDICT_HEAVY, ["--labels-out: is needed with --uncertain N"], id="predict-bad-flags",
        ),
    ],
)  # fmt: skip
def test_refusal_comes_before_the_heavy_imports(
    tmp_path: Path, argv: list[str], heavy: tuple[str, ...], said: list[str]
) -> None:
    # An empty folder: the demo spec's data.root (demo-data) is not there.
    result, done = _probe(argv, tmp_path, heavy)
    assert result["code"] == 2, done.stderr
    assert result["heavy"] == []
    assert all(text in done.stderr for text in said), done.stderr
    assert "Traceback" not in done.stderr
