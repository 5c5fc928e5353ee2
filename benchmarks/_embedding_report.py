"""The embedding benchmark's Markdown report (``benchmarks/bench_embedding.py``)."""

from __future__ import annotations

import argparse
import os
import platform

__all__ = ["render"]


def _ways(args: argparse.Namespace) -> dict[str, str]:
    return {
        "decode": "decoding alone (`librosa.load` at 16 kHz)",
        "naive": "naive loop: `librosa.load`, onnxruntime's default session, one window per run",
        "naive_1": "the same naive loop, session on 1 intra-op thread",
        "engine_1": "`build_table`, `batch_size: 1`, 1 process",
        "batched_1": f"`build_table`, `batch_size: {args.batch}` (windows of many clips), "
        "1 process",
        "batched_n": f"the same, {args.jobs} processes",
    }


def _header(figures: dict[str, dict], first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(figures) + " |", "|---" * (len(figures) + 1) + "|"]


def _end_to_end(args: argparse.Namespace, figures: dict[str, dict]) -> list[str]:
    n = args.clips
    lines = [
        f"## End to end: {n} WAV clips of {args.seconds:g} s at 22.05 kHz",
        "",
        "Clips per second (wall clock):",
        "",
        *_header(figures, "way"),
    ]
    for key, way in _ways(args).items():
        cells = " | ".join(f"{n / f[key].wall:.1f}" for f in figures.values())
        lines.append(f"| {way} | {cells} |")
    lines += ["", "CPU ms per clip (this process and its extraction workers):", ""]
    lines += _header(figures, "way")
    for key, way in _ways(args).items():
        cells = " | ".join(f"{1000 * f[key].cpu / n:.1f}" for f in figures.values())
        lines.append(f"| {way} | {cells} |")
    lines += ["", "Speed-up of the faster batched `build_table` (wall clock; CPU time):", ""]
    lines += _header(figures, "against")
    for key in ("naive", "naive_1", "engine_1"):
        cells = []
        for f in figures.values():
            top = min(f["batched_1"].wall, f["batched_n"].wall)
            cpu = min(f["batched_1"].cpu, f["batched_n"].cpu)
            cells.append(f"{f[key].wall / top:.2f}x; {f[key].cpu / cpu:.2f}x")
        lines.append(f"| {_ways(args)[key]} | " + " | ".join(cells) + " |")
    ceiling = " | ".join(f"{f['naive'].wall / f['decode'].wall:.2f}x" for f in figures.values())
    lines.append(f"| ceiling of one process: naive loop over decoding alone | {ceiling} |")
    return lines


def render(
    args: argparse.Namespace,
    figures: dict[str, dict],
    costs: dict[str, float],
    ort_version: str,
    elapsed: float,
) -> str:
    """The Markdown report of one run."""
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Embedding extractor benchmark",
        "",
        f"Command: `python benchmarks/bench_embedding.py --clips {args.clips} --seconds "
        f"{args.seconds:g} --batch {args.batch} --repeats {args.repeats} --jobs {args.jobs}` "
        f"({elapsed:.0f} s)",
        "",
        f"Machine: {platform.platform()}, {cores} cores, Python {platform.python_version()}, "
        f"onnxruntime {ort_version}; load average at the end "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}. Each time is the best of "
        f"{args.repeats}.",
        "",
        f"## The model alone: windows per CPU second (one intra-op thread, {args.batch} "
        "windows of many clips per batched run)",
        "",
        "| scenario | windows per clip | one window per run | batched | speed-up |",
        "|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['per_clip']} | {f['one']:.0f} | {f['many']:.0f} "
            f"| {f['many'] / f['one']:.2f}x |"
        )
    lines += ["", *_end_to_end(args, figures)]
    lines += [
        "",
        "## CPU ms per minute of audio, each extractor alone (8 clips, 16 kHz, conv model)",
        "",
        "| extractor | ms per clip-minute |",
        "|---|---|",
        *(f"| {name} | {ms:.0f} |" for name, ms in costs.items()),
        "",
    ]
    return "\n".join(lines)
