"""Benchmark the ``embedding`` extractor: batched windows against a naive loop, and its cost.

Usage::

    python benchmarks/bench_embedding.py --clips 48 --seconds 30 --batch 32 --repeats 2 --jobs 2

Builds three synthetic ONNX embedders with ``onnx.helper`` (no download):

* ``conv``: realistic-ish compute, a learned-filterbank front end (Conv 1->64 over 25-ms
  frames every 10 ms) and four Conv+ReLU layers of width 3 (64->128->128->256->256), mean
  over time: 256-d, about 0.23 GFLOP per 3-s window (published speaker and tagging networks
  are heavier still, which only makes the model's share of the time larger);
* ``light``: the tests' framed projection (one strided Conv to 64-d over 25-ms frames, Abs,
  mean): about 6 MFLOP per 3-s window, 0.2 MFLOP per 0.1-s window;
* ``tiny``: the same projection to 8-d (25 kFLOP per 0.1-s window): a model whose fixed
  cost per ``session.run`` is nearly all of its time.

Four scenarios on the same ``--clips`` synthesized 22.05-kHz WAV clips of ``--seconds`` s:
``tiny`` and ``light`` on 0.1-s windows, ``light`` and ``conv`` on 3-s windows every 1.5 s.
For each, in one run:

1. the model alone: windows per CPU second on the decoded clips' windows, one window per
   ``session.run`` against ``--batch`` windows of many clips per run (one intra-op thread,
   so CPU time is the work done, however busy the machine);
2. clips per second, end to end from the WAV files: decoding alone (``librosa.load`` at
   16 kHz: what no batching can speed up), the naive loop (``librosa.load``, a session with
   onnxruntime's defaults loaded once, one window per run), and ``build_table`` with
   ``extractors: [embedding]`` into a fresh cache: ``batch_size: 1`` in one process (the
   engine without batching), then batched (``--batch``; windows of many clips per run) in one
   process and in ``--jobs`` processes.

Then the embedding's cost in ms per minute of audio beside other extractors', each alone
through ``extract_signal`` (conv model, 3-s windows). Each time is the best of
``--repeats``. Results are printed and written as Markdown to ``--out``; compare ratios
within one run.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._embedding_report import render  # noqa: E402
from benchmarks._embedding_setup import build_model, make_clips  # noqa: E402

SR_MODEL = 16000


@dataclass(frozen=True)
class Scenario:
    """A model and the windows it runs on."""

    name: str
    model: str
    window_s: float
    hop_s: float


SCENARIOS = (
    Scenario("tiny, 0.1-s windows", "tiny", 0.1, 0.1),
    Scenario("light, 0.1-s windows", "light", 0.1, 0.1),
    Scenario("light, 3-s windows", "light", 3.0, 1.5),
    Scenario("conv, 3-s windows", "conv", 3.0, 1.5),
)


def decode(paths: list[str]) -> list[np.ndarray]:
    """Every clip decoded at the model's rate (``librosa.load``)."""
    import librosa

    return [librosa.load(p, sr=SR_MODEL)[0] for p in paths]


def windows_of(y: np.ndarray, window_s: float, hop_s: float) -> np.ndarray:
    """The naive loop's windows (equal to the engine's when the hops end on the last sample)."""
    win, hop = round(window_s * SR_MODEL), round(hop_s * SR_MODEL)
    return np.stack([y[s : s + win] for s in range(0, len(y) - win + 1, hop)])


def model_rates(
    path: Path, signals: list[np.ndarray], scenario: Scenario, batch: int, repeats: int
) -> tuple[float, float, int]:
    """Windows per second of the model alone (one intra-op thread, the same session), one
    window per run and ``batch`` windows of many clips per run; and windows per clip."""
    from features.onnx_model import load_session
    from features.windows import embed_windows

    session, signature = load_session(path, 1)
    per_clip = [windows_of(y, scenario.window_s, scenario.hop_s) for y in signals]
    windows = np.concatenate(per_clip).astype(np.float32)
    embed_windows(session, signature, windows[:batch], batch)  # warm-up

    def run(size: int) -> Callable[[], object]:
        return lambda: embed_windows(session, signature, windows, size)

    # CPU time: on one thread, the work done, not the waits of a busy machine.
    one, many = (len(windows) / best(repeats, run(size)).cpu for size in (1, batch))
    return one, many, len(per_clip[0])


