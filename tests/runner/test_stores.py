"""Damaged and unwritable stores: each fault made for real on disk, then the real `audioml run`
command in a subprocess: the exit code, a message naming the file, no traceback, nothing
written; and where the fix is more than putting a file back (a damaged mlflow.db moved
aside, a disk that filled), a rerun after it that works.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.faults._harness import DEMO, MODEL, REPO, corpus

__all__ = ["corpus"]

# A file-size limit that optuna.db (~120 KB) and the feature packs stay under and MLflow's
# schema (~1 MB) does not: a disk that fills while the tracking store is created.
FSIZE = 600_000


def _command(root: Path, corpus: Path, cache: Path) -> list[str]:
    sets = {
        "data.root": corpus,
        "search.n_trials": 2,
        "search.models": "[logistic]",
        "search.cv.folds": 2,
        "search.timeout_s": "null",
        "features.n_jobs": 1,
        "features.cache_dir": cache,
    }
    args = [sys.executable, "-m", "runner", "run", str(DEMO), "-q"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def audioml(root: Path, corpus: Path, cache: Path, *, fsize: int | None = None) -> tuple[int, str]:
    """`audioml run` of the tiny demo spec in ``root``; (exit code, output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)

    def limit() -> None:  # Python ignores SIGXFSZ: writes past it fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.run(
        _command(root, corpus, cache), cwd=root, env=env, capture_output=True, text=True,
        timeout=300, preexec_fn=limit if fsize else None,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def refused(result: tuple[int, str], code: int, *needles: str) -> None:
    rc, out = result
    assert rc == code, out
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache: Path) -> Path:
    """A folder where the run finished: its optuna.db, mlflow.db and artifacts."""
    root = tmp_path_factory.mktemp("finished")
    rc, out = audioml(root, corpus, cache)
    assert rc == 0, out
    return root


@pytest.fixture
def work(tmp_path: Path, finished: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "work"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _overwrite(path: Path) -> None:
    path.write_bytes(b"backup of something else\n" * 400)


@pytest.mark.parametrize("damage", [_truncate, _overwrite], ids=["truncated", "overwritten"])
@pytest.mark.parametrize("store", ["optuna.db", "mlflow.db"])
def test_damaged_store_is_named(work: Path, corpus: Path, cache: Path, store: str, damage) -> None:
    path = work / store
    backup = path.read_bytes()
    damage(path)
    key = {"optuna.db": "Optuna storage", "mlflow.db": "MLflow tracking store"}[store]
    aside = f"; move it aside (mv '{path}' '{path}.damaged') and run again"
    refused(audioml(work, corpus, cache), 1, f"{key}: '{path}' is damaged: ", aside)
    assert path.read_bytes() != backup  # left as found, for the user to move aside
    if store == "mlflow.db" and damage is _truncate:
        path.rename(f"{path}.damaged")  # as the message says; the study is done, its runs lost
        rc, out = audioml(work, corpus, cache)
        assert rc == 0, out
        client = MlflowClient(f"sqlite:///{path}")  # a new store: the final step ran again
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"


def test_emptied_optuna_db_is_not_a_new_study(work: Path, corpus: Path, cache: Path) -> None:
    path = work / "optuna.db"
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    path.write_bytes(b"")
    run = parent.info.run_id
    refused(
        audioml(work, corpus, cache), 1,
        f"Optuna storage: '{path}' has no study 'demo-",
        f"but '{work / 'mlflow.db'}' holds its parent run {run}: optuna.db was emptied or "
        "replaced; restore it from a backup",
        f"mlflow runs delete --run-id {run})",
    )  # fmt: skip
    assert path.stat().st_size == 0  # refused before Optuna wrote a new study into it


def test_cache_path_that_is_a_file(tmp_path: Path, corpus: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    refused(audioml(tmp_path, corpus, blocker), 2, "features.cache_dir", str(blocker))
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_read_only_folder(work: Path, finished: Path, corpus: Path, cache: Path) -> None:
    # Root writes through a folder's mode bits, so a read-only bind mount is the real thing.
    if os.geteuid() != 0:
        work.chmod(0o555)
    elif not _mount("--bind", str(work), str(work)):
        pytest.skip("mount is not permitted here")
    else:
        _mount("-o", "remount,ro,bind", str(work))
    try:
        needle = f"' cannot be written: its folder '{work}' is not writable; run from a writable"
        refused(audioml(work, corpus, cache), 1, needle)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(work)], check=False)
        work.chmod(0o755)
    # Nothing was written: writable again, it is the finished folder the other tests rerun.
    assert (work / "optuna.db").read_bytes() == (finished / "optuna.db").read_bytes()


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {row[0] for row in con.execute("SELECT name FROM sqlite_master")}


def test_disk_full_while_creating_the_tracking_store(
    tmp_path: Path, corpus: Path, cache: Path
) -> None:
    db = tmp_path / "mlflow.db"
    refused(audioml(tmp_path, corpus, cache, fsize=FSIZE), 1, f"{db}", "disk is full")
    assert not db.exists() and not list(tmp_path.glob(".mlflow.db.tmp-*"))  # nothing written
    # MLflow on its own, stopped the same way, leaves a store every later run failed on.
    code = f"from mlflow.tracking import MlflowClient; MlflowClient('sqlite:///{db}')"
    code += ".search_experiments()"
    subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE)),
    )  # fmt: skip
    assert "_alembic_tmp_experiments" in _tables(db)
    rc, out = audioml(tmp_path, corpus, cache)  # space is free again
    assert rc == 0, out
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    client = MlflowClient(f"sqlite:///{db}")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"


def test_a_writer_killed_mid_transaction_is_not_damage(tmp_path: Path) -> None:
    import optuna

    from runner.stores.checks import check_study_store

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=url, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=20)
    # A writer SIGKILLed inside a transaction leaves a hot journal (as a trial's heartbeat
    # write can); a read-only check would fail on it.
    code = (
        "import os, signal, sqlite3\n"
        f"con = sqlite3.connect({str(tmp_path / 'optuna.db')!r}, isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=1'); con.execute('BEGIN IMMEDIATE')\n"
        "con.execute('UPDATE trial_params SET param_value = param_value + 1')\n"
        "con.execute('DELETE FROM trial_values')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert (tmp_path / "optuna.db-journal").exists()
    check_study_store(url, "s")
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 20
