"""Start-up time of the command line: `audioml --help` and `audioml validate`.

Each command runs as a fresh process (`python -m runner ...`), several times; the table gives
the median and the fastest wall time. Baselines measured in the same run: the bare
interpreter; importing Optuna's distributions (the search spaces need them) and scikit-learn
and pandas (which the model-family modules imported up to 3c36134); and, with ``--before REV``,
the same validate command of an earlier revision (extracted with ``git archive`` into a
temporary folder), so the figures can be read on a machine shared with other jobs.

    python -m benchmarks.bench_cli --repeat 5 --before 3c36134
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
}


def wall_times(args: list[str], repeat: int, path: Path = REPO) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=path, env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


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
    if args.before:
        _before(args.before, args.repeat)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
