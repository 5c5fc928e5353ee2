"""``audioml predict``: apply a registered model to a folder, manifest or labels JSON.

The clips go through ``features.build_table`` with the model's own ``FeaturesSpec`` and
``SegmentsSpec`` (the worker pool, the progress bar, the content-keyed cache: a second run
over the same files extracts nothing; an interrupted run extracts only what the cache
lacks, since new rows are flushed every ``features.build.FLUSH_EVERY`` clips). Predictions
then go through the served model's ``AudioModel.segment_inputs`` and ``predict_inputs``,
the code path of ``mlflow models serve``, so both give the same answer for the same audio.

Outputs (each written atomically: a reader sees the old file or the complete new one; their
folders are checked writable before any clip is read):

* ``--out``: one row per clip: ``path`` (relative to the DATA root), then ``label`` and
  ``proba_<class>`` per class with ``confidence`` (top probability), ``margin`` (top minus
  second) and ``entropy`` (nats), or ``prediction`` for regression;
* ``<out stem>.skipped.csv``: ``path`` and ``reason`` of every clip that could not be read,
  and of every entry named like audio that is no file to read (broken symlink, symlink
  loop, FIFO, a folder): none of these is opened;
* ``--labels-out`` with ``--uncertain N``: the N least certain clips as a labels JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from runner.errors import DataError, format_error
from runner.predict.inputs import (
    PredictInput,
    check_writable,
    list_inputs,
    write_csv,
    write_json,
)
from runner.predict.model import LoadedModel, load_model, log_predictions, model_uri
from runner.stores.checks import check_cache_dir

__all__ = ["UNCERTAINTY", "PredictOptions", "predict_table", "run_predict", "uncertainty"]

#: Ways to rank clips for ``--uncertain``: column, and whether a high value is uncertain.
UNCERTAINTY: dict[str, bool] = {"confidence": False, "margin": False, "entropy": True}
#: Clips per estimator call (bounds memory for image models over large archives).
BATCH_CLIPS = 2048
_HIST_BINS = 10
_NOT_METADATA = {"audio_base64", "path", "clip_id", "segment", "label", "group"}


@dataclass
class PredictOptions:
    """Everything ``audioml predict`` takes besides MODEL and DATA."""

    out: Path
    tracking_uri: str | None = None
    overrides: list[str] = field(default_factory=list)
    uncertain: int | None = None
    labels_out: Path | None = None
    uncertain_by: str = "confidence"
    log: bool = False
    experiment: str | None = None
    cache_dir: Path | None = None
    n_jobs: int | None = None
    executor: str = "local"  # where the clips are extracted, whatever the model was trained on
    scheduler: str | None = None
    path_column: str = "path"
    progress: bool = True

    def check(self) -> None:
        """Raise DataError on option combinations that cannot work (before any work)."""
        if (self.uncertain is None) != (self.labels_out is None):
            missing, given = ("--labels-out", "--uncertain N")
            if self.uncertain is None:
                missing, given = ("--uncertain", "--labels-out FILE.json")
            raise DataError(format_error(missing, problem=f"is needed with {given}"))
        if self.uncertain is not None and self.uncertain < 1:
            raise DataError(format_error("--uncertain", self.uncertain, must="an int >= 1"))
        if self.uncertain_by not in UNCERTAINTY:
            raise DataError(format_error("--uncertain-by", self.uncertain_by, one_of=UNCERTAINTY))

    def outputs(self) -> list[tuple[Path, str]]:
        """Every file this run writes, with the option that names it."""
        out = [(self.out, "--out"), (self.skipped_path, "--out (its .skipped.csv)")]
        return out + ([(self.labels_out, "--labels-out")] if self.labels_out else [])

    @property
    def skipped_path(self) -> Path:
        return self.out.with_name(f"{self.out.stem}.skipped.csv")


def run_predict(model: str, data: Path, opts: PredictOptions, console: Console) -> dict:
    """Predict every clip DATA names with MODEL; write the outputs; return the summary."""
    opts.check()
    for path, option in opts.outputs():  # an unwritable --out fails now, not after extraction
        check_writable(path, option)
    if opts.cache_dir is not None:
        check_cache_dir(opts.cache_dir, key="--cache-dir")
    # What the arguments alone decide is refused before MLflow is imported (seconds).
    inputs = list_inputs(data, path_column=opts.path_column)
    uri = model_uri(model, opts.overrides)
    from runner.stores.checks import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(opts.tracking_uri)
    loaded = load_model(uri, tracking_uri)
    audio = loaded.audio
    if audio.audio_reason:
        raise DataError(
            format_error("MODEL", loaded.uri, problem=f"cannot label audio: {audio.audio_reason}")
        )
    if opts.uncertain is not None and audio.config["task"] != "classification":
        problem = "needs a classifier; a regression model has no class probabilities to rank"
        raise DataError(format_error("--uncertain", opts.uncertain, problem=problem))
    table = _features(loaded, inputs, opts)
    predictions = predict_table(loaded, table.frame, inputs.clips, table.load_mel)
    skipped = table.skipped.assign(path=table.skipped["clip_id"])[["path", "reason"]]
    if len(inputs.left_out):
        skipped = pd.concat([inputs.left_out, skipped], ignore_index=True)
    write_csv(predictions, opts.out)
    write_csv(skipped, opts.skipped_path)
    summary = _summary(predictions, inputs, table.stats, len(skipped))
    if opts.uncertain is not None and opts.labels_out is not None:
        chosen = least_certain(predictions, opts.uncertain, by=opts.uncertain_by)
        write_json(dict(zip(chosen["path"], chosen["label"], strict=True)), opts.labels_out)
        summary["uncertain"] = len(chosen)
    _report(console, summary, opts, skipped)
    if opts.log:
        summary["run_id"] = _log(loaded, tracking_uri, data, opts, summary)
        console.print(f"logged run {summary['run_id']} ({loaded.uri})")
    return summary


def _features(loaded: LoadedModel, inputs: PredictInput, opts: PredictOptions) -> Any:
    """The feature table of the clips, with the model's segmenting, from the cache if there."""
    from features import FeaturesSpec, build_table

    where = {"executor": opts.executor, "scheduler": opts.scheduler}
    try:  # validated: a missing Dask extra is named here, before any extraction
        features = FeaturesSpec.model_validate(loaded.audio.features.model_dump() | where)
    except ValueError as exc:
        raise DataError(format_error("--executor", opts.executor, problem=str(exc))) from None
    folder = opts.cache_dir or Path(features.cache_dir or ".audioml-cache").expanduser()
    check_cache_dir(folder, key="--cache-dir" if opts.cache_dir else "features.cache_dir")
    n_jobs = features.n_jobs if opts.n_jobs is None else opts.n_jobs
    return build_table(
        inputs.clips, features, loaded.audio.segments, cache_dir=folder.absolute(),
        n_jobs=n_jobs, progress=opts.progress,
    )  # fmt: skip


