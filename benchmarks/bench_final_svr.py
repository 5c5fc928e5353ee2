"""What the svm regressor's BLAS prediction buys the final step, on the age task.

The same seeded age run (the bench_search corpus and table) alternates the family's SVR
predicting through libsvm (``libsvm``) and through BLAS products (``blas``); everything else
is the same code. The first run in a process pays imports and warm-up, so it is run first
and left out.

    python -m benchmarks.bench_final_svr --budget-s 12 --seed 0 --pairs 2
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sklearn.svm import SVR

import runner.models._svr_estimator as svr_estimator
from benchmarks._corpora import ensure
from benchmarks.bench_search import CACHE, TASKS, run_audioml

OUT = Path(__file__).with_name("RESULTS_final_svr.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=CACHE, help="shared with bench_search")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    task = TASKS["age"]
    corpus, _ = ensure(args.cache / "corpora" / task.corpus, task.builder, **task.sizes)
    blas = svr_estimator.BlasSVR.predict
    ways = {"libsvm": SVR.predict, "blas": blas}

    def run(way: str) -> tuple[float, float, float, str]:
        svr_estimator.BlasSVR.predict = ways[way]
        try:
            r = run_audioml(task, corpus, args.cache, args.seed, args.budget_s, ())
        finally:
            svr_estimator.BlasSVR.predict = blas
        final = float(r.detail.rsplit("final ", 1)[1].split(" s")[0])
        print(f"{way}: mae {r.score:.4f}, wall {r.wall_s:.1f} s, {r.detail}", flush=True)
        return r.score, r.wall_s, final, r.detail

    run("blas")  # warm-up, not counted
    results: dict[str, list[tuple[float, float, float, str]]] = {w: [] for w in ways}
    for _ in range(args.pairs):
        for way in ways:
            results[way].append(run(way))
    lines = [
        "# The svm regressor's prediction and the final step (age task)",
        "",
        f"Command: `python -m benchmarks.bench_final_svr --budget-s {args.budget_s:g} "
        f"--seed {args.seed} --pairs {args.pairs} --cache {args.cache}`",
        "",
        "One warm-up run first (not counted), then libsvm and BLAS alternately; same seed, "
        "same corpus and table, same code otherwise.",
        "",
        "| predict | run | held-out MAE | wall s | final step s | detail |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for way, rs in results.items():
        lines += [
            f"| {way} | {i + 1} | {s:.4f} | {w:.1f} | {f:.0f} | {d} |"
            for i, (s, w, f, d) in enumerate(rs)
        ]
    med = {w: [statistics.median(r[k] for r in rs) for k in (1, 2)] for w, rs in results.items()}
    lines += [
        "",
        f"Median wall: libsvm {med['libsvm'][0]:.1f} s, blas {med['blas'][0]:.1f} s; median "
        f"final step: libsvm {med['libsvm'][1]:.0f} s, blas {med['blas'][1]:.0f} s.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
