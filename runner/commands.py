"""What each ``audioml`` subcommand does (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from runner.errors import DataError, RunnerError
from runner.loading import load_spec, resolve_spec

if TYPE_CHECKING:
    from runner.pipeline import RunOptions

__all__ = ["demo", "features", "finalize", "run", "validate", "worker"]

REPO = Path(__file__).resolve().parent.parent


def validate(args: argparse.Namespace, console: Console) -> int:
    """Validate every spec; report all of them, exit 2 if any is invalid."""
    failed = 0
    for path in args.specs:
        try:
            spec = load_spec(path, args.overrides)
            root = spec.data_root()
            if not root.exists():
                if args.check_data:
                    raise DataError(f"{path}: data.root: folder '{root}' does not exist")
                console.print(f"[green]ok[/] {path}  (data.root {root} not present here)")
                continue
            console.print(f"[green]ok[/] {path}")
        except RunnerError as exc:
            failed += 1
            console.print(f"[red]invalid[/] {exc}", soft_wrap=True)
    return 2 if failed else 0


def features(args: argparse.Namespace, console: Console) -> int:
    """Build or load the feature table and print its summary."""
    from runner.dataset import prepare_dataset

    spec = load_spec(args.spec, args.overrides)
    ds = prepare_dataset(spec, progress=not args.quiet)
    stats = {"rows": len(ds.frame), "columns": len(ds.feature_columns), **ds.stats}
    stats["skipped"] = len(ds.skipped)
    console.print("  ".join(f"{k}={v}" for k, v in stats.items() if k != "seconds"))
    if ds.report:
        console.print("source: " + "  ".join(f"{k}={v}" for k, v in ds.report.items()))
    if "seconds" in ds.stats:
        console.print(f"seconds={ds.stats['seconds']:.2f}")
    for row in ds.skipped.head(20).itertuples(index=False):
        console.print(f"  skipped {row.path}: {row.reason}", soft_wrap=True)
    if len(ds.skipped) > 20:
        console.print(f"  ... and {len(ds.skipped) - 20} more skipped clips")
    return 0


def run(args: argparse.Namespace, console: Console) -> int:
    """The whole job for one spec."""
    from runner.pipeline import RunOptions
    from runner.session import run_experiment

    spec = load_spec(args.spec, args.overrides)
    opts = RunOptions(
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        spec_path=args.spec,
        spec_text=args.spec.read_text(encoding="utf-8"),
        resolved=resolve_spec(args.spec, args.overrides),
        progress=not args.quiet,
        console=console,
    )
    summary = run_experiment(spec, opts)
    return 130 if summary.get("interrupted") else 0


def _join_options(args: argparse.Namespace, console: Console) -> RunOptions:
    from runner.pipeline import RunOptions

    return RunOptions(
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        spec_path=args.spec,
        progress=not args.quiet,
        console=console,
    )


def worker(args: argparse.Namespace, console: Console) -> int:
    """Join the spec's study (started by ``audioml run``) and run trials until the budget."""
    from runner.worker import run_worker

    spec = load_spec(args.spec, args.overrides)
    summary = run_worker(spec, _join_options(args, console), wait_s=args.wait_s)
    return 0 if summary["ok"] else 130


def finalize(args: argparse.Namespace, console: Console) -> int:
    """Refit, test and register the spec's study once (no-op when already finalized)."""
    from runner.worker import finalize_study

    spec = load_spec(args.spec, args.overrides)
    finalize_study(spec, _join_options(args, console), force=args.force)
    return 0


def demo(args: argparse.Namespace, console: Console) -> int:
    """Synthesize the demo corpus into ``--out`` and run experiments/demo.yaml on it."""
    from runner.demo_data import synthesize_corpus

    out = args.out.resolve()
    console.print(f"synthesizing the demo corpus into {out}")
    synthesize_corpus(out)
    args.spec = REPO / "experiments" / "demo.yaml"
    args.overrides = [f"data.root={out}", *args.overrides]
    return run(args, console)