def predict_table(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    clips: pd.DataFrame,
    load_mel: Any = None,
) -> pd.DataFrame:
    """One output row per clip of a feature-table ``frame`` (segment rows, clip order).

    Columns of ``clips`` that the model's signature asks for and that the audio does not
    produce (metadata such as a speaker's accent) are put beside each segment's features.
    """
    from mlflow.exceptions import MlflowException

    audio = loaded.audio
    meta = metadata_columns(loaded, clips, frame)
    by_clip = clips.set_index("clip_id")[meta] if meta else None
    ids = frame["clip_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    bounds = np.r_[starts, len(ids)]
    parts = []
    for b in range(0, len(starts), BATCH_CLIPS):
        lo, hi = int(bounds[b]), int(bounds[min(b + BATCH_CLIPS, len(starts))])
        rows = frame.iloc[lo:hi].reset_index(drop=True)
        if by_clip is not None:
            rows = rows.join(by_clip, on="clip_id")
        images = load_mel(np.arange(lo, hi)) if audio.kind.images else None
        owner, names = pd.factorize(rows["clip_id"])
        try:
            out = audio.predict_inputs(audio.segment_inputs(rows, images), owner)
        except MlflowException as exc:
            raise DataError(
                format_error("MODEL", loaded.uri, problem=f"refused the rows: {exc.message}")
            ) from None
        out.insert(0, "path", np.asarray(names, dtype=object))
        parts.append(out)
    if not parts:
        return _empty_output(audio)
    predictions = pd.concat(parts, ignore_index=True)
    if audio.config["task"] == "classification":
        proba = predictions[[f"proba_{c}" for c in audio.config["classes"]]].to_numpy()
        for name, values in uncertainty(proba).items():
            predictions[name] = values
    return predictions


def metadata_columns(loaded: LoadedModel, clips: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    """Signature columns that DATA carries and the audio features do not provide."""
    produced = set(frame.columns)
    return [
        c
        for c in loaded.input_names
        if c in clips.columns and c not in produced and c not in _NOT_METADATA
    ]


def _empty_output(audio: Any) -> pd.DataFrame:
    if audio.config["task"] == "regression":
        return pd.DataFrame({"path": [], "prediction": []})
    classes = [f"proba_{c}" for c in audio.config["classes"]]
    return pd.DataFrame(columns=["path", "label", *classes, *UNCERTAINTY])


def uncertainty(proba: np.ndarray) -> dict[str, np.ndarray]:
    """Per row: top probability, top minus second, and entropy in nats."""
    ranked = -np.sort(-proba, axis=1)
    second = ranked[:, 1] if proba.shape[1] > 1 else np.zeros(len(proba))
    logs = np.log(np.where(proba > 0, proba, 1.0))  # 0 log 0 = 0
    return {
        "confidence": ranked[:, 0],
        "margin": ranked[:, 0] - second,
        "entropy": np.abs(-(proba * logs).sum(axis=1)),  # abs: no -0.0 for certain rows
    }


def least_certain(predictions: pd.DataFrame, n: int, *, by: str = "confidence") -> pd.DataFrame:
    """The ``n`` least certain rows (ties in DATA order), most uncertain first."""
    order = predictions[by].to_numpy()
    key = -order if UNCERTAINTY[by] else order
    return predictions.iloc[np.argsort(key, kind="stable")[:n]]


def _summary(
    predictions: pd.DataFrame, inputs: PredictInput, stats: dict, n_skipped: int
) -> dict[str, Any]:
    build = ("cache_hits", "cache_misses", "extracted", "seconds")
    summary: dict[str, Any] = {
        "clips": len(inputs.clips),
        "predicted": len(predictions),
        "skipped": n_skipped,
        "duplicates": inputs.duplicates,
        **{k: stats[k] for k in build if k in stats},
    }
    if "label" in predictions.columns:
        summary["labels"] = predictions["label"].value_counts().sort_index().to_dict()
        counts, edges = np.histogram(predictions["confidence"], bins=_HIST_BINS, range=(0, 1))
        summary["confidence_histogram"] = {
            "edges": [round(float(e), 3) for e in edges],
            "counts": counts.tolist(),
        }
        summary["mean_confidence"] = float(predictions["confidence"].mean())
    elif len(predictions):
        values = predictions["prediction"]
        summary |= {"mean_prediction": float(values.mean()), "std_prediction": float(values.std())}
    return summary


def _report(console: Console, summary: dict, opts: PredictOptions, skipped: pd.DataFrame) -> None:
    keys = ("clips", "predicted", "skipped", "cache_hits", "cache_misses", "extracted")
    console.print("  ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    if summary.get("labels"):
        console.print("labels: " + "  ".join(f"{k}={v}" for k, v in summary["labels"].items()))
    for row in skipped.head(10).itertuples(index=False):
        console.print(f"  skipped {row.path}: {row.reason}", soft_wrap=True)
    if len(skipped) > 10:
        console.print(f"  ... and {len(skipped) - 10} more in {opts.skipped_path}")
    wrote = [str(opts.out), str(opts.skipped_path)]
    if "uncertain" in summary:
        wrote.append(f"{opts.labels_out} ({summary['uncertain']} least certain)")
    console.print("wrote " + ", ".join(wrote), soft_wrap=True)


def _log(
    loaded: LoadedModel, tracking_uri: str, data: Path, opts: PredictOptions, summary: dict
) -> str:
    metrics = {k: float(summary[k]) for k in ("clips", "predicted", "skipped") if k in summary}
    for label, count in summary.get("labels", {}).items():
        metrics[f"count_{_metric_name(str(label))}"] = float(count)
    if "mean_confidence" in summary:
        metrics["mean_confidence"] = summary["mean_confidence"]
    files = [opts.out, opts.skipped_path] + ([opts.labels_out] if opts.labels_out else [])
    return log_predictions(
        loaded,
        tracking_uri=tracking_uri,
        experiment=opts.experiment or f"{loaded.name or 'audioml'}-predictions",
        run_name=f"predict-{Path(data).name}",
        params={"data": str(Path(data).absolute()), "model_uri": loaded.uri,
                "uncertain": str(opts.uncertain), "uncertain_by": opts.uncertain_by},
        metrics=metrics,
        summary=summary,
        files=files,
    )  # fmt: skip


def _metric_name(label: str) -> str:
    # MLflow keys allow letters, digits, and _ - . / and space.
    return re.sub(r"[^\w\-./ ]", "_", label)
