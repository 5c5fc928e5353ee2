"""The import layers in pyproject.toml hold: an upward import fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    """The same contract on a copy of two stages where the lower one imports the upper."""
    pkg = tmp_path / "stages"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "upper.py").write_text("from stages import lower\n")
    (pkg / "lower.py").write_text("from stages import upper  # upward\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = stages\n\n[importlinter:contract:l]\nname = l\n"
        "type = layers\nlayers =\n    stages.upper\n    stages.lower\n"
    )
    lint = Path(sys.executable).with_name("lint-imports")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert (
        proc.returncode == 1
        and "stages.lower is not allowed to import stages.upper" in proc.stdout
    )
