"""Benchmark the feature engine against two baselines, cold and warm, and per extractor.

Usage::

    python benchmarks/bench_features.py --clips 100 --seconds 30 --naive-clips 20

Measures, in one run on synthesized clips (harmonic tones with vibrato, noise and clicks),
for the default genre set (experiments/genre.yaml's extractors, stats and beat_level):

* baseline (a), the notebook way: every feature from its own librosa call on the raw signal
  with the library's defaults (``mfcc(y=...)``, ``chroma_stft(y=...)``, ``tonnetz(y=...)``
  on a constant-Q chromagram, ``effects.hpss(y)`` for the harmonic/percussive columns,
  ``beat.beat_track(y=...)``, ``util.sync`` per feature for the beat level);
* baseline (b), the same definitions as the engine computed naively: one librosa call each
  on the raw signal (tonnetz from ``chroma_stft(y=...)``), no shared STFT;
* ``features.build_table`` (one STFT per segment, shared), cold cache, 1 and 2 workers;
* the whole ``audioml features`` command, cold (fresh cache and process, imports included),
  next to the engine's own ``seconds``; with ``--before-tree`` also the same command on
  another checkout (e.g. the code before the numpy beat tracker) with an extractor set both
  trees know;
* each extractor's cost in ms per minute of audio (its own work on an already computed
  STFT, plus the STFT/mel base every extractor shares), and beat-level's cost;
* warm-cache reruns, and peak RSS for ``--rss-clips`` short clips (cold and warm, fresh child
  processes), whose warm build time is the "1,000 clips" figure.

Speed-ups are per core by CPU time (what our processes used, whatever else runs) and by wall
clock. Results are printed and written as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import yaml

from features import FEATURES as EXTRACTOR_FNS
from features import FeaturesSpec, SegmentsSpec, SpectralContext, build_table, ensure_loaded

SR = 22050
REPO = Path(__file__).resolve().parent.parent
GENRE = yaml.safe_load((REPO / "experiments" / "genre.yaml").read_text())["features"]
FEATURES = FeaturesSpec.model_validate({k: v for k, v in GENRE.items() if k != "n_jobs"})
EXTRACTORS = list(FEATURES.extractors)
#: An extractor set the code before this engine version also knows (for --before-tree).
OLD_GENRE = ["mfcc", "delta_mfcc", "zcr", "centroid", "bandwidth", "rolloff", "flatness",
             "rms", "spectral_contrast", "chroma", "tempo"]  # fmt: skip


def synthesize(folder: Path, n: int, seconds: float, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct 16-bit WAV clips: a harmonic tone with vibrato, noise and a beat."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    rows = []
    for i in range(n):
        f0 = rng.uniform(110, 440) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        y = sum(0.3 / k * np.sin(k * phase) for k in range(1, 5))
        bpm = rng.uniform(80, 160)
        clicks = librosa.clicks(times=np.arange(0, seconds, 60 / bpm), sr=SR, length=len(t))
        y = y + 0.5 * clicks + rng.uniform(0.005, 0.05) * rng.standard_normal(len(t))
        path = folder / f"clip{i:05d}.wav"
        sf.write(path, (0.5 * y / np.max(np.abs(y))).astype(np.float32), SR, subtype="PCM_16")
        rows.append({"clip_id": path.stem, "path": str(path), "label": str(i % 4), "group": None})
    return pd.DataFrame(rows)


def _stats(frames: list[np.ndarray], beats: np.ndarray) -> list[np.ndarray]:
    """Mean and std of every frame feature, and across beats (util.sync per feature)."""
    out = [np.r_[f.mean(axis=1), f.std(axis=1)] for f in frames]
    if len(beats) >= 4:
        synced = [librosa.util.sync(f, beats, aggregate=np.mean) for f in frames]
        out += [np.r_[f.mean(axis=1), f.std(axis=1)] for f in synced]
    return out


def _naive(path: str, tonnetz_chroma: str) -> np.ndarray:
    import librosa.beat

    y, sr = librosa.load(path, sr=SR)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    if tonnetz_chroma == "cqt":
        tonnetz = librosa.feature.tonnetz(y=y, sr=sr)
    else:
        tonnetz = librosa.feature.tonnetz(chroma=librosa.feature.chroma_stft(y=y, sr=sr))
    frames = [
        mfcc,
        librosa.feature.delta(mfcc),
        librosa.feature.zero_crossing_rate(y),
        librosa.feature.spectral_centroid(y=y, sr=sr),
        librosa.feature.spectral_bandwidth(y=y, sr=sr),
        librosa.feature.spectral_rolloff(y=y, sr=sr),
        librosa.feature.spectral_flatness(y=y),
        librosa.feature.rms(y=y),
        librosa.feature.spectral_contrast(y=y, sr=sr),
        librosa.feature.chroma_stft(y=y, sr=sr),
        tonnetz,
    ]
    harmonic, percussive = librosa.effects.hpss(y)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr)
    hpss = [harmonic.mean(), harmonic.var(), percussive.mean(), percussive.var()]
    return np.concatenate([*_stats(frames, beats), hpss, np.atleast_1d(tempo)])


def naive_notebook(path: str) -> np.ndarray:
    """Baseline (a): the notebook way, library defaults (tonnetz on a CQT chromagram)."""
    return _naive(path, "cqt")


def naive_same(path: str) -> np.ndarray:
    """Baseline (b): the engine's definitions, one librosa call each on the raw signal."""
    return _naive(path, "stft")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are joined)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def timed_cpu(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall s, CPU s, result): CPU time is what a core spent, whatever else runs."""
    cpu = _cpu_seconds()
    wall, out = timed(fn, *args, **kwargs)
    return wall, _cpu_seconds() - cpu, out


def run_build(clips: pd.DataFrame, cache: Path, n_jobs: int) -> tuple[float, dict]:
    seconds, cpu, table = timed_cpu(
        build_table,
        clips,
        FEATURES,
        SegmentsSpec(),
        cache_dir=cache,
        n_jobs=n_jobs,
        progress=False,
    )
    return seconds, {**table.stats, "cpu_s": cpu}


def _field_kib(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def _tree_memory_kib(root: int) -> tuple[int, int]:
    """(RSS, PSS) summed over ``root`` and all its descendants, from /proc.

    RSS counts pages shared by forked workers once per process; PSS splits them fairly.
    """
    rss = pss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        proc = Path(f"/proc/{pid}")
        try:
            rss += _field_kib(proc / "status", "VmRSS:")
            pss += _field_kib(proc / "smaps_rollup", "Pss:")
            for task in (proc / "task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss


PHASES = ("cold", "warm", "warm again")


def measure_rss(n: int, seconds: float, workdir: Path, n_jobs: int) -> dict:
    """Cold then warm build of ``n`` short clips in a child process; peak tree memory."""
    clips = synthesize(workdir / f"rss{n}", n, seconds, seed=n)
    clips_file = workdir / f"rss{n}.parquet"
    clips.to_parquet(clips_file)
    out: dict = {"clips": n}
    # "warm" right after the cold build re-hashes the files written within 2 s of being
    # hashed (features/stat_index.py); "warm again" is the stat-only path a user sees.
    for phase in PHASES:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(clips_file),
            str(workdir / f"c{n}"),
            str(n_jobs),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        peak_rss = peak_pss = 0
        while proc.poll() is None:
            rss, pss = _tree_memory_kib(proc.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.02)
        stats = json.loads(proc.stdout.read())
        out[phase] = {
            "peak_rss_mib": round(peak_rss / 1024, 1),
            "peak_pss_mib": round(peak_pss / 1024, 1),
            **stats,
        }
    return out


def child(clips_file: str, cache: str, n_jobs: str) -> None:
    """Child-process mode for the RSS measurement: build and print stats as JSON."""
    clips = pd.read_parquet(clips_file)
    seconds, stats = run_build(clips, Path(cache), int(n_jobs))
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "rows": stats["rows"],
                "extracted": stats["extracted"],
                "hits": stats["cache_hits"],
                "hashed": stats.get("hashed", 0),
            }
        )
    )


def cold_command(clips: pd.DataFrame, workdir: Path, tree: Path, extractors: list[str]) -> dict:
    """Wall time of a cold ``audioml features`` (new process, empty cache) on ``tree``."""
    root = workdir / "cold-data"
    if not root.exists():
        for path, label in zip(clips["path"], clips["label"], strict=True):
            (root / f"g{label}").mkdir(parents=True, exist_ok=True)
            os.link(path, root / f"g{label}" / Path(path).name)
    cache = workdir / f"cold-cache-{len(list(workdir.glob('cold-cache-*')))}"
    spec = workdir / "cold.yaml"
    feats = {**GENRE, "extractors": extractors, "n_jobs": 1, "cache_dir": str(cache)}
    if extractors == OLD_GENRE:  # the older code knows neither beat_level nor var
        feats.pop("beat_level", None)
    spec.write_text(yaml.safe_dump({"name": "cold", "data": {"source": "folder",
        "root": str(root)}, "features": feats, "search": {"models": ["logistic"]}}))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "runner", "features", str(spec), "-q"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
    wall = time.perf_counter() - start
    engine = float(proc.stdout.split("seconds=")[1].split()[0])
    return {"tree": str(tree), "extractors": len(extractors), "wall_s": wall, "engine_s": engine}


def per_extractor(clips: pd.DataFrame, n: int) -> dict:
    """ms per minute of audio: the shared base (STFT, mel) and each extractor's own work."""
    ensure_loaded()
    names = [*dict.fromkeys([*EXTRACTORS, "mel", "pitch", "onset", "hnr"])]
    cost = dict.fromkeys(["base", *names, "beat_level"], 0.0)
    minutes = 0.0
    for path in clips["path"][:n]:
        y, _ = librosa.load(path, sr=SR)
        minutes += len(y) / SR / 60
        for name in names:
            ctx = SpectralContext.from_spec(y, SR, FEATURES)
            start = time.perf_counter()
            ctx.mel_db  # noqa: B018 - the shared base every spectral extractor reads
            cost["base"] += (time.perf_counter() - start) / len(names)
            start = time.perf_counter()
            EXTRACTOR_FNS[name](ctx)
            cost[name] += time.perf_counter() - start
    from features import extract_signal

    off = FEATURES.model_copy(update={"beat_level": False})
    for path in clips["path"][:n]:
        y, _ = librosa.load(path, sr=SR)
        t_on, _ = timed(extract_signal, y, SR, FEATURES, SegmentsSpec())
        t_off, _ = timed(extract_signal, y, SR, off, SegmentsSpec())
        cost["beat_level"] += t_on - t_off
    return {k: 1000 * v / minutes for k, v in cost.items()}


