"""The import layers in pyproject.toml hold: an upward import fails the suite."""

from __future__ import annotations

import ast
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


def _owner(module: str) -> str:
    """The stage that owns ``module``: ``runner.<package>`` for a module inside one of the
    runner's packages, ``runner`` for its top modules, ``features`` for the engine."""
    parts = module.split(".")
    if parts[0] == "runner" and len(parts) > 1 and (ROOT / "runner" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def _private_imports(source: str, importer: str) -> list[str]:
    """The imports in ``source`` of a private module or name of another stage."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [(a.name, "") for a in node.names]
        else:
            continue
        for module, name in targets:
            if module.split(".")[0] not in ("runner", "features"):
                continue
            owner = _owner(module)
            inside = [*module[len(owner) :].split("."), name]
            if owner != _owner(importer) and any(p.startswith("_") for p in inside if p):
                found.append(f"{importer} imports {module}{':' + name if name else ''}")
    return found


def test_no_module_imports_another_stages_private_names() -> None:
    """A stage's underscored modules and names are its own: other stages go through its
    public names (re-exported by its package, lazily where heavy)."""
    found = []
    for path in sorted([*(ROOT / "runner").rglob("*.py"), *(ROOT / "features").rglob("*.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found += _private_imports(path.read_text(), module)
    assert found == []


def test_the_private_import_check_can_fail() -> None:
    assert _private_imports("from runner.models._predict import predict_rows\n", "runner.final.x")
    assert _private_imports("from runner.session.pipeline import _mask\n", "runner.final.x")
    assert _private_imports("import features._atomic\n", "runner.data.dataset")
    assert not _private_imports("from runner.session.pipeline import _mask\n", "runner.session.w")
    assert not _private_imports("from features._registry import X\n", "features.build")
