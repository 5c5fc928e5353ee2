"""The feature engine stands alone: none of its modules imports the runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib, json, pkgutil, sys
import features
import features.extractors
names = [m.name for m in pkgutil.walk_packages(features.__path__, "features.")]
optional = {"features._dask"}  # needs the dask extra; checked below when it is installed
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if name not in optional:
            raise
print(json.dumps({"modules": len(names),
                  "runner": sorted(m for m in sys.modules if m.split(".")[0] == "runner")}))
"""


def test_no_feature_module_imports_the_runner() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["modules"] >= 20  # every extractor and engine module was imported
    assert got["runner"] == []


def test_the_runner_reports_a_feature_error_as_its_own() -> None:
    from features.errors import FeatureError
    from runner.errors import REPORTED
    from runner.errors import FeatureError as ReExported

    assert ReExported is FeatureError
    assert issubclass(FeatureError, REPORTED) and FeatureError.exit_code == 2
