"""Start-up time of the command line: `audioml --help` and `audioml validate`.

Each command runs as a fresh process (`python -m runner ...`), several times; the table gives
the median and the fastest wall time. Baselines measured in the same run: the bare
interpreter, and importing each library the validate path still loads (Optuna for the search
spaces, scikit-learn and pandas through the model-family modules), so the figures can be read
on a machine shared with other jobs.

    python -m benchmarks.bench_cli --repeat 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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


def wall_times(args: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=REPO, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    wall_times(COMMANDS["audioml --help"], 1)  # warm the file cache and bytecode
    print("| command | median s | fastest s |")
    print("| --- | ---: | ---: |")
    for label, argv in COMMANDS.items():
        times = wall_times(argv, args.repeat)
        print(f"| `{label}` | {statistics.median(times):.2f} | {min(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