def naive(paths: list[str], model: Path, scenario: Scenario, threads: int) -> Callable[[], None]:
    """The naive loop, one window per run (``threads`` intra-op threads; 0: onnxruntime's
    default), after one untimed clip (imports, first-call set-up)."""
    import librosa
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def one(path: str) -> np.ndarray:
        y, _ = librosa.load(path, sr=SR_MODEL)
        windows = windows_of(y, scenario.window_s, scenario.hop_s)
        return np.mean([session.run(None, {"waveform": w[None]})[0][0] for w in windows], 0)

    one(paths[0])
    return lambda: [one(path) for path in paths] and None


def engine(
    clips: pd.DataFrame, model: Path, scenario: Scenario, *, n_jobs: int, batch: int, cache: Path
) -> tuple[float, dict]:
    """Seconds for ``build_table`` with only the embedding into the empty ``cache``, and its
    stats."""
    from features import FeaturesSpec, SegmentsSpec, build_table

    embedding = {"model": str(model), "window_s": scenario.window_s, "hop_s": scenario.hop_s,
                 "pooling": ["mean"], "batch_size": batch}  # fmt: skip
    spec = FeaturesSpec(
        sample_rate=SR_MODEL, extractors=["embedding"], n_jobs=n_jobs, embedding=embedding
    )
    started = time.perf_counter()
    table = build_table(clips, spec, SegmentsSpec(), cache_dir=cache, n_jobs=n_jobs,
                        progress=False)  # fmt: skip
    return time.perf_counter() - started, dict(table.stats)


def per_minute(clips: pd.DataFrame, model: Path, seconds: float) -> dict[str, float]:
    """CPU ms per minute of audio of each extractor alone, through ``extract_signal``."""
    from features import FeaturesSpec, SegmentsSpec, decode_audio, extract_signal

    signals = [decode_audio(Path(p), SR_MODEL) for p in clips["path"][:8]]
    embedding = {"model": str(model), "window_s": 3.0, "hop_s": 1.5}
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


@dataclass(frozen=True)
class Timing:
    """Wall seconds, and CPU seconds of this process and the worker processes it reaped."""

    wall: float
    cpu: float


def _cpu() -> float:
    own, workers = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def best(repeats: int, run: Callable[[], object]) -> Timing:
    """The least wall and the least CPU time of ``repeats`` runs (the machine is shared:
    noise only adds time)."""
    times = []
    for _ in range(repeats):
        cpu, started = _cpu(), time.perf_counter()
        run()
        times.append(Timing(time.perf_counter() - started, _cpu() - cpu))
    return Timing(min(t.wall for t in times), min(t.cpu for t in times))


def measure(args: argparse.Namespace, root: Path, clips: pd.DataFrame) -> dict[str, dict]:
    """Every figure of every scenario."""
    paths = list(clips["path"])
    signals = decode(paths)  # also the warm-up: imports, soxr's first call
    decoding = best(args.repeats, lambda: decode(paths))
    models = {sc.model: build_model(root / f"{sc.model}.onnx", sc.model) for sc in SCENARIOS}
    out: dict[str, dict] = {}
    caches = itertools.count()
    for sc in SCENARIOS:
        model = models[sc.model]

        def build(n_jobs: int, batch: int, model: Path = model, sc: Scenario = sc) -> None:
            cache = root / f"cache{next(caches)}"
            engine(clips, model, sc, n_jobs=n_jobs, batch=batch, cache=cache)

        one, many, per_clip = model_rates(model, signals, sc, args.batch, args.repeats + 1)
        out[sc.name] = {
            "one": one, "many": many, "per_clip": per_clip, "decode": decoding,
            "naive": best(args.repeats, naive(paths, model, sc, 0)),
            "naive_1": best(args.repeats, naive(paths, model, sc, 1)),
            "engine_1": best(args.repeats, lambda: build(1, 1)),
            "batched_1": best(args.repeats, lambda: build(1, args.batch)),
            "batched_n": best(args.repeats, lambda: build(args.jobs, args.batch)),
        }  # fmt: skip
        print(sc.name, out[sc.name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="processes of the last build")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/RESULTS_embedding.md")
    args = parser.parse_args()
    import onnxruntime as ort

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        root = Path(tmp)
        clips = make_clips(root / "clips", args.clips, args.seconds)
        figures = measure(args, root, clips)
        costs = per_minute(clips, root / "conv.onnx", args.seconds)
    elapsed = time.perf_counter() - started
    report = render(args, figures, costs, ort.__version__, elapsed)
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
