"""Feature extraction through Dask against the local process pool, on the same clips.

A Dask ``LocalCluster`` of N worker processes (one thread each, started here) and the local
pool with N processes build the feature table of the same synthetic clips into fresh caches,
alternating (local, dask, local, dask, ...) so load drift hits both. The tables must be equal
(frame and digest); the wall time of each cold build and the Dask overhead are written to
benchmarks/RESULTS_dask.md.

    python benchmarks/bench_dask.py [--clips 96] [--seconds 10] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._genres import GENRES, synth_genre  # noqa: E402
from features import FeaturesSpec, SegmentsSpec, build_table  # noqa: E402

OUT = REPO / "benchmarks" / "RESULTS_dask.md"
SR = 22050


def _corpus(folder: Path, n: int, seconds: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        genre = list(GENRES)[i % len(GENRES)]
        path = folder / f"{genre}_{i:04d}.wav"
        sf.write(path, synth_genre(rng, genre, int(seconds * SR), SR), SR, subtype="PCM_16")
        rows.append({"clip_id": path.stem, "path": str(path), "label": genre, "group": path.stem})
    return pd.DataFrame(rows)


def _features(executor: str, scheduler: str | None) -> FeaturesSpec:
    """The feature set of experiments/genre.yaml, on the chosen executor."""
    spec = yaml.safe_load((REPO / "experiments" / "genre.yaml").read_text())["features"]
    keep = {k: v for k, v in spec.items() if k in FeaturesSpec.model_fields}
    return FeaturesSpec(**{**keep, "executor": executor, "scheduler": scheduler})


def _build(clips: pd.DataFrame, features: FeaturesSpec, workers: int, cache: Path):
    started = time.perf_counter()
    table = build_table(
        clips, features, SegmentsSpec(), cache_dir=cache, n_jobs=workers, progress=False
    )
    return table, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        clips = _corpus(root / "audio", args.clips, args.seconds)
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None,
        )  # fmt: skip
        with cluster, Client(cluster) as client:
            client.wait_for_workers(args.workers)
            times: dict[str, list[float]] = {"local": [], "dask": []}
            tables = {}
            for r in range(args.rounds):
                for executor in ("local", "dask"):
                    address = cluster.scheduler_address if executor == "dask" else None
                    features = _features(executor, address)
                    table, seconds = _build(
                        clips, features, args.workers, root / f"cache-{executor}-{r}"
                    )
                    if table.skipped.shape[0]:
                        raise SystemExit(f"{executor}: clips skipped:\n{table.skipped}")
                    times[executor].append(seconds)
                    tables[executor] = table
                    print(f"round {r} {executor}: {seconds:.2f} s", flush=True)
        pd.testing.assert_frame_equal(tables["local"].frame, tables["dask"].frame)
        same = tables["local"].digest == tables["dask"].digest
    _write(args, times, same)


def _write(args: argparse.Namespace, times: dict[str, list[float]], same: bool) -> None:
    local, dask = (statistics.median(times[k]) for k in ("local", "dask"))
    command = (
        f"python benchmarks/bench_dask.py --clips {args.clips} --seconds {args.seconds:g} "
        f"--workers {args.workers} --rounds {args.rounds}"
    )
    lines = [
        "# Feature extraction on Dask against the local pool",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}, dask {metadata.version('distributed')}. Load average "
        f"at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        f"{args.clips} synthetic genre clips of {args.seconds:g} s at {SR} Hz, the feature set "
        "of experiments/genre.yaml, a cold cache for every build. Local: the process pool "
        f"with {args.workers} workers. Dask: a LocalCluster of {args.workers} worker processes "
        "(one thread each) on 127.0.0.1, the clips sent as tasks of many clips. Builds "
        "alternate local and Dask each round.",
        "",
        "| executor | " + " | ".join(f"round {r}" for r in range(args.rounds)) + " | median |",
        "|---|" + "---|" * (args.rounds + 1),
    ]
    for k in ("local", "dask"):
        cells = " | ".join(f"{t:.2f} s" for t in times[k])
        lines.append(f"| {k} | {cells} | {statistics.median(times[k]):.2f} s |")
    lines += [
        "",
        f"Same table: frame equal, digest {'equal' if same else 'DIFFERENT'}. Dask overhead "
        f"(median): {dask - local:+.2f} s ({(dask / local - 1) * 100:+.1f} %), "
        f"{(dask - local) / args.clips * 1000:+.1f} ms per clip.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
