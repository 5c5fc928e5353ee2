"""What one fold fit in a worker process costs beyond the fit: the round trip through
``runner.search.fold_procs.FoldProcesses`` with every worker busy, against the fit alone.

    python -m benchmarks.bench_fold_transport --workers 16 --folds 8

``--workers`` threads each send ``--folds`` fold fits one after another to as many worker
processes (the search's fold slots), first a k-NN (a fit of a few ms: the round trip is all
overhead), then a 200-tree random forest (about 0.7 s). ``--busy`` more threads meanwhile
score predictions in the parent, as the trials' own threads do between folds, to show what
the interpreter's lock adds. Overhead = round trip - the fit and prediction seconds the
worker measured.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from runner.data.splits import Split
from runner.metrics import score_all
from runner.models import TABLE, Inputs, Rows
from runner.models._inputs import ColumnRoles
from runner.search.fold_procs import FoldProcesses


def _estimator(name: str):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier

    if name == "knn":
        return KNeighborsClassifier()
    return RandomForestClassifier(200, random_state=0, n_jobs=1)


def _scoring(stop: threading.Event, y: np.ndarray, classes: list[str]) -> None:
    rng = np.random.default_rng(0)
    while not stop.is_set():
        proba = rng.dirichlet(np.ones(len(classes)), len(y))
        score_all("classification", y, np.asarray(classes)[proba.argmax(1)], proba, classes)


def run(workers: int, folds: int, busy: int) -> list[str]:
    rows, cols = 1000, 60
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((rows, cols)), columns=[f"c{i}" for i in range(cols)])
    y = rng.integers(0, 10, rows).astype(str)
    classes = sorted(set(y))
    procs = FoldProcesses(Rows(frame), y, workers)
    inputs = Inputs(TABLE, Rows(frame), list(frame.columns), ColumnRoles())
    split = Split(train=np.arange(800), test=np.arange(800, rows))
    out = []
    try:
        with ThreadPoolExecutor(workers) as pool:  # every worker started and warm
            list(pool.map(lambda _: _fit(procs, inputs, split, "rf", classes), range(workers)))
        for name in ("knn", "rf"):
            for scorers in sorted({0, busy}):
                stop = threading.Event()
                noise = [
                    threading.Thread(target=_scoring, args=(stop, y[:200], classes))
                    for _ in range(scorers)
                ]
                for t in noise:
                    t.start()
                began = time.perf_counter()
                with ThreadPoolExecutor(workers) as pool:
                    got = list(pool.map(
                        lambda _, n=name: [
                            _fit(procs, inputs, split, n, classes) for _ in range(folds)
                        ],
                        range(workers),
                    ))  # fmt: skip
                wall = time.perf_counter() - began
                stop.set()
                for t in noise:
                    t.join()
                trips = [t for per in got for t in per]
                over = [rt - fit for rt, fit in trips]
                out.append(
                    f"| {name} | {scorers} | {len(trips)} | {wall:.1f} | "
                    f"{statistics.mean(fit for _, fit in trips) * 1000:.0f} | "
                    f"{statistics.median(over) * 1000:.0f} | {max(over) * 1000:.0f} | "
                    f"{sum(fit for _, fit in trips) / (wall * workers):.2f} |"
                )
                print(out[-1], flush=True)
    finally:
        procs.close()
    return out


def _fit(procs, inputs, split, name, classes):  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    result = procs.fit(lambda: _estimator(name), inputs, 0, split, task="classification",
                       classes=classes, threads=1, keep=False)  # fmt: skip
    return time.perf_counter() - began, result[3] + result[4]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--busy", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"{args.workers} worker processes, {args.workers} sending threads\n")
    print("| fit | scoring threads | folds | wall s | fit ms (mean) | overhead ms (median) |"
          " overhead ms (max) | workers busy |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    run(args.workers, args.folds, args.busy)


if __name__ == "__main__":
    main()
