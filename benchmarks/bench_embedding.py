"""Benchmark the ``embedding`` extractor: batched windows against a naive loop, and its cost.

Usage::

    python benchmarks/bench_embedding.py --clips 48 --seconds 30

Builds two synthetic ONNX embedders with ``onnx.helper`` (no download):

* ``conv``: realistic-ish compute, a learned-filterbank front end (Conv 1->64 over 25-ms
  frames every 10 ms) and four Conv+ReLU layers of width 3 (64->128->128->256->256), mean
  over time: 256-d, about 0.23 GFLOP per 3-s window (published speaker and tagging networks
  are heavier still, which only makes the model's share of the time larger);
* ``light``: the tests' framed projection (one strided Conv to 64-d, Abs, mean), about
  6 MFLOP per window: the case where a fixed cost per ``session.run`` would show most.

Measures, in one run:

1. windows per second of each model at one intra-op thread, one window per ``session.run``
   against batches of ``--batch`` windows (the same session);
2. clips per second on ``--clips`` synthesized 22.05-kHz WAV clips of ``--seconds`` s with
   3-s windows every 1.5 s: the naive loop (``librosa.load(sr=16000)`` per file, a session
   with onnxruntime's defaults loaded once, one window per run) against ``build_table`` with
   ``extractors: [embedding]`` (cold cache) with 1 and 2 extraction processes;
3. the embedding's cost in ms per minute of audio beside other extractors', each alone through
   ``extract_signal`` on the same decoded clips (its own STFT included where it reads one).

Results are printed and written as Markdown to ``--out``. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SR_FILE, SR_MODEL = 22050, 16000
WINDOW_S, HOP_S = 3.0, 1.5


def _conv(name: str, cin: int, cout: int, k: int, s: int, x: str, nodes: list, inits: list):
    rng = np.random.default_rng(len(inits))
    w = (rng.standard_normal((cout, cin, k)) / np.sqrt(cin * k)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"{name}_w"))
    nodes.append(helper.make_node("Conv", [x, f"{name}_w"], [name], strides=[s]))
    return name


def build_model(path: Path, kind: str) -> Path:
    """Write the ``conv`` or ``light`` embedder (input [batch, samples], output [batch, dim])."""
    nodes: list = [helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x3"])]
    inits: list = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    if kind == "conv":
        h = _conv("c1", 1, 64, 400, 160, "x3", nodes, inits)
        layers = (("c2", 64, 128), ("c3", 128, 128), ("c4", 128, 256), ("c5", 256, 256))
        for name, cin, cout in layers:
            nodes.append(helper.make_node("Relu", [h], [f"{h}_r"]))
            h = _conv(name, cin, cout, 3, 1, f"{h}_r", nodes, inits)
        nodes.append(helper.make_node("Relu", [h], ["act"]))
        dim = 256
    else:
        h = _conv("c1", 1, 64, 400, 400, "x3", nodes, inits)
        nodes.append(helper.make_node("Abs", [h], ["act"]))
        dim = 64
    nodes.append(helper.make_node("ReduceMean", ["act"], ["embedding"], axes=[2], keepdims=0))
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])
    graph = helper.make_graph(nodes, f"bench_{kind}", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def window_rates(path: Path, batch: int, n: int = 192) -> tuple[float, float]:
    """Windows per second, one per run and ``batch`` per run, on one intra-op thread."""
    from features.onnx_model import load_session
    from features.windows import embed_windows

    session, signature = load_session(path, 1)
    windows = np.random.default_rng(0).standard_normal((n, int(WINDOW_S * SR_MODEL)))
    windows = (0.1 * windows).astype(np.float32)
    embed_windows(session, signature, windows[:batch], batch)  # warm-up
    rates = []
    for size in (1, batch):
        started = time.perf_counter()
        embed_windows(session, signature, windows, size)
        rates.append(n / (time.perf_counter() - started))
    return rates[0], rates[1]


def make_clips(folder: Path, clips: int, seconds: float) -> pd.DataFrame:
    """Synthesized clips (a few harmonic tones plus noise, each its own seed) as WAV files."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR_FILE)) / SR_FILE
    rows = []
    for i in range(clips):
        rng = np.random.default_rng(i)
        f0 = rng.uniform(100, 400)
        y = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5))
        y = y + 0.05 * rng.standard_normal(len(t))
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, y.astype(np.float32), SR_FILE, subtype="PCM_16")
        rows.append({"clip_id": f"c{i}", "path": str(path), "label": "x", "group": None})
    return pd.DataFrame(rows)


def naive(clips: pd.DataFrame, model: Path, *, batched: bool = False) -> float:
    """Seconds for the naive loop: one window per run (or, ``batched``, a clip's windows in
    one run), after one untimed clip (imports, first-call set-up)."""
    import librosa
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    win, hop = int(WINDOW_S * SR_MODEL), int(HOP_S * SR_MODEL)

    def one(path: str) -> np.ndarray:
        y, _ = librosa.load(path, sr=SR_MODEL)
        windows = np.stack([y[s : s + win] for s in range(0, len(y) - win + 1, hop)])
        if batched:
            return session.run(None, {"waveform": windows})[0].mean(axis=0)
        return np.mean([session.run(None, {"waveform": w[None]})[0][0] for w in windows], 0)

    one(clips["path"].iloc[0])
    started = time.perf_counter()
    for path in clips["path"]:
        one(path)
    return time.perf_counter() - started


