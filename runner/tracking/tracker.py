"""Every MLflow call of the runner: the parent run, one child run per trial, the final
model and the Model Registry. Child runs go through ``MlflowClient`` so that parallel trials
and remote workers can log them without the fluent API's per-thread run stack.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from threadpoolctl import threadpool_limits

from runner.faults import pause_point
from runner.metrics import greater_is_better, metric_names
from runner.search.liveness import me
from runner.search.objective import TrialRecord
from runner.tracking import plots, svg
from runner.tracking.mlflow_models import dataset_input, log_pyfunc

if TYPE_CHECKING:
    from runner.models import InputKind
    from runner.search.evaluation import CvResult
    from runner.tracking.gate import ChampionScore

__all__ = ["Gate", "Tracker", "flatten"]

# Progress bars of artifact downloads would interleave with the trial lines.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Against a tracking server MLflow prints a "View run" link per run; trial lines say enough.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
OWNER_TAG, REASON_TAG = "audioml.owner", "reason"
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# A pruned trial ended as designed (its `state` tag says how); KILLED is left for a person
# stopping the run, as MLflow's UI reads it (a red cross).
_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
INTERRUPTED = (
    "interrupted"  # runner.search.objective's reason for a trial cut by Ctrl-C or SystemExit
)
OOF_FILE = "oof.npz"
FOLDS_FILE = "folds.pkl"  # a kept trial's fitted fold models (runner.final.bagging)


def _run_status(record: TrialRecord) -> str:
    """A trial's MLflow status: KILLED only when a person interrupted it mid-trial."""
    if record.state == "failed" and record.reason == INTERRUPTED:
        return "KILLED"
    return _STATUS[record.state]


@dataclass(frozen=True)
class Gate:
    """What the champion gate decided for a new version.

    Attributes:
        version: the new version.
        moved: whether the alias points to it now.
        holder: the version that held the alias before (None for the first version).
        champion_score: the holder's score on the new version's test split, if it had one.
        reason: why the holder has no such score.
        rows: the test clips both were scored on.
    """

    version: str
    moved: bool
    holder: str | None = None
    champion_score: float | None = None
    reason: str | None = None
    rows: int = 0


def prepare_store(uri: str) -> None:
    """Create or migrate an SQLite tracking store once, under a lock beside the file.

    Two processes starting on a fresh folder would both run MLflow's schema migration and
    the second would fail half-way; here the first migrates and the second finds it done.
    """
    from runner.stores.tracking_store import open_tracking_store

    open_tracking_store(uri)  # checks the file, drops migration leftovers, creates atomically


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists become JSON (MLflow params are text)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return out


def _requirement(name: str) -> str:
    from importlib import metadata

    return f"{name}=={metadata.version(name)}"