def bench_speed(args: argparse.Namespace, workdir: Path) -> dict:
    clips = synthesize(workdir / "audio", args.clips, args.seconds)
    audio_s = args.clips * args.seconds
    results: dict = {"audio_s": audio_s}
    # Cold commands first, while the OS file cache is as warm for every tree.
    results["cold"] = [cold_command(clips, workdir, REPO, EXTRACTORS)]
    if args.before_tree:
        chosen = EXTRACTORS if args.before_set == "genre" else OLD_GENRE
        for tree in (Path(args.before_tree), REPO):
            results["cold"].append(cold_command(clips, workdir, tree, chosen))
    naive_clips = clips["path"][: args.naive_clips or len(clips)]
    naive_audio = len(naive_clips) * args.seconds
    naive_notebook(clips["path"][0])  # warm-up: numba compilation, filter caches
    build_table(
        clips.iloc[:1], FEATURES, SegmentsSpec(), cache_dir=workdir / "warmup", progress=False
    )
    results["naive_clips"] = len(naive_clips)
    for key, fn in (("naive_a", naive_notebook), ("naive_b", naive_same)):
        t, cpu, _ = timed_cpu(lambda fn=fn: [fn(p) for p in naive_clips])
        results[f"{key}_s"], results[f"{key}_cpu_s"] = t, cpu
        results[f"{key}_rate"], results[f"{key}_cpu_rate"] = naive_audio / t, naive_audio / cpu
    for jobs in (1, 2):
        t, stats = run_build(clips, workdir / f"cache{jobs}", jobs)
        results[f"ours{jobs}_s"], results[f"ours{jobs}_cpu_s"] = t, stats["cpu_s"]
        results[f"ours{jobs}_rate_per_core"] = audio_s / t / jobs
        results[f"ours{jobs}_cpu_rate"] = audio_s / stats["cpu_s"]
        results[f"ours{jobs}_extracted"] = stats["extracted"]
    for i in (1, 2):
        t, stats = run_build(clips, workdir / "cache1", 1)
        results[f"warm{i}_s"], results[f"warm{i}_hits"] = t, stats["cache_hits"]
    results["per_extractor"] = per_extractor(clips, args.cost_clips)
    return results


