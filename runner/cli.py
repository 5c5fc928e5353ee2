"""The ``audioml`` command line: validate, features, run, demo, predict, experiments, schema
(and worker, finalize)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from runner.errors import REPORTED

__all__ = ["main"]

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
SPEC_HELP = "a spec file, or the name of a shipped spec (`audioml experiments` lists them)"


def _common(p: argparse.ArgumentParser, *, stores: bool = True) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key (dotted, YAML-typed), e.g. search.n_trials=5",
    )
    if stores:
        p.add_argument(
            "--tracking-uri",
            default=None,
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)",
        )
        p.add_argument(
            "--storage",
            default=None,
            help="Optuna storage URL (default: optuna.db beside the MLflow store)",
        )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _executor_options(p)


def _executor_options(p: argparse.ArgumentParser) -> None:
    """``--executor``/``--scheduler``: shorthands of --set features.executor/scheduler."""
    p.add_argument(
        "--executor",
        choices=["local", "dask"],
        help="where clips are extracted: local processes or a Dask cluster "
        "(= --set features.executor=...)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler (tcp://HOST:8786 or a scheduler JSON file; default "
        "$DASK_SCHEDULER_ADDRESS)",
    )


def _executor_overrides(args: argparse.Namespace) -> None:
    """Fold --executor and --scheduler into the --set overrides (after them: they win)."""
    if getattr(args, "overrides", None) is None or args.command == "predict":
        return  # predict's --set names a spec's model; its executor is an option of its own
    if getattr(args, "executor", None):
        args.overrides.append(f"features.executor={args.executor}")
    if getattr(args, "scheduler", None):
        args.overrides.append(f"features.scheduler={args.scheduler}")


def _scale_out_parsers(sub: argparse._SubParsersAction) -> None:
    """``worker`` and ``finalize``: more processes on one study (docs/scale-out.md)."""
    p = sub.add_parser("worker", help="join the spec's study as one more worker (scale-out)")
    p.add_argument("spec", type=Path, help=SPEC_HELP)
    p.add_argument(
        "--wait-s",
        type=float,
        default=600.0,
        help="how long to wait for `audioml run` to start the study (default 600)",
    )
    _common(p)
    p = sub.add_parser("finalize", help="refit, test and register once, if the run process died")
    p.add_argument("spec", type=Path, help=SPEC_HELP)
    p.add_argument(
        "--force",
        action="store_true",
        help="take over a finalization claimed by a process that is gone",
    )
    _common(p)


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    """``predict``: a registered model over a folder, manifest or labels JSON (docs/predict.md)."""
    p = sub.add_parser("predict", help="apply a model to a folder, manifest or labels JSON")
    p.add_argument("model", help="models:/name@alias, models:/name/3, runs:/..., or a spec file")
    p.add_argument("data", type=Path, help="a folder of audio, a CSV/TSV manifest or a JSON")
    p.add_argument("--out", type=Path, required=True, help="the predictions CSV")
    p.add_argument("--uncertain", type=int, metavar="N", help="write the N least certain clips")
    p.add_argument("--labels-out", type=Path, help="where --uncertain writes its labels JSON")
    p.add_argument(
        "--uncertain-by",
        default="confidence",
        # Checked by PredictOptions, so a wrong value reads like every other bad input.
        metavar="{confidence,margin,entropy}",
        help="how --uncertain ranks clips (default confidence: lowest first)",
    )
    p.add_argument("--log", action="store_true", help="record the predictions as an MLflow run")
    p.add_argument("--experiment", help="MLflow experiment of --log (default <model>-predictions)")
    p.add_argument("--path-column", default="path", help="a manifest's path column (default path)")
    p.add_argument("--cache-dir", type=Path, help="feature cache (default: the model's)")
    p.add_argument("--n-jobs", type=int, help="extraction processes (default: the model's)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)",
    )
    _common(p, stores=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioml",
        description="MLflow-tracked AutoML for audio: spec in, registered model out.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate specs (and, with --check-data, their data)")
    p.add_argument("specs", nargs="+", type=Path, help=SPEC_HELP)
    p.add_argument(
        "--check-data",
        action="store_true",
        help="also fail when the data a spec names does not exist",
    )
    _common(p, stores=False)
    p = sub.add_parser("features", help="build or load the feature table; print its summary")
    p.add_argument("spec", type=Path, help=SPEC_HELP)
    p.add_argument(
        "--out",
        type=Path,
        help="also write the table (ids, label, group, features) to FILE.parquet or FILE.csv",
    )
    _common(p, stores=False)
    p = sub.add_parser("run", help="features, search, tracking, refit, test, registry")
    p.add_argument("spec", type=Path, help=SPEC_HELP)
    _common(p)
    _scale_out_parsers(sub)
    _predict_parser(sub)
    p = sub.add_parser("demo", help="synthesize the demo corpus and run experiments/demo.yaml")
    p.add_argument("--out", type=Path, default=Path("demo-data"), help="corpus folder")
    _common(p)
    p = sub.add_parser("schema", help="print the spec's JSON Schema")
    sub.add_parser("experiments", help="list the shipped specs (name them in place of a file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 invalid spec or input, 1 anything else)."""
    args = build_parser().parse_args(argv)
    _executor_overrides(args)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    _quiet_libraries()
    try:
        return _dispatch(args)
    except REPORTED as exc:
        # Messages hold ranges like [low, high] and extras like audioml[voice], not markup.
        err_console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def _quiet_libraries() -> None:
    """Our own lines report each trial; the libraries' INFO chatter would bury them.

    Nothing is imported here, so a refusal stays fast; Optuna, which resets its own logger
    on import, is quieted by the commands that use it (runner.commands).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # MLflow warns that a python_model object is cloudpickled; ours is a plain class.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)


def _dispatch(args: argparse.Namespace) -> int:
    from runner import commands

    handler = {
        "validate": commands.validate,
        "features": commands.features,
        "run": commands.run,
        "worker": commands.worker,
        "finalize": commands.finalize,
        "demo": commands.demo,
        "predict": commands.predict,
        "experiments": commands.experiments,
        "schema": lambda _a, _c: _schema(),
    }[args.command]
    return handler(args, console)


def _schema() -> int:
    from runner.config.spec import ExperimentSpec

    console.print_json(json.dumps(ExperimentSpec.model_json_schema()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
