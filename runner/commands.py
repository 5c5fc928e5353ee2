"""What each ``audioml`` subcommand does (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from runner.errors import DataError, RunnerError
from runner.loading import load_spec, resolve_spec

if TYPE_CHECKING:
    from runner.pipeline import RunOptions
    from runner.spec import ExperimentSpec

__all__ = ["demo", "features", "finalize", "predict", "run", "validate", "worker"]


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
            notes = _check_data(spec) if args.check_data else []
            console.print(f"[green]ok[/] {path}")
            for note in notes:
                console.print(f"  note: {escape(note)}", soft_wrap=True)
        except RunnerError as exc:
            failed += 1
            message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
            console.print(f"[red]invalid[/] {escape(message)}", soft_wrap=True)
    return 2 if failed else 0


def _check_data(spec: ExperimentSpec) -> list[str]:
    """``validate --check-data``: the source's listing (no audio decoded); notes to show."""
    from runner.sources import load_source
    from runner.validation import check_data

    return check_data(spec, load_source(spec))


def features(args: argparse.Namespace, console: Console) -> int:
    """Build or load the feature table, print its summary, write it with ``--out``."""
    from runner.dataset import prepare_dataset, write_table

    out = getattr(args, "out", None)
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(f"--out {out}: write a .parquet or .csv file")
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
    if ds.stats.get("cut"):
        console.print(
            f"note: {ds.stats['cut']} clip(s) longer than features.max_duration_s="
            f"{spec.features.max_duration_s:g} s: only their first "
            f"{spec.features.max_duration_s:g} s were read"
        )
    if out is not None:
        write_table(ds, out)
        console.print(f"wrote {len(ds.frame)} rows to {out}")
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
    from runner.resources import shipped

    args.spec = shipped("experiments", "demo.yaml")
    args.overrides = [f"data.root={out}", *args.overrides]
    return run(args, console)


def predict(args: argparse.Namespace, console: Console) -> int:
    """Apply a model to a folder, manifest or labels JSON (docs/predict.md)."""
    from runner.predict import PredictOptions, run_predict

    opts = PredictOptions(
        out=args.out,
        tracking_uri=args.tracking_uri,
        overrides=args.overrides,
        uncertain=args.uncertain,
        labels_out=args.labels_out,
        uncertain_by=args.uncertain_by,
        log=args.log,
        experiment=args.experiment,
        cache_dir=args.cache_dir,
        n_jobs=args.n_jobs,
        path_column=args.path_column,
        progress=not args.quiet,
    )
    run_predict(args.model, args.data, opts, console)
    return 0
