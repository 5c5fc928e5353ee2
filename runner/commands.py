"""What each ``audioml`` subcommand does (argument parsing lives in cli.py).

Every command first does what needs no heavy library: resolve the SPEC argument (a file or a
shipped spec's name), load and validate the spec, check that its data paths exist. Only then
are the pipeline's modules imported (MLflow, Optuna, scikit-learn, pandas, librosa take
seconds), so a refusal comes back in well under a second (tests/runner/test_startup.py).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rich.console import Console
from rich.markup import escape

from runner.config.loading import load_spec, resolve_spec
from runner.config.source_registry import get_source
from runner.errors import REPORTED, DataError, format_error
from runner.resources import shipped, shipped_specs, spec_file

if TYPE_CHECKING:
    from runner.config.spec import ExperimentSpec
    from runner.session.pipeline import RunOptions

__all__ = [
    "check_paths",
    "demo",
    "experiments",
    "features",
    "finalize",
    "predict",
    "run",
    "validate",
    "worker",
]

#: A full stop that ends a sentence (not the one of "e.g." or "i.e.").
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.(\s|$)")


def check_paths(spec: ExperimentSpec, *, source: Path) -> None:
    """Raise :class:`DataError` when ``data.root`` or the file ``data.manifest`` names is
    missing; the message names the spec file and how to point it at the data.

    Args:
        spec: the loaded spec.
        source: the spec file, named in the message.
    """
    # The same paths, resolved the same way, as runner.data.sources reads (without pandas).
    root = Path(os.path.normpath(spec.data_root().absolute()))
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        hint = _data_hint(spec)
        raise DataError(format_error("data.root", root, problem=what, hint=hint, file=source))
    if get_source(spec.data.source).needs_manifest and spec.data.manifest:
        path = root / Path(spec.data.manifest).expanduser()
        if not path.is_file():
            near = sorted(p.name for p in root.iterdir() if p.is_file())
            near = [n for n in near if not n.startswith(".")][:10]
            held = f"files in data.root: {', '.join(near)}" if near else "data.root holds no files"
            problem = "is not a file"
            raise DataError(
                format_error("data.manifest", path, problem=problem, hint=held, file=source)
            )


def _data_hint(spec: ExperimentSpec) -> str:
    demo = yaml.safe_load(shipped("experiments", "demo.yaml").read_text(encoding="utf-8"))
    if Path(spec.data.root) == Path(demo["data"]["root"]):
        # The demo spec's own root: the corpus is made, not downloaded.
        return (
            "`audioml demo` synthesizes the demo corpus into ./demo-data and runs the demo "
            "spec on it (or point data.root elsewhere with --set data.root=DIR)"
        )
    return "point data.root at your copy of the data with --set data.root=DIR"


def _load(args: argparse.Namespace) -> ExperimentSpec:
    """The spec of ``args.spec`` (a file or a shipped name, resolved in place), validated,
    with its data paths checked; then the libraries' chatter is quieted for the real work."""
    args.spec = spec_file(args.spec)
    spec = load_spec(args.spec, args.overrides)
    check_paths(spec, source=args.spec)
    _quiet_optuna()
    return spec


def _quiet_optuna() -> None:
    # Our own lines report each trial. Optuna resets its logger's level when it is first
    # imported, so this waits until the checks passed and the work needs Optuna anyway.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def experiments(args: argparse.Namespace, console: Console) -> int:
    """List the shipped specs: name, task, and the first sentence of the spec's comment."""
    specs = shipped_specs()
    width = max(map(len, specs), default=0)
    for name, path in specs.items():
        text = path.read_text(encoding="utf-8")
        task = (yaml.safe_load(text) or {}).get("task", "classification")
        console.print(f"{name:<{width}}  {task:<14}  {escape(summary(text))}", soft_wrap=True)
    console.print("name one in place of a spec file, e.g. `audioml validate demo`")
    return 0


def summary(text: str, limit: int = 80) -> str:
    """The first sentence of a spec's leading comment, cut at a phrase break to ``limit``."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.strip("# "):
            break  # the header comment's first paragraph only
        lines.append(line.lstrip("#").strip())
    words = " ".join(lines)
    end = _SENTENCE_END.search(words)
    words = words[: end.start() if end else len(words)].rstrip(".:,")
    if len(words) <= limit:
        return words
    cut = max(words.rfind(sep, 0, limit) for sep in (": ", ", ", " (", "; "))
    return words[:cut] if cut > 0 else words[: limit - 3].rsplit(" ", 1)[0] + "..."


def validate(args: argparse.Namespace, console: Console) -> int:
    """Validate every spec; report all of them, exit 2 if any is invalid."""
    failed = 0
    for path in args.specs:
        try:
            path = spec_file(path)
            spec = load_spec(path, args.overrides)
            root = spec.data_root()
            if args.check_data:
                check_paths(spec, source=path)
            elif not root.exists():
                console.print(f"[green]ok[/] {path}  (data.root {root} not present here)")
                continue
            notes = _check_data(spec) if args.check_data else []
            console.print(f"[green]ok[/] {path}")
            for note in notes:
                console.print(f"  note: {escape(note)}", soft_wrap=True)
        except REPORTED as exc:
            failed += 1
            message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
            console.print(f"[red]invalid[/] {escape(message)}", soft_wrap=True)
    return 2 if failed else 0


def _check_data(spec: ExperimentSpec) -> list[str]:
    """``validate --check-data``: the source's listing (no audio decoded); notes to show."""
    from runner.data.checks import check_data
    from runner.data.sources import load_source

    return check_data(spec, load_source(spec))


def features(args: argparse.Namespace, console: Console) -> int:
    """Build or load the feature table, print its summary, write it with ``--out``."""
    out = getattr(args, "out", None)
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(format_error("--out", out, must="a .parquet or .csv file"))
    spec = _load(args)
    from runner.data.dataset import prepare_dataset, write_table

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
    spec = _load(args)
    from runner.session.pipeline import RunOptions
    from runner.session.session import run_experiment

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
    from runner.session.pipeline import RunOptions

    return RunOptions(
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        spec_path=args.spec,
        progress=not args.quiet,
        console=console,
    )


def worker(args: argparse.Namespace, console: Console) -> int:
    """Join the spec's study (started by ``audioml run``) and run trials until the budget."""
    spec = _load(args)
    from runner.session.worker import run_worker

    summary = run_worker(spec, _join_options(args, console), wait_s=args.wait_s)
    return 0 if summary["ok"] else 130


def finalize(args: argparse.Namespace, console: Console) -> int:
    """Refit, test and register the spec's study once (no-op when already finalized)."""
    spec = _load(args)
    from runner.session.worker import finalize_study

    finalize_study(spec, _join_options(args, console), force=args.force)
    return 0


def demo(args: argparse.Namespace, console: Console) -> int:
    """Synthesize the demo corpus into ``--out`` and run experiments/demo.yaml on it."""
    from runner.data.demo_data import synthesize_corpus

    out = args.out.resolve()
    console.print(f"synthesizing the demo corpus into {out}")
    synthesize_corpus(out)
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
        executor=args.executor or "local",
        scheduler=args.scheduler,
        path_column=args.path_column,
        progress=not args.quiet,
    )
    run_predict(args.model, args.data, opts, console)
    return 0
