"""Start-up time of the command line: `audioml --help`, `audioml validate`, `audioml
experiments`, and the refusals of `run`, `features` and `predict` (exit 2 on a missing
data.root, an unknown --set key, a missing DATA, options that do not go together).

Each command runs as a fresh process (`python -m runner ...`), several times; the table gives
the median and the fastest wall time. The refusals run in an empty temporary folder (so the
demo spec's data.root, ./demo-data, is absent) and must exit 2. Baselines measured in the same
run: the bare interpreter; importing Optuna's distributions (the search spaces need them) and
scikit-learn and pandas (which the model-family modules imported up to 3c36134); and, with
``--before REV``, the validate command and the refusals of an earlier revision (extracted with
``git archive`` into a temporary folder; spec files by path, which every revision reads), so
the figures can be read on a machine shared with other jobs.

    python -m benchmarks.bench_cli --repeat 5 --before 693ebe0
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p.relative_to(REPO)) for p in (REPO / "experiments").glob("*.yaml"))

CLI = ["-m", "runner"]
COMMANDS: dict[str, list[str]] = {
    "python -c pass (interpreter)": ["-c", "pass"],
    "import optuna.distributions": ["-c", "import optuna.distributions"],
    "import sklearn.base": ["-c", "import sklearn.base"],
    "import pandas": ["-c", "import pandas"],
    "audioml --help": [*CLI, "--help"],
    "audioml validate experiments/demo.yaml": [*CLI, "validate", "experiments/demo.yaml"],
    f"audioml validate experiments/*.yaml ({len(SPECS)} specs)": [*CLI, "validate", *SPECS],
    "audioml experiments": [*CLI, "experiments"],
}
#: Refusals (exit 2), run from an empty folder; "SPECS/" is the tree's experiments folder.
REFUSALS: dict[str, list[str]] = {
    "audioml run experiments/demo.yaml (no ./demo-data)": [*CLI, "run", "SPECS/demo.yaml"],
    "audioml features experiments/genre.yaml (no data.root)": [
        *CLI, "features", "SPECS/genre.yaml",
    ],
    "audioml run experiments/demo.yaml --set search.n_trial=5": [
        *CLI, "run", "SPECS/demo.yaml", "--set", "search.n_trial=5",
    ],
    "audioml predict MODEL missing/ --out p.csv": [
        *CLI, "predict", "models:/demo-audio-classifier@champion", "missing", "--out", "p.csv",
    ],
    "audioml predict MODEL . --out p.csv --uncertain 5 (no --labels-out)": [
        *CLI, "predict", "models:/demo-audio-classifier@champion", ".",
        "--out", "p.csv", "--uncertain", "5",
    ],
}  # fmt: skip


def wall_times(
    args: list[str], repeat: int, path: Path = REPO, *, cwd: Path | None = None, code: int = 0
) -> list[float]:
    """Wall times of ``python ARGS`` with the code of ``path``; each run must exit ``code``."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *args], cwd=cwd or path, env=env, capture_output=True
        )
        out.append(time.perf_counter() - start)
        if done.returncode != code:
            raise SystemExit(f"{args}: exit {done.returncode}, not {code}\n{done.stderr[-2000:]}")
    return out


def refusal_times(argv: list[str], repeat: int, path: Path = REPO) -> list[float]:
    """A refusal from an empty folder, the spec files taken from ``path``'s experiments/."""
    argv = [a.replace("SPECS/", f"{path / 'experiments'}/") for a in argv]
    with tempfile.TemporaryDirectory() as empty:
        return wall_times(argv, repeat, path, cwd=Path(empty), code=2)


def _row(label: str, times: list[float]) -> None:
    print(f"| `{label}` | {statistics.median(times):.2f} | {min(times):.2f} |", flush=True)


def _before(rev: str, repeat: int) -> None:
    """The demo spec's validate at ``rev``: the same command, the code of then."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = subprocess.run(
            ["git", "archive", rev, "runner", "features", "configs", "experiments"],
            cwd=REPO, check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=tree, check=True)
        argv = [*CLI, "validate", "experiments/demo.yaml"]
        times = wall_times(argv, repeat, Path(tmp))
        _row(f"audioml validate experiments/demo.yaml at {rev}", times)
        for label, argv in REFUSALS.items():
            _row(f"{label} at {rev}", refusal_times(argv, repeat, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--before", default=None, help="also time validate at this revision")
    args = parser.parse_args()
    machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"{time.strftime('%Y-%m-%d')}, {machine}; load average {os.getloadavg()[0]:.2f}")
    wall_times(COMMANDS["audioml --help"], 1)  # warm the file cache and bytecode
    print("| command | median s | fastest s |")
    print("| --- | ---: | ---: |")
    for label, argv in COMMANDS.items():
        _row(label, wall_times(argv, args.repeat))
    for label, argv in REFUSALS.items():
        _row(label, refusal_times(argv, args.repeat))
    if args.before:
        _before(args.before, args.repeat)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
