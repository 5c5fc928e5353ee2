"""Benchmark `audioml predict` against looping the pyfunc over the same files.

Usage::

    python benchmarks/bench_predict.py --clips 1000 --seconds 10

Trains and registers a small model of experiments/demo.yaml (2 logistic trials on a tiny
synthesized corpus, so the figures are about extraction and I/O), synthesizes ``--clips``
unseen clips of ``--seconds`` s, then in one run measures wall time and clips per second of:

* ``audioml predict`` cold (empty feature cache) with 1 extraction process and with
  ``--jobs`` processes, and warm (the same command again: everything from the cache);
  each is a fresh process, so its time includes start-up and loading the model (measured
  alone on one cached clip, and subtracted in a second column);
* ``mlflow.pyfunc.load_model(...).predict`` called once per file with ``audio_base64``,
  in this process (what a script around the served model does), model load excluded.

It also checks that every way gives the same label for every clip. Results are printed and
written as Markdown to ``--out``. Ratios within one run are what to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import soundfile as sf
from mlflow.exceptions import MlflowException

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "experiments" / "demo.yaml"
MODEL = "bench-predict"
URI = f"models:/{MODEL}@champion"


def train(workdir: Path) -> None:
    """Register MODEL@champion in workdir/mlflow.db from a tiny synthesized corpus."""
    from runner.cli import main
    from runner.data.demo_data import synthesize_corpus

    corpus = synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=2.0)
    sets = ["search.n_trials=2", "search.models=[logistic]", "search.cv.folds=2",
            "features.n_jobs=1", f"data.root={corpus}",
            f"register.model_name={MODEL}"]  # fmt: skip
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        if main(["run", str(DEMO), "-q", *[a for s in sets for a in ("--set", s)]]) != 0:
            raise SystemExit("training the benchmark model failed")
    finally:
        os.chdir(cwd)


def unseen_clips(folder: Path, n: int, seconds: float, bases: int = 20) -> Path:
    """``n`` distinct clips: ``bases`` synthesized ones (half music, half speech), each
    reused with its own seeded gain and faint noise (synthesis is the slow part)."""
    from runner.data.demo_data import synthesize_corpus

    source = synthesize_corpus(folder.parent / "bases", clips_per_class=bases // 2,
                               duration_s=seconds, seed=11)  # fmt: skip
    rng = np.random.default_rng(11)
    for i, base in enumerate(sorted(source.rglob("*.wav")) * (n // bases + 1)):
        if i == n:
            break
        y, sr = sf.read(base)
        y = y * rng.uniform(0.7, 1.0) + 1e-3 * rng.standard_normal(len(y))
        out = folder / base.parent.name / f"{base.stem}-{i:05d}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.clip(y, -1, 1), sr, subtype="PCM_16")
    return folder


def predict_cli(workdir: Path, data: Path, out: Path, jobs: int, cache: str) -> tuple[float, str]:
    """Wall seconds of one `audioml predict` process, and its summary line."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    cmd = [sys.executable, "-m", "runner", "predict", URI, str(data), "--out", str(out),
           "--n-jobs", str(jobs), "--cache-dir", cache, "-q"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"audioml predict failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout.splitlines()[0]


def pyfunc_loop(workdir: Path, files: list[Path]) -> tuple[float, float, list[str]]:
    """Model load seconds, loop seconds and labels of predict() once per base64 file."""
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(URI)
    loaded = time.perf_counter()
    labels: list[str | None] = []
    for path in files:
        row = pd.DataFrame({"audio_base64": [base64.b64encode(path.read_bytes()).decode()]})
        try:
            labels.append(str(model.predict(row)["label"].iloc[0]))
        except MlflowException:  # a clip predict skips (e.g. silence) is refused here
            labels.append(None)
    return loaded - started, time.perf_counter() - loaded, labels


