"""A seeded spec fuzzer: mutated experiment specs through `audioml validate`, in process.

Each case takes a shipped spec merged over the defaults and breaks it: a value of the wrong
type, an unknown key, an out-of-range number, a deleted key, a section replaced by a scalar,
a bad ``--set``, or broken YAML. Every case must end with exit code 0 or 2 and, for 2, a
message; never an exception escaping the CLI (which would print a traceback).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from runner.cli import main
from runner.config.loading import deep_merge, shipped

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "experiments").glob("*.yaml"))
N_CASES = 300
_VALUES: list[Any] = [None, True, False, 0, -1, 1, 2**63, -(10**12), 0.5, -0.25, 1e300,
                      float("nan"), float("inf"), "", "x", "-1", "1e999", "none", [], [1, "a"],
                      [[]], {}, {"a": 1}, {"folds": "many"}]  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested mappings and lists."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, dict | list) and value:
            out.extend(_paths(value, (*prefix, key)))
    return out


def _parent(doc: dict, path: tuple) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def _out_of_range(value: Any, rng: np.random.Generator) -> Any:
    """A number far outside its range, a choice that is not one, a flag that is not one."""
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, int | float):
        choices = [-value, 0, value * 10**9, -1, 10**9, value + 0.5]
        return choices[int(rng.integers(len(choices)))]
    return f"not_{value}" if isinstance(value, str) else value


def _mutate(doc: dict, rng: np.random.Generator) -> tuple[str, dict]:
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    path = paths[int(rng.integers(len(paths)))]
    parent, key = _parent(doc, path), path[-1]
    kind = ("type", "unknown", "range", "delete", "scalar")[int(rng.integers(5))]
    if kind == "type":
        parent[key] = copy.deepcopy(_VALUES[int(rng.integers(len(_VALUES)))])
    elif kind == "unknown" and isinstance(parent, dict):
        parent[f"unknown_{int(rng.integers(100))}"] = 1
    elif kind == "range":
        parent[key] = _out_of_range(parent[key], rng)
    elif kind == "delete" or isinstance(parent, list):
        del parent[key]
    else:
        section = path[0]
        doc[section] = copy.deepcopy(_VALUES[int(rng.integers(len(_VALUES)))])
        path = (section,)
    return f"{kind} {'.'.join(map(str, path))}", doc


def _case(i: int, rng: np.random.Generator, base: dict, tmp: Path) -> tuple[str, list[str]]:
    """One fuzz case: its description and the validate arguments."""
    spec = tmp / f"case{i}.yaml"
    roll = rng.random()
    if roll < 0.06:
        text = yaml.safe_dump(base)
        spec.write_text(text[: int(rng.integers(1, len(text)))] + ":\n  - [")
        return "broken YAML", [str(spec)]
    if roll < 0.16:
        spec.write_text(yaml.safe_dump(base))
        key = ".".join(map(str, _paths(base)[int(rng.integers(len(_paths(base))))]))
        value = yaml.safe_dump(_VALUES[int(rng.integers(len(_VALUES)))]).strip().split("\n")[0]
        return f"--set {key}={value}", [str(spec), "--set", f"{key}={value}"]
    what, doc = _mutate(base, rng)
    spec.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return what, [str(spec)]


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_specs_exit_0_or_2_with_a_message(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(seed)
    defaults = yaml.safe_load(shipped("configs", "defaults.yaml").read_text())
    bases = [deep_merge(defaults, yaml.safe_load(p.read_text())) for p in SPECS]
    codes = {0: 0, 2: 0}
    for i in range(N_CASES // 2):
        base = bases[int(rng.integers(len(bases)))]
        what, argv = _case(i, rng, base, tmp_path)
        try:
            code = main(["validate", *argv])
        except SystemExit as exc:  # argparse rejects the command line itself
            code = exc.code
        except Exception as exc:  # the CLI would show a traceback: that is the bug
            pytest.fail(f"case {i} ({what}): {type(exc).__name__}: {exc}")
        out = capsys.readouterr()
        text = out.out + out.err
        assert code in (0, 2), f"case {i} ({what}): exit {code}\n{text}"
        assert "Traceback" not in text, f"case {i} ({what}):\n{text}"
        if code == 2:
            assert "invalid" in text or "error" in text, f"case {i} ({what}): no message"
        codes[code] += 1
    assert codes[2] > N_CASES // 4, codes  # the mutations do break specs


#: Values that once reached a traceback or slipped through (issue 26, item 7).
ITEM7 = ["name_too_long", "segment_length_inf", "seed_out_of_range", "manifest_outside_root",
         "manifest_absolute_outside_root", "audio_dir_outside_root", "n_trials_bool",
         "timeout_inf"]  # fmt: skip


@pytest.mark.parametrize("name", ITEM7)
def test_refused_run_names_the_key_and_creates_no_store(
    name: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = REPO / "tests" / "specs" / "invalid" / f"{name}.yaml"
    key = path.read_text().splitlines()[0].removeprefix("# expect: ")
    assert main(["run", str(path)]) == 2
    out = capsys.readouterr()
    assert f"{key}:" in out.err and "Traceback" not in out.out + out.err
    assert not [p.name for p in workdir.iterdir()]  # no mlflow.db, optuna.db or cache
