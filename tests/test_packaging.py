"""The package as users install it: declared dependencies, the conda environment, the wheel.

Fast: conda.yaml installs exactly pyproject.toml's dependencies; every third-party library
the code imports is declared; the wheel's package list covers every code package.
Slow: a wheel built from the checkout and installed into a fresh venv (without the checkout
on sys.path) lists the shipped specs and validates one by name, validates a user's spec and
runs the demo from an empty directory.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from setuptools import find_packages

from runner.resources import PACKAGES

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _name(requirement: str) -> str:
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower().replace("_", "-")


def test_conda_env_installs_exactly_the_package_dependencies() -> None:
    conda = yaml.safe_load((REPO / "conda.yaml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pip == PROJECT["dependencies"], "conda.yaml's pip list must equal pyproject's"
    python = next(d for d in conda["dependencies"] if str(d).startswith("python="))
    assert PROJECT["requires-python"].startswith(">=" + python.removeprefix("python="))


def _imported_top_level(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


# Distributions whose wheel is a bare extension module, which importlib.metadata cannot map
# back from the module name.
KNOWN_DISTRIBUTIONS = {"parselmouth": ["praat-parselmouth"]}


def test_every_imported_library_is_declared() -> None:
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {_name(r) for reqs in PROJECT["optional-dependencies"].values() for r in reqs}
    local = {"runner", "features", *PACKAGES.values()}
    dists = packages_distributions()
    missing = []
    for module in sorted(
        _imported_top_level(REPO / "runner") | _imported_top_level(REPO / "features")
    ):
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        names = {_name(d) for d in dists.get(module) or KNOWN_DISTRIBUTIONS.get(module, [module])}
        if not names & (declared | extras):
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_wheel_lists_every_code_package_and_the_data_folders() -> None:
    tool = PYPROJECT["tool"]["setuptools"]
    code = set(find_packages(str(REPO), include=["runner*", "features*"]))
    data = {p for p in tool["packages"] if p.split(".")[0] in PACKAGES.values()}
    assert set(tool["packages"]) == code | data, "a package is missing from [tool.setuptools]"
    assert tool["package-dir"] == {pkg: folder for folder, pkg in PACKAGES.items()}
    assert "search_spaces" in {p.rsplit(".", 1)[-1] for p in data}


def test_license_is_spdx_and_shipped() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")[:200]


# ---- the wheel, installed outside the checkout -------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its dependencies come from the system site-packages
    (nothing is downloaded), the package itself only from the wheel."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ into the source tree.
    source = base / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    for name in ("runner", "features", *PACKAGES):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(base / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next((base / "dist").glob("audioml-*.whl"))
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True)
    subprocess.run(
        [env / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index",
         "--force-reinstall", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return env


def _in_venv(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_wheel_validates_and_runs_the_demo_from_an_empty_dir(venv: Path, tmp_path: Path) -> None:
    where = _in_venv(
        venv, tmp_path, "python", "-I", "-c",
        "import runner, runner.resources as r; print(runner.__file__);"
        "print(r.shipped('configs', 'defaults.yaml'))",
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout
    # The shipped specs by name, from an empty folder: listed, and read from site-packages.
    listed = _in_venv(venv, tmp_path, "audioml", "experiments")
    assert listed.returncode == 0, listed.stderr
    assert "demo " in listed.stdout and "age_regression         regression" in listed.stdout
    done = _in_venv(venv, tmp_path, "audioml", "validate", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ok {venv}") and "audioml_experiments/demo.yaml" in done.stdout
    # A user's spec beside the data: the defaults fill in what it leaves out, and the
    # shipped search-space file (keras_mlp epochs capped at 100) is in force.
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\ndata: {source: folder, root: clips}\n")
    done = _in_venv(venv, tmp_path, "audioml", "validate", "mine.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    wide = tmp_path / "wide.yaml"
    wide.write_text(
        "name: wide\ndata: {source: folder, root: clips}\n"
        "search: {models: [keras_mlp], spaces: {keras_mlp: {epochs: [10, 400]}}}\n"
    )
    done = _in_venv(venv, tmp_path, "audioml", "validate", "wide.yaml")
    assert done.returncode == 2
    assert "search.spaces.keras_mlp.epochs" in done.stdout
    assert "configs/search_spaces/keras_mlp.yaml" in done.stdout
    done = _in_venv(
        venv, tmp_path, "audioml", "demo", "-q",
        "--set", "search.n_trials=2", "--set", "search.cv.folds=2",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    version = client.get_model_version_by_alias("demo-audio-classifier", "champion")
    run = client.get_run(version.tags["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["data.root"] == str(tmp_path / "demo-data")