def report(args: argparse.Namespace, speed: dict, rss: list[dict], total_s: float) -> str:
    r = speed
    ratios = {
        key: (
            r["ours1_cpu_rate"] / r[f"{key}_cpu_rate"],
            r["ours1_rate_per_core"] / r[f"{key}_rate"],
        )
        for key in ("naive_a", "naive_b")
    }
    lines = [
        "# Feature engine benchmark",
        "",
        f"Command: `python benchmarks/bench_features.py {' '.join(args.argv)}`",
        "",
        f"Machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, librosa {librosa.__version__}, numpy {np.__version__}; "
        f"1-min load average {args.load:.2f} at start, {os.getloadavg()[0]:.2f} at the end. "
        "A load average well above 1 means other jobs shared the machine and wall-clock "
        "figures are noisy; CPU-time figures count only what our processes used, and every "
        "ratio compares figures of this one run.",
        f"Feature set (experiments/genre.yaml): {', '.join(EXTRACTORS)}; stats "
        f"{', '.join(FEATURES.stats)}; beat_level {FEATURES.beat_level}; 22.05 kHz, n_fft "
        f"2048, hop 512, 128 mels. Whole clips. Total benchmark time {total_s:.0f} s.",
        "",
        f"## Throughput ({args.clips} clips x {args.seconds:g} s = {r['audio_s']:.0f} s of "
        "audio, cold cache)",
        "",
        "| pipeline | workers | wall s | CPU s | audio s / wall s / core | audio s / CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in (
        ("naive_a", "(a) notebook way"),
        ("naive_b", "(b) same definitions, naive"),
    ):
        lines.append(
            f"| {label} ({r['naive_clips']} clips) | 1 | {r[f'{key}_s']:.1f} | "
            f"{r[f'{key}_cpu_s']:.1f} | {r[f'{key}_rate']:.1f} | {r[f'{key}_cpu_rate']:.1f} |"
        )
    for jobs in (1, 2):
        lines.append(
            f"| build_table | {jobs} | {r[f'ours{jobs}_s']:.1f} | {r[f'ours{jobs}_cpu_s']:.1f} | "
            f"{r[f'ours{jobs}_rate_per_core']:.1f} | {r[f'ours{jobs}_cpu_rate']:.1f} |"
        )
    lines += [
        "",
        f"Speed-up per core, build_table (1 worker) vs (a): **{ratios['naive_a'][0]:.1f}x** by "
        f"CPU time, {ratios['naive_a'][1]:.1f}x by wall clock (target 20x); vs (b): "
        f"**{ratios['naive_b'][0]:.1f}x** by CPU time, {ratios['naive_b'][1]:.1f}x by wall "
        f"clock (target 8x). 2 workers vs 1: {r['ours1_s'] / r['ours2_s']:.2f}x wall clock.",
        "",
        "## Cold `audioml features` (new process, empty cache, 1 worker, imports included)",
        "",
        "| code | extractors | command wall s | engine s (`seconds=`) | outside the engine s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in r["cold"]:
        label = "this tree" if c["tree"] == str(REPO) else f"`{c['tree']}`"
        lines.append(
            f"| {label} | {c['extractors']} | {c['wall_s']:.1f} | {c['engine_s']:.1f} | "
            f"{c['wall_s'] - c['engine_s']:.1f} |"
        )
    lines += [
        "",
        "## Cost per extractor (ms per minute of audio, 1 process)",
        "",
        "`base` is the shared STFT, power and mel spectrogram every spectral extractor reads "
        "(paid once per segment whatever the set); each extractor's figure is its own work "
        "on top of it. `beat_level` is the extra cost of the beat-level statistics for the "
        "whole set (beat tracking and per-beat summaries).",
        "",
        "| extractor | ms per clip-minute |",
        "| --- | ---: |",
    ]
    for name, ms in sorted(r["per_extractor"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ms:.1f} |")
    lines += [
        "",
        "## Warm cache (same clips, nothing changed)",
        "",
        f"* first warm rerun: {r['warm1_s']:.2f} s ({r['warm1_hits']} hits; files written "
        "less than 2 s before they were hashed are hashed again, see features/stat_index.py)",
        f"* second warm rerun: {r['warm2_s']:.2f} s ({r['warm2_hits']} hits, stat-only)",
        "",
        f"## Peak RSS of the process tree ({args.rss_seconds:g} s clips, {args.rss_jobs} workers)",
        "",
        "| clips | phase | peak RSS MiB (sum) | peak PSS MiB (sum) | build s | extracted "
        "| hashed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rss:
        for phase in PHASES:
            q = m[phase]
            lines.append(
                f"| {m['clips']} | {phase} | {q['peak_rss_mib']} | {q['peak_pss_mib']} "
                f"| {q['seconds']} | {q['extracted']} | {q['hashed']} |"
            )
    lines += [
        "",
        "build s is measured inside the child (imports excluded): the warm row is the "
        "engine's warm-cache time for that many clips (warm again: nothing re-hashed). "
        "RSS sums every process of the tree, "
        "so pages shared by the forked workers count once per process; PSS counts them once.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--naive-clips", type=int, default=0, help="baseline subset (0: all)")
    parser.add_argument("--cost-clips", type=int, default=5, help="clips for per-extractor cost")
    parser.add_argument("--before-tree", help="another checkout to time the cold command on")
    parser.add_argument(
        "--before-set", choices=("old", "genre"), default="old",
        help="extractors for --before-tree: the set older trees know, or the genre set",
    )  # fmt: skip
    parser.add_argument("--rss-clips", type=int, nargs="*", default=[1000])
    parser.add_argument("--rss-seconds", type=float, default=1.0)
    parser.add_argument("--rss-jobs", type=int, default=2)
    default_out = Path(__file__).with_name("RESULTS_features.md")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    args.argv = sys.argv[1:] if argv is None else argv
    args.load = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        workdir = Path(tmp)
        speed = bench_speed(args, workdir)
        print(json.dumps(speed, indent=1), flush=True)
        rss = [measure_rss(n, args.rss_seconds, workdir, args.rss_jobs) for n in args.rss_clips]
        print(json.dumps(rss, indent=1), flush=True)
    text = report(args, speed, rss, time.perf_counter() - started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
