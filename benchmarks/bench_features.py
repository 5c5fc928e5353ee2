"""Benchmark the feature engine against a naive per-feature librosa baseline.

Usage::

    python benchmarks/bench_features.py --clips 100 --seconds 30

Measures, in one run on synthesized clips (harmonic tones with vibrato, noise and clicks):

* the naive baseline: each librosa feature function called separately on the raw signal,
  as notebooks do (``mfcc(y=...)``, ``chroma_stft(y=...)``, ``spectral_*(y=...)``, zcr, rms,
  HNR from its own ``librosa.effects.hpss``, ``librosa.beat.beat_track(y=...)``);
* ``features.build_table`` with the same extractors (one STFT per segment, shared), cold
  cache, 1 and 2 worker processes; then warm-cache reruns;
* peak RSS of the whole process tree for ``--rss-clips`` short clips (default 200 and 2000),
  each in a fresh child process, sampled from /proc every 20 ms.

Throughput is seconds of audio per second of wall time per core. Results are printed and
written as Markdown to ``--out``.
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

from features import ALL_EXTRACTORS, FeaturesSpec, SegmentsSpec, build_table

SR = 22050
EXTRACTORS = list(ALL_EXTRACTORS)
FEATURES = FeaturesSpec(extractors=EXTRACTORS, stats=["mean", "std"], mfcc={"n_mfcc": 20})


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


def naive_clip(path: str) -> np.ndarray:
    """Every feature from its own librosa call on the raw signal, then mean and std."""
    y, sr = librosa.load(path, sr=SR)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    harmonic, percussive = librosa.effects.hpss(y)
    h_rms = librosa.feature.rms(y=harmonic)[0]
    p_rms = librosa.feature.rms(y=percussive)[0]
    frames = [
        mfcc,
        librosa.feature.delta(mfcc),
        librosa.feature.zero_crossing_rate(y),
        librosa.feature.spectral_contrast(y=y, sr=sr),
        librosa.feature.chroma_stft(y=y, sr=sr),
        librosa.feature.rms(y=y),
        librosa.feature.spectral_rolloff(y=y, sr=sr),
        librosa.feature.spectral_bandwidth(y=y, sr=sr),
        librosa.feature.spectral_centroid(y=y, sr=sr),
        librosa.feature.spectral_flatness(y=y),
        (20 * np.log10((h_rms + 1e-10) / (p_rms + 1e-10)))[np.newaxis],
    ]
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    stats = [np.r_[f.mean(axis=1), f.std(axis=1)] for f in frames]
    return np.concatenate([*stats, np.atleast_1d(tempo)])


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


def measure_rss(n: int, seconds: float, workdir: Path, n_jobs: int) -> dict:
    """Cold then warm build of ``n`` short clips in a child process; peak tree memory."""
    clips = synthesize(workdir / f"rss{n}", n, seconds, seed=n)
    clips_file = workdir / f"rss{n}.parquet"
    clips.to_parquet(clips_file)
    out: dict = {"clips": n}
    for phase in ("cold", "warm"):
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
            }
        )
    )


def bench_speed(args: argparse.Namespace, workdir: Path) -> dict:
    clips = synthesize(workdir / "audio", args.clips, args.seconds)
    audio_s = args.clips * args.seconds
    naive_clips = clips["path"][: args.naive_clips or len(clips)]
    naive_clip(clips["path"][0])  # warm-up: numba compilation, filter caches
    build_table(
        clips.iloc[:1], FEATURES, SegmentsSpec(), cache_dir=workdir / "warmup", progress=False
    )
    t_naive, cpu_naive, _ = timed_cpu(lambda: [naive_clip(p) for p in naive_clips])
    naive_audio = len(naive_clips) * args.seconds
    results = {
        "audio_s": audio_s,
        "naive_clips": len(naive_clips),
        "naive_s": t_naive,
        "naive_cpu_s": cpu_naive,
        "naive_rate": naive_audio / t_naive,
        "naive_cpu_rate": naive_audio / cpu_naive,
    }
    for jobs in (1, 2):
        t, stats = run_build(clips, workdir / f"cache{jobs}", jobs)
        results[f"ours{jobs}_s"], results[f"ours{jobs}_cpu_s"] = t, stats["cpu_s"]
        results[f"ours{jobs}_rate_per_core"] = audio_s / t / jobs
        results[f"ours{jobs}_cpu_rate"] = audio_s / stats["cpu_s"]
        results[f"ours{jobs}_extracted"] = stats["extracted"]
    for i in (1, 2):
        t, stats = run_build(clips, workdir / "cache1", 1)
        results[f"warm{i}_s"], results[f"warm{i}_hits"] = t, stats["cache_hits"]
    return results


def report(args: argparse.Namespace, speed: dict, rss: list[dict], total_s: float) -> str:
    r = speed
    ratio = r["ours1_rate_per_core"] / r["naive_rate"]
    cpu_ratio = r["ours1_cpu_rate"] / r["naive_cpu_rate"]
    lines = [
        "# Feature engine benchmark",
        "",
        f"Command: `python benchmarks/bench_features.py {' '.join(args.argv)}`",
        "",
        f"Machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, librosa {librosa.__version__}, numpy {np.__version__}; "
        f"1-min load average {args.load:.2f} at start, {os.getloadavg()[0]:.2f} at the end "
        "(the machine is shared with other jobs, so wall-clock figures are noisy; CPU-time "
        "figures count only what our processes used).",
        f"Feature set: {', '.join(EXTRACTORS)}; stats mean, std; 22.05 kHz, n_fft 2048, "
        "hop 512, 128 mels. Whole clips. Total benchmark time "
        f"{total_s:.0f} s.",
        "",
        f"## Throughput ({args.clips} clips x {args.seconds:g} s = {r['audio_s']:.0f} s of "
        "audio, cold cache)",
        "",
        "| pipeline | workers | wall s | CPU s | audio s / wall s / core | audio s / CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| naive librosa calls ({r['naive_clips']} clips) | 1 | {r['naive_s']:.1f} | "
        f"{r['naive_cpu_s']:.1f} | {r['naive_rate']:.1f} | {r['naive_cpu_rate']:.1f} |",
        f"| build_table | 1 | {r['ours1_s']:.1f} | {r['ours1_cpu_s']:.1f} | "
        f"{r['ours1_rate_per_core']:.1f} | {r['ours1_cpu_rate']:.1f} |",
        f"| build_table | 2 | {r['ours2_s']:.1f} | {r['ours2_cpu_s']:.1f} | "
        f"{r['ours2_rate_per_core']:.1f} | {r['ours2_cpu_rate']:.1f} |",
        "",
        f"Speed-up per core, build_table (1 worker) vs naive: **{cpu_ratio:.1f}x** by CPU "
        f"time, {ratio:.1f}x by wall-clock. 2 workers vs 1: "
        f"{r['ours1_s'] / r['ours2_s']:.2f}x wall-clock.",
        "",
        "## Warm cache (same clips, nothing changed)",
        "",
        f"* first warm rerun: {r['warm1_s']:.2f} s ({r['warm1_hits']} hits; files written "
        "less than 2 s before they were hashed are hashed again, see features/stat_index.py)",
        f"* second warm rerun: {r['warm2_s']:.2f} s ({r['warm2_hits']} hits, stat-only)",
        "",
        f"## Peak RSS of the process tree ({args.rss_seconds:g} s clips, {args.rss_jobs} workers)",
        "",
        "| clips | phase | peak RSS MiB (sum) | peak PSS MiB (sum) | build s | extracted |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in rss:
        for phase in ("cold", "warm"):
            p = m[phase]
            lines.append(
                f"| {m['clips']} | {phase} | {p['peak_rss_mib']} | {p['peak_pss_mib']} "
                f"| {p['seconds']} | {p['extracted']} |"
            )
    lines += [
        "",
        "build s is measured inside the child (imports excluded); RSS sums every "
        "process of the tree, so pages shared by the forked workers count once per "
        "process; PSS counts them once overall.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--naive-clips", type=int, default=0, help="baseline subset (0: all)")
    parser.add_argument("--rss-clips", type=int, nargs="*", default=[200, 2000])
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