def engine(clips: pd.DataFrame, model: Path, n_jobs: int, cache: Path) -> tuple[float, dict]:
    """Seconds for ``build_table`` with only the embedding (cold cache), and its stats."""
    from features import FeaturesSpec, SegmentsSpec, build_table

    spec = FeaturesSpec(
        sample_rate=SR_MODEL, extractors=["embedding"], n_jobs=n_jobs,
        embedding={"model": str(model), "window_s": WINDOW_S, "hop_s": HOP_S,
                   "pooling": ["mean"]},
    )  # fmt: skip
    started = time.perf_counter()
    table = build_table(clips, spec, SegmentsSpec(), cache_dir=cache, n_jobs=n_jobs,
                        progress=False)  # fmt: skip
    return time.perf_counter() - started, dict(table.stats)


def per_minute(clips: pd.DataFrame, model: Path, seconds: float) -> dict[str, float]:
    """CPU ms per minute of audio of each extractor alone, through ``extract_signal``."""
    from features import FeaturesSpec, SegmentsSpec, decode_audio, extract_signal

    signals = [decode_audio(Path(p), SR_MODEL) for p in clips["path"][:8]]
    embedding = {"model": str(model), "window_s": WINDOW_S, "hop_s": HOP_S}
    out = {}
    for name in ("embedding", "mfcc", "chroma", "pitch", "hpss"):
        spec = FeaturesSpec(sample_rate=SR_MODEL, extractors=[name], n_jobs=1,
                            embedding=embedding if name == "embedding" else None)  # fmt: skip
        extract_signal(signals[0], SR_MODEL, spec, SegmentsSpec())  # warm-up (numba, session)
        started = time.process_time()
        for y in signals:
            extract_signal(y, SR_MODEL, spec, SegmentsSpec())
        minutes = len(signals) * seconds / 60
        out[name] = (time.process_time() - started) * 1000 / minutes
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/RESULTS_embedding.md")
    args = parser.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        root = Path(tmp)
        models = {kind: build_model(root / f"{kind}.onnx", kind) for kind in ("conv", "light")}
        rates = {kind: window_rates(path, args.batch) for kind, path in models.items()}
        clips = make_clips(root / "clips", args.clips, args.seconds)
        naive_s = naive(clips, models["conv"])
        naive_batched_s = naive(clips, models["conv"], batched=True)
        runs = {n: engine(clips, models["conv"], n, root / f"cache{n}") for n in (1, 2)}
        costs = per_minute(clips, models["conv"], args.seconds)
    report = render(args, rates, (naive_s, naive_batched_s), runs, costs, ort.__version__)
    print(report)
    args.out.write_text(report)


def render(args, rates, naive_times, runs, costs, ort_version: str) -> str:
    """The Markdown report."""
    n = args.clips
    naive_s, naive_batched_s = naive_times
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Embedding extractor benchmark",
        "",
        f"Command: `python benchmarks/bench_embedding.py --clips {n} --seconds "
        f"{args.seconds:g} --batch {args.batch}`",
        "",
        f"Machine: {platform.platform()}, {cores} cores, Python {platform.python_version()}, "
        f"onnxruntime {ort_version}; load average at the end "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "## Windows per second (one intra-op thread, the same session)",
        "",
        f"| model | one window per run | {args.batch} per run | speed-up |",
        "|---|---|---|---|",
    ]
    for kind, (one, many) in rates.items():
        lines.append(f"| {kind} | {one:.0f} | {many:.0f} | {many / one:.2f}x |")
    lines += [
        "",
        f"## Clips per second ({n} clips of {args.seconds:g} s, conv model, 3-s windows "
        "every 1.5 s)",
        "",
        "| way | wall s | clips/s | vs naive |",
        "|---|---|---|---|",
        f"| naive loop (librosa.load, default session, one window per run) | {naive_s:.1f} "
        f"| {n / naive_s:.2f} | 1.00x |",
        f"| the same loop, a clip's windows in one run | {naive_batched_s:.1f} "
        f"| {n / naive_batched_s:.2f} | {naive_s / naive_batched_s:.2f}x |",
    ]
    for jobs, (seconds, stats) in runs.items():
        lines.append(
            f"| build_table, {jobs} process(es), cold cache (extracted={stats['extracted']}) "
            f"| {seconds:.1f} | {n / seconds:.2f} | {naive_s / seconds:.2f}x |"
        )
    lines += [
        "",
        "## CPU ms per minute of audio, each extractor alone (8 clips, 16 kHz)",
        "",
        "| extractor | ms per clip-minute |",
        "|---|---|",
        *(f"| {name} | {ms:.0f} |" for name, ms in costs.items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