def markdown(
    rows: list[dict[str, str]], argv: list[str], n: int, seconds: float, startup: float
) -> str:
    head = list(rows[0])
    lines = [
        "# Batch prediction benchmark",
        "",
        f"Command: `python benchmarks/bench_predict.py {' '.join(argv)}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, mlflow {mlflow.__version__}; load average at the end "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; a load average well above 1 "
        "means other jobs shared the machine: compare the ratios, all measured in the same "
        "run.",
        "",
        f"Data: {n} distinct {seconds:g}-s mono 16-bit WAV clips at 16 kHz (20 synthesized "
        "music and speech clips, each reused with its own gain and faint noise). Model: "
        "experiments/demo.yaml's features (7 extractors) with logistic regression (2 "
        "trials), so the estimator costs almost nothing.",
        "",
        "`audioml predict` rows are whole processes (start-up, model load, listing, hashing, "
        "extraction or cache load, prediction, atomic CSV writes); the pyfunc loop excludes "
        f"its model load (shown separately). Start-up of `audioml predict` (the same command "
        f"on one cached clip: interpreter, imports, model load) was {startup:.1f} s; the "
        "column without start-up subtracts it. Every way gave the same label for every clip, "
        "and refused the same clips (digital silence, if any).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS_predict.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        workdir = Path(tmp)
        train(workdir)
        data = unseen_clips(workdir / "unseen", args.clips, args.seconds)
        files = sorted(data.rglob("*.wav"))
        n = len(files)
        runs = [
            ("cold, 1 process", 1, "cache-1"),
            (f"cold, {args.jobs} processes", args.jobs, "cache-n"),
            (f"warm (rerun), {args.jobs} processes", args.jobs, "cache-n"),
        ]
        # Start-up: the whole command on one clip already cached (imports, model load).
        one = workdir / "one"
        one.mkdir()
        (one / files[0].name).write_bytes(files[0].read_bytes())
        predict_cli(workdir, one, workdir / "one.csv", 1, "cache-0")
        startup, _ = predict_cli(workdir, one, workdir / "one.csv", 1, "cache-0")
        print(f"audioml predict start-up (1 cached clip): {startup:.1f} s", flush=True)
        timed, labels = [], {}
        for name, jobs, cache in runs:
            out = workdir / f"{cache}-{len(timed)}.csv"
            wall, line = predict_cli(workdir, data, out, jobs, cache)
            print(f"audioml predict {name}: {wall:.1f} s  ({line})", flush=True)
            timed.append((f"`audioml predict` {name}", wall, line))
            pred = pd.read_csv(out)
            labels[name] = dict(zip(pred["path"], pred["label"], strict=True))
        load_s, loop_s, loop_labels = pyfunc_loop(workdir, files)
        print(f"pyfunc loop: {loop_s:.1f} s (+{load_s:.1f} s model load)", flush=True)
        names = [f.relative_to(data).as_posix() for f in files]
        loop = {k: v for k, v in zip(names, loop_labels, strict=True) if v is not None}
        if any(got != loop for got in labels.values()):
            raise SystemExit("audioml predict and the pyfunc loop disagree on a label")
    rows = [{"way": "pyfunc `predict` per file (base64), in process", "wall s": f"{loop_s:.1f}",
             "clips/s": f"{n / loop_s:.1f}", "clips/s without start-up": f"{n / loop_s:.1f}",
             "vs pyfunc loop (without start-up)": "1.00x",
             "summary": f"model load {load_s:.1f} s not counted"}]  # fmt: skip
    for name, wall, line in timed:
        extracted = re.search(r"extracted=(\d+)", line)
        work = max(wall - startup, 1e-9)
        rows.append({"way": name, "wall s": f"{wall:.1f}", "clips/s": f"{n / wall:.1f}",
                     "clips/s without start-up": f"{n / work:.1f}",
                     "vs pyfunc loop (without start-up)": f"{loop_s / work:.2f}x",
                     "summary": f"extracted={extracted[1] if extracted else '?'}"})  # fmt: skip
    text = markdown(rows, argv if argv is not None else sys.argv[1:], n, args.seconds, startup)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
