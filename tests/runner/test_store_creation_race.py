"""A fresh mlflow.db created by two processes at once: `audioml` and MLflow on its own (the
`mlflow run` that launches a worker entry point, `mlflow ui`), which takes no lock of ours.

Each process is started first and waits for a go file, so its imports are done; the test
lets the second one go at a chosen moment of the first one's schema creation. Both must
finish, each must see the other's experiment, and the store must end at MLflow's head.
"""

from __future__ import annotations

import contextlib
import glob
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.faults._harness import REPO

_WAIT = "import os, sys, time\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.002)\n"
# MLflow alone: opens the store as `mlflow run` does, then writes to it.
PLAIN = (
    "from mlflow.tracking import MlflowClient\n" + _WAIT + "client = MlflowClient(sys.argv[1])\n"
    "client.search_experiments(max_results=1)\nclient.create_experiment('plain')\n"
)
# audioml: the tracker's own opening of the store, then a write.
OURS = (
    "from mlflow.tracking import MlflowClient\nfrom runner.stores.tracking_store import "
    "open_tracking_store\n" + _WAIT + "open_tracking_store(sys.argv[1])\n"
    "MlflowClient(sys.argv[1]).create_experiment('ours')\n"
)


def _revision(db: Path) -> str | None:
    """The store's Alembic revision; None while it has none (or is locked for the moment)."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
        ) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _until(found, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not found():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The revision MLflow gives a store it creates alone."""
    db = tmp_path_factory.mktemp("alone") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)
    revision = _revision(db)
    assert revision
    return revision


@pytest.mark.parametrize("first", ["plain", "ours"])
def test_two_processes_create_one_store(tmp_path: Path, head: str, first: str) -> None:
    """``plain`` first: audioml arrives while MLflow is migrating the file in place (it
    must wait for it, not migrate beside it). ``ours`` first: MLflow opens the path while
    audioml builds the store in its temporary file (the finished file must not replace
    the one MLflow has open)."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    procs = {}
    for name, code in (("plain", PLAIN), ("ours", OURS)):
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", code, uri, str(tmp_path / f"go-{name}")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    second = "ours" if first == "plain" else "plain"
    try:
        (tmp_path / f"go-{first}").touch()
        if first == "plain":
            _until(lambda: _revision(db) is not None, "MLflow's migration start")
        else:
            _until(
                lambda: glob.glob(str(tmp_path / ".mlflow.db.tmp-*")), "audioml's temporary store"
            )
        assert _revision(db) != head  # the first one is still creating it
        (tmp_path / f"go-{second}").touch()
        outs = {name: proc.communicate(timeout=120)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}: {outs[name][-2000:]}"
    assert _revision(db) == head
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"plain", "ours"} <= names
    assert not list(tmp_path.glob(".mlflow.db.tmp-*"))