def _batched(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """Logs one experiment run (parent) and its trials (children) to one tracking store."""

    def __init__(self, tracking_uri: str, experiment: str, *, task: str, metric: str) -> None:
        self.uri = tracking_uri
        prepare_store(tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        self.task, self.metric = task, metric
        self.metric_keys = metric_names(task)
        self.plots: set[str] = set()
        self.classes: list | None = None
        self.importance_groups: dict[str, list[str]] = {}
        self.parent_id: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audioml-plots")
        self._pending: list[Future] = []
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )
        self._mark_model_training(found.tags if found else {})

    def _mark_model_training(self, tags: Mapping[str, str]) -> None:
        # MLflow 3's UI opens an experiment of unknown kind on its GenAI (traces) page; this
        # tag opens the runs table, where trials are compared. A user's own choice is kept.
        if EXPERIMENT_KIND not in tags:
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)

    # -- parent run ----------------------------------------------------------------------
    def start_parent(self, run_name: str, tags: Mapping[str, str]) -> str:
        """Create the parent run, or adopt the one `mlflow run` made for this process."""
        tags = {**tags, OWNER_TAG: json.dumps(me())}
        launched = self._launched_run()
        if launched is not None:
            self.parent_id, self.experiment_id = launched.info.run_id, launched.info.experiment_id
            self._mark_model_training(self.client.get_experiment(self.experiment_id).tags)
            self.set_tags(tags)
            return self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        self.parent_id = run.info.run_id
        return self.parent_id

    def adopt_parent(self, run_id: str) -> None:
        """Continue a parent run whose process died (or whose finalize failed): RUNNING
        again, owned by this process."""
        self.parent_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        self.set_tags({OWNER_TAG: json.dumps(me())})

    def running_runs(self) -> list:
        """Every RUNNING run of the experiment (parents and trials, any process)."""
        return self.client.search_runs(
            [self.experiment_id], "attributes.status = 'RUNNING'", max_results=5000
        )

    def trial_run(self, number: int, study: str) -> str | None:
        """The child run already opened for trial ``number`` of ``study``, if any: a process
        killed between opening it and noting its id on the trial leaves one behind."""
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.trial_number = '{number}' and tags.study_name = '{study}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def terminate(self, run_id: str, status: str, reason: str | None = None) -> None:
        """End a run (another process's, found dead) with a reason tag."""
        if reason:
            self.client.set_tag(run_id, REASON_TAG, reason[:4000])
        self.client.set_terminated(run_id, status=status)

    def _launched_run(self) -> Any:
        # `mlflow run` starts a run and hands its id down in MLFLOW_RUN_ID; nesting the
        # trials under it keeps one run per launch instead of an empty one beside ours.
        run_id = os.environ.get("MLFLOW_RUN_ID")
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        return run if run.info.status == "RUNNING" else None

    def attach_parent(self, run_id: str) -> None:
        """Log trials under an existing parent run (a worker joining a study)."""
        self.parent_id = run_id

    def log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for chunk in _batched(items, 100):
            self.client.log_batch(self.parent_id, params=chunk)

    def log_metrics(self, values: Mapping[str, float], run_id: str | None = None) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items()]
        self.client.log_batch(run_id or self.parent_id, metrics=metrics)

    def set_tags(self, tags: Mapping[str, str], run_id: str | None = None) -> None:
        self.client.log_batch(
            run_id or self.parent_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]
        )

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.parent_id, text, artifact_file)

    def log_frame(self, frame: pd.DataFrame, artifact_file: str) -> None:
        self.client.log_text(self.parent_id, frame.to_csv(index=False), artifact_file)

    def log_figure(self, figure: Any, artifact_file: str, run_id: str | None = None) -> None:
        self.client.log_figure(run_id or self.parent_id, figure, artifact_file)
        if getattr(figure.canvas, "manager", None) is not None:  # a pyplot figure (Optuna's)
            import matplotlib.pyplot as plt

            plt.close(figure)

    def log_dataset(self, frame: pd.DataFrame, *, source: str, name: str, digest: str) -> None:
        """The feature table as an MLflow dataset input (source and digest show lineage)."""
        with warnings.catch_warnings():
            # MLflow hints about integer columns and ambiguous local sources; neither applies.
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest[:36])
            entry = dataset_input(dataset, "training")  # infers the schema: the integer hint
        # Through the client: the fluent start_run context would end the parent run here,
        # while its trials are still to come.
        self.client.log_inputs(self.parent_id, datasets=[entry])

    def end_parent(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.parent_id, status=status)

    # -- child runs ----------------------------------------------------------------------
    def start_trial(self, record: TrialRecord, study: str = "") -> str:
        """Open a trial's child run as it starts (RUNNING, owned by this process), with its
        parameters."""
        tags = {
            PARENT_TAG: self.parent_id,
            "state": "RUNNING",
            "trial_number": str(record.number),
            OWNER_TAG: json.dumps(me()),
            **({"study_name": study} if study else {}),
        }
        name = f"trial-{record.number}-{record.setup.family}"
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        params = {"model": record.setup.family}
        params.update({f"{record.setup.family}.{k}": v for k, v in record.setup.params.items()})
        if record.setup.groups is not None:
            params["feature_groups"] = ",".join(record.setup.groups)
        if record.setup.members:
            params["voting.members"] = ",".join(m for m, _ in record.setup.members)
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        return run_id

    def log_trial(self, record: TrialRecord) -> None:
        """Fill and end a trial's child run (opened now if it was not at the start); the
        same metric keys for every trial."""
        run_id = record.run_id or self.start_trial(record)
        # COMPLETE, PRUNED or FAILED: how the trial ended, whatever the run's status says.
        tags = {"state": record.state.upper()}
        if record.reason:
            tags[REASON_TAG] = record.reason[:4000]
        if record.error:
            tags["error_type"] = record.error_type or ""
            self.client.log_text(run_id, record.error, "traceback.txt")
        self.set_tags(tags, run_id)
        self.client.log_batch(run_id, metrics=self._trial_metrics(record))
        if record.state == "complete" and record.cv is not None:
            self.log_oof(run_id, record.cv)
            if record.cv.fold_models:
                self.log_folds(run_id, record.cv)
        if record.state == "complete" and self.plots:
            # Plots render on a background thread (the second core) while the next trial
            # fits; at most a few trials wait, so memory stays bounded.
            self._throttle(limit=2)
            self._pending.append(self._pool.submit(self._finish_trial, run_id, record))
        else:
            self.client.set_terminated(run_id, status=_run_status(record))

    def log_oof(self, run_id: str, cv: CvResult) -> None:
        """A trial's clip-level out-of-fold predictions (ids, fold, probabilities or values),
        which ensemble selection reads back in whichever process finalizes."""
        values = np.vstack(cv.oof_proba) if cv.oof_proba else np.asarray(cv.oof_pred, float)
        with tempfile.TemporaryDirectory(prefix="audioml-oof-") as tmp:
            path = Path(tmp) / OOF_FILE
            ids = np.asarray([str(i) for i in cv.oof_ids])
            np.savez_compressed(path, ids=ids, fold=np.asarray(cv.oof_fold), values=values)
            self.client.log_artifact(run_id, str(path))

    def load_oof(self, run_id: str) -> dict[str, np.ndarray] | None:
        """What :meth:`log_oof` logged, or None (a trial from before it, or a lost file)."""
        with tempfile.TemporaryDirectory(prefix="audioml-oof-") as tmp:
            try:
                local = self.client.download_artifacts(run_id, OOF_FILE, tmp)
            except (MlflowException, OSError):
                return None
            with np.load(local, allow_pickle=False) as data:
                return {k: data[k] for k in ("ids", "fold", "values")}

    def log_folds(self, run_id: str, cv: CvResult) -> None:
        """A trial's fitted fold models and fold fit seconds (``folds.pkl``), which the
        bagged form of the final model averages (runner.final.bagging)."""
        with tempfile.TemporaryDirectory(prefix="audioml-folds-") as tmp:
            path = Path(tmp) / FOLDS_FILE
            blob = {"models": cv.estimators(), "fit_s": cv.fold_fit_s}
            path.write_bytes(pickle.dumps(blob, protocol=pickle.HIGHEST_PROTOCOL))
            self.client.log_artifact(run_id, str(path))

    def load_folds(self, run_id: str) -> dict[str, list] | None:
        """What :meth:`log_folds` logged (``models``, ``fit_s``), or None if nothing was."""
        with tempfile.TemporaryDirectory(prefix="audioml-folds-") as tmp:
            try:
                local = self.client.download_artifacts(run_id, FOLDS_FILE, tmp)
            except (MlflowException, OSError):
                return None
            return pickle.loads(Path(local).read_bytes())

    def log_candidate(
        self, name: str, cv: CvResult, *, params: Mapping[str, Any], chosen: bool,
        member_runs: Sequence[str] = (),
    ) -> str:  # fmt: skip
        """A final candidate built over the trials (the stacker) as a child run of its own,
        with the trials' CV metric keys; its fit seconds are its members' summed."""
        tags = {PARENT_TAG: self.parent_id, "candidate": name, "chosen": str(chosen).lower()}
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run_id.info.run_id
        metrics = self._cv_metrics(cv, *self._members_seconds(member_runs))
        for chunk in _batched(metrics, 900):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=chunk)
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        self._log_oof_confusion(run_id, cv, f"{name}: out-of-fold")
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def log_ensemble(
        self,
        members: Mapping[str, float],
        history: list[float],
        score: float,
        chosen: bool,
        *,
        cv: CvResult | None = None,
        trials: Mapping[int, float] | None = None,
        member_runs: Sequence[str] = (),
    ) -> str:
        """The selected ensemble as a child run of its own, comparable with the trials.

        Args:
            members: each member's label (``trial-N-family``, its child run's name) and weight.
            history: the score of every selection round.
            score: the ensemble's CV score.
            chosen: whether the final step refits it instead of the best trial.
            cv: its out-of-fold scores per fold and predictions: the trials' metric keys
                (mean, std, per fold) and out-of-fold confusion matrix come from it.
            trials: each member's trial number and weight (param, tag and ``members.json``).
            member_runs: the members' child runs; their fit and predict seconds are summed.
        """
        tags = {PARENT_TAG: self.parent_id, "ensemble": "true", "chosen": str(chosen).lower()}
        trials = dict(trials or {})
        shown = ", ".join(f"{n}: {w:.4f}" for n, w in trials.items())
        if trials:
            tags["ensemble_trials"] = shown
        run_id = self.client.create_run(self.experiment_id, run_name="ensemble", tags=tags)
        run_id = run_id.info.run_id
        now = int(time.time() * 1000)
        params = [Param("ensemble.members", ", ".join(members)[:6000])]
        params += [Param(f"weight.{m}"[:250], f"{w:.4f}") for m, w in members.items()]
        if trials:
            params.append(Param("ensemble.trials", shown[:6000]))
        metrics = self._cv_metrics(cv, *self._members_seconds(member_runs)) if cv else []
        if not cv:
            metrics.append(Metric(f"cv_{self.metric}_mean", score, now, 0))
        metrics += [Metric("selection_score", v, now, k) for k, v in enumerate(history)]
        for chunk in _batched(metrics, 900):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=chunk)
        self.client.log_batch(run_id, params=params)
        # `trials` and `members` name the same members in the same order (heaviest first).
        listing = [
            {"trial": n, "run": label, "weight": w}
            for (n, w), label in zip(trials.items(), members, strict=False)
        ]
        self.client.log_text(run_id, json.dumps(listing, indent=1), "members.json")
        self._log_oof_confusion(run_id, cv, "ensemble: out-of-fold")
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def _members_seconds(self, run_ids: Sequence[str]) -> tuple[float, float]:
        """The members' summed CV fit and predict seconds: what the ensemble's OOF cost."""
        fit = pred = 0.0
        for run_id in run_ids:
            metrics = self.client.get_run(run_id).data.metrics
            fit += metrics.get("fit_time_s", math.nan)
            pred += metrics.get("predict_time_s", math.nan)
        return (fit, pred) if run_ids else (math.nan, math.nan)

    def _finish_trial(self, run_id: str, record: TrialRecord) -> None:
        try:
            pause_point("plots")
            # One core beside the fitting trial (OpenMP's thread count is per thread).
            with threadpool_limits(limits=1):
                self._trial_artifacts(run_id, record)
        except Exception as exc:
            log.warning("trial %s: could not log its plots: %s", record.number, exc)
            self.client.set_tag(run_id, "artifact_error", str(exc)[:4000])
        finally:
            self.client.set_terminated(run_id, status=_run_status(record))

    def _throttle(self, limit: int) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        while len(self._pending) >= limit:
            self._pending.pop(0).result()

    def flush(self) -> None:
        """Wait until every trial's background logging has finished."""
        while self._pending:
            self._pending.pop(0).result()

    def _trial_metrics(self, record: TrialRecord) -> list[Metric]:
        fit = record.cv.fit_s if record.cv else math.nan
        pred = record.cv.predict_s if record.cv else math.nan
        return self._cv_metrics(record.cv, fit, pred)

    def _cv_metrics(self, cv: CvResult | None, fit: float, pred: float) -> list[Metric]:
        """Every metric key a trial's child run carries (the ensemble's too), NaN if absent."""
        now = int(time.time() * 1000)
        folds = cv.folds if cv else []
        means, stds = (cv.mean(), cv.std()) if cv else ({}, {})
        out: list[Metric] = []
        for key in self.metric_keys:
            values = [f[key] for f in folds]
            mean, std = means.get(key, math.nan), stds.get(key, math.nan)
            out += [Metric(f"cv_{key}_mean", mean, now, 0), Metric(f"cv_{key}_std", std, now, 0)]
            # Per-fold scores share one key with step = fold, so the UI draws them as a curve.
            out += [Metric(f"fold_{key}", v, now, k) for k, v in enumerate(values or [math.nan])]
        out += [Metric("fit_time_s", fit, now, 0), Metric("predict_time_s", pred, now, 0)]
        out.append(Metric("folds_completed", float(len(folds)), now, 0))
        return out

    def _log_oof_confusion(self, run_id: str, cv: CvResult | None, title: str) -> None:
        # Per-trial figures are SVG text (runner.tracking.svg): matplotlib would cost more CPU than
        # the rest of the tracking together.
        if "confusion_matrix" in self.plots and self.task == "classification" and cv:
            from sklearn.metrics import confusion_matrix

            cm = confusion_matrix(cv.oof_true, cv.oof_pred, labels=self.classes)
            self.client.log_text(
                run_id,
                svg.confusion_svg(cm, self.classes, title=title),
                "confusion_matrix_oof.svg",
            )

    def _trial_artifacts(self, run_id: str, record: TrialRecord) -> None:
        self._log_oof_confusion(run_id, record.cv, f"trial {record.number}: out-of-fold")
        if "feature_importance" in self.plots and record.X_last is not None:
            self.log_importance(
                record.cv.last(),
                record.X_last,
                record.y_last,
                record.columns,
                kind=record.kind,
                run_id=run_id,
                seed=record.number,
                figure="svg",
            )

    def log_importance(
        self,
        estimator: Any,
        X: Any,
        y: Any,
        columns: list[str],
        *,
        kind: InputKind | None = None,
        run_id: str | None = None,
        seed: int = 0,
        figure: str = "png",
        n_repeats: int = 3,
    ) -> pd.Series:
        """Feature importance (native, coefficients or permutation), per feature and family.

        ``figure`` is ``png`` (matplotlib, the final model) or ``svg`` (a trial's, cheap).
        ``kind`` is the family's input kind: an input that is not one table (images, images
        with metadata) is permuted part by part, scored with the spec's metric, and its image
        is a group of its own beside ``metadata``. ``n_repeats``: shuffles per permuted part.
        """
        from runner.models import feature_importance, importance_by_group
        from runner.search.evaluation import metric_scorer

        score = metric_scorer(self.task, self.metric, self.classes)
        imp = feature_importance(estimator, X, y, columns, task=self.task, seed=seed,
                                 n_repeats=n_repeats, kind=kind, score=score)  # fmt: skip
        known = kind.importance_groups(self.importance_groups) if kind else self.importance_groups
        groups = {g: [c for c in cols if c in imp.index] for g, cols in known.items()}
        by_group = importance_by_group(imp, {g: c for g, c in groups.items() if c})
        if figure == "svg":
            chart = svg.importance_svg(imp, by_group)
            self.client.log_text(run_id or self.parent_id, chart, "feature_importance.svg")
        else:
            fig = plots.importance_figure(imp, by_group)
            self.log_figure(fig, "feature_importance.png", run_id)
        text = json.dumps(
            {"features": imp.head(50).to_dict(), "groups": by_group.to_dict()}, indent=1
        )
        self.client.log_text(run_id or self.parent_id, text, "feature_importance.json")
        return imp

    # -- the final model and the registry ------------------------------------------------
    def log_model(
        self,
        model_dir: Path,
        *,
        signature: Any,
        input_example: Any,
        pip_requirements: list[str],
        code_paths: list[str],
    ) -> str:
        """Log the pyfunc AudioModel under the parent run; returns its model URI."""
        from runner.serving.model import AudioModel

        artifacts = {
            "estimator": str(model_dir / "estimator.pkl"),
            "config": str(model_dir / "config.json"),
        }
        from features import BUILTIN, extractor_files, file_artifact

        config = json.loads((model_dir / "config.json").read_text())
        for key, (path, record) in extractor_files(config.get("features") or {}).items():
            # The file travels with the pyfunc; serving loads that copy, and the package
            # that reads it (onnxruntime for a model) is required where the model is served.
            artifacts[file_artifact(key)] = str(path)
            needs = BUILTIN[record.name].requirement if record.name in BUILTIN else None
            if needs is not None:
                pip_requirements = [*pip_requirements, _requirement(needs.distribution)]
        with warnings.catch_warnings():
            # Image models log no example on purpose (they read audio; see finalize).
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            # Saved and attached to the parent run without the fluent run context, whose
            # exit would end the parent FINISHED before the model is registered.
            return log_pyfunc(
                self.client, self.parent_id, name="model", python_model=AudioModel(),
                artifacts=artifacts, signature=signature, input_example=input_example,
                pip_requirements=pip_requirements, code_paths=code_paths,
            )  # fmt: skip

    def register(
        self,
        model_uri: str,
        name: str,
        *,
        alias: str,
        tags: Mapping[str, str],
        test_score: float,
        champion: Callable[[str], ChampionScore] | None = None,
        promote: str = "better",
    ) -> Gate:
        """Register a version, then gate ``alias`` (:meth:`tag_and_gate`)."""
        version = mlflow.register_model(model_uri, name).version
        return self.tag_and_gate(
            name, str(version), alias=alias, tags=tags, test_score=test_score,
            champion=champion, promote=promote,
        )  # fmt: skip

    def version_of_run(self, name: str, run_id: str) -> str | None:
        """The version a run already registered under ``name`` (a finalize that was cut short
        after registering), or None."""
        try:
            found = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        except MlflowException:
            return None
        return str(found[0].version) if found else None

    def tag_and_gate(
        self,
        name: str,
        version: str,
        *,
        alias: str,
        tags: Mapping[str, str],
        test_score: float,
        champion: Callable[[str], ChampionScore] | None = None,
        promote: str = "better",
    ) -> Gate:
        """Tag a registered version and move ``alias`` to it only if it beats the holder on
        the same clips.

        Args:
            name, version: the new registered version.
            alias: the alias to gate (``register.alias``).
            tags: the version's tags (test and CV scores, family, run).
            test_score: the new version's held-out score by this tracker's metric.
            champion: scores the holder (its ``models:/name/N`` URI) on the new version's test
                split; without it, or when it gives no score, the holder cannot be compared.
            promote: ``better`` (move only on a better score) or ``always``.

        Returns:
            The decision; the figures are also tags of the new version (``gate_*``).
        """
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, str(value))
        holder = self._alias_version(name, alias)
        if holder is not None and str(holder.version) == version:
            return self._gate_done(name, version, alias)  # set by the cut-short attempt
        decision, gate = self._judge(version, holder, alias, test_score, champion, promote)
        if decision.reason:
            gate["gate_reason"] = decision.reason[:4000]
        for key, value in gate.items():
            self.client.set_model_version_tag(name, version, key, str(value))
        if decision.moved:
            self.client.set_registered_model_alias(name, alias, version)
        self._set_roles(name, alias, version if decision.moved else None)
        return decision

    def _judge(
        self,
        version: str,
        holder: Any,
        alias: str,
        test_score: float,
        champion: Callable[[str], ChampionScore] | None,
        promote: str,
    ) -> tuple[Gate, dict[str, Any]]:
        """The decision and the ``gate_*`` tags, from the holder re-scored on the new split."""
        gate: dict[str, Any] = {"gate_metric": self.metric, "gate_challenger_score": test_score}
        if holder is None:
            return Gate(version, True, reason=f"no version held {alias}"), gate
        held = str(holder.version)
        gate["gate_champion_version"] = held
        scored = champion(f"models:/{holder.name}/{held}") if champion else None
        if scored is not None:
            gate["gate_test_rows"] = scored.rows
        if scored is None or scored.score is None:
            reason = scored.reason if scored else "no way to score it on this split was given"
            return Gate(version, promote == "always", held, reason=reason), gate
        gate["gate_champion_score"] = scored.score
        sign = 1.0 if greater_is_better(self.metric) else -1.0
        better = sign * test_score > sign * scored.score  # a tie keeps the holder
        moved = better or promote == "always"
        return Gate(version, moved, held, scored.score, rows=scored.rows), gate

    def _set_roles(self, name: str, alias: str, holder: str | None) -> None:
        """``role``: the alias's name on its holder only; ``challenger`` on a version that
        did not win, ``former_<alias>`` on one that held it before."""
        if holder is None:
            found = self._alias_version(name, alias)
            holder = str(found.version) if found is not None else ""
        for mv in self.client.search_model_versions(f"name='{name}'"):
            current = mv.tags.get("role")
            if str(mv.version) == holder:
                wanted = alias
            elif current is None:
                wanted = "challenger"
            elif current == alias:
                wanted = f"former_{alias}"
            else:
                continue
            if current != wanted:
                self.client.set_model_version_tag(name, str(mv.version), "role", wanted)

    def _gate_done(self, name: str, version: str, alias: str) -> Gate:
        """The decision an earlier, cut-short attempt took, read back from the tags."""
        self._set_roles(name, alias, version)
        tags = self.client.get_model_version(name, version).tags
        score = tags.get("gate_champion_score")
        return Gate(
            version, True, tags.get("gate_champion_version"),
            float(score) if score is not None else None, tags.get("gate_reason"),
            int(tags.get("gate_test_rows", 0)),
        )  # fmt: skip

    def _alias_version(self, name: str, alias: str) -> Any:
        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
