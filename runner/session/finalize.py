"""After the search: refit the chosen candidate (the best trial, the selected ensemble or the
stacker, runner.final.candidates) on all training data, or serve it bagged (runner.final.bagging),
score it once on the held-out test split, log the final artifacts and the servable model, and
register it. With ``search.timeout_s`` the optional artifacts (plots, importance) fit in the
time the search took (runner.final.clock)."""

from __future__ import annotations

import json
import pickle
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from rich.console import Console

from runner.config.loading import spec_hash
from runner.data.dataset import targets
from runner.faults import pause_point
from runner.final.candidates import FinalModel, choose_final
from runner.final.clock import PLOT_S, FinalClock, log_final_importance
from runner.metrics import score_all
from runner.models import Inputs, aggregate_clips, predict_rows
from runner.search.objective import trials_frame
from runner.tracking import plots
from runner.tracking.gate import score_champion
from runner.tracking.report import leaderboard, print_gate, print_leaderboard
from runner.tracking.tracker import Tracker

__all__ = ["finalize"]

_PACKAGES = [
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "lightgbm",
    "librosa",
    "soundfile",
    "soxr",
    "pydantic",
    "pyyaml",
    "pyarrow",
    "rich",  # features/_progress.py imports it when the served model imports features
    "cloudpickle",
]


def _requirements(extra: tuple[str, ...]) -> list[str]:
    names = _PACKAGES + list(extra)
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _fit_final(p: Any, final: FinalModel) -> tuple[Any, Inputs]:
    """The final model refit on the whole training split; also the test split's inputs."""
    ds, split = p.dataset, p.split
    roles = ds.roles.restrict(final.columns)
    train_in = Inputs(final.kind, ds.rows(split.train), final.columns, roles)
    test_in = Inputs(final.kind, ds.rows(split.test), final.columns, roles)
    final.estimator.fit(train_in.all(), p.data.y)
    return final.estimator, test_in


def _score_test(p: Any, estimator: Any, test_in: Inputs) -> tuple[dict, np.ndarray, Any, Any]:
    spec, ds = p.spec, p.dataset
    test = ds.frame.iloc[p.split.test]
    pred, proba = predict_rows(estimator, test_in.all(), task=spec.task, classes=p.data.classes)
    ids, clip_pred, clip_proba = aggregate_clips(
        test["clip_id"].to_numpy(),
        pred,
        proba,
        how=spec.segments.aggregate,
        classes=p.data.classes,
    )
    truth = targets(test.groupby("clip_id", sort=False)["label"].first().loc[ids], spec.task)
    return (
        score_all(spec.task, truth, clip_pred, clip_proba, p.data.classes),
        truth,
        clip_pred,
        clip_proba,
    )


def _log_final_plots(tracker: Tracker, p: Any, truth: Any, pred: Any, proba: Any) -> None:
    if p.spec.task == "regression":
        tracker.log_figure(plots.regression_figure(truth, pred), "final/predicted_vs_true.png")
        return
    classes = p.data.classes
    tracker.log_figure(plots.confusion_figure(truth, pred, classes), "final/confusion_matrix.png")
    tracker.log_figure(
        plots.confusion_figure(truth, pred, classes, normalize=True),
        "final/confusion_matrix_normalized.png",
    )
    from sklearn.metrics import classification_report

    report = classification_report(truth, pred, labels=classes, output_dict=True, zero_division=0)
    tracker.log_text(json.dumps(report, indent=1), "final/classification_report.json")
    tracker.log_figure(plots.curves_figure(truth, proba, classes), "final/roc_pr_curves.png")


def _log_study_plots(tracker: Tracker, study: optuna.Study) -> None:
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        # The matplotlib plots are flagged experimental, and importance warns on few trials.
        warnings.simplefilter("ignore")
        try:
            tracker.log_figure(ovm.plot_optimization_history(study).figure, "optuna/history.png")
            if len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) >= 2:
                axes = ovm.plot_param_importances(study)
                tracker.log_figure(axes.figure, "optuna/param_importances.png")
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            tracker.log_text(f"optuna plots unavailable: {exc}", "optuna/plots_unavailable.txt")


def _signature(p: Any, columns: list[str], categorical: tuple[str, ...] = ()) -> Any:
    """Every input column optional: a row carries audio, a path, or the feature columns,
    plus the metadata columns (the served model names a missing one).

    Numeric columns are typed ``any``: MLflow refuses int64 for a ``double`` column ("can
    not safely convert"), yet JSON clients send ``2`` for a count such as Common Voice's
    up_votes. The pyfunc parses every numeric column itself and names a non-number.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = [
        ColSpec("string", "audio_base64", required=False),
        ColSpec("string", "path", required=False),
    ]
    inputs += [
        ColSpec("string" if c in categorical else AnyType(), c, required=False) for c in columns
    ]
    if p.spec.task == "regression":
        outputs = [ColSpec("double", "prediction")]
    else:
        outputs = [ColSpec("string", "label")]
        outputs += [ColSpec("double", f"proba_{c}") for c in p.data.classes]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _log_model(tracker: Tracker, p: Any, final: FinalModel, estimator: Any) -> str:
    kind = final.kind
    roles = p.dataset.roles.restrict(final.columns)
    columns = kind.columns(final.columns, roles)  # what the served model reads
    config = {
        "task": p.spec.task,
        "classes": p.data.classes,
        "columns": columns,
        "metadata": roles.to_json(),
        "input": kind.name,
        "aggregate": p.spec.segments.aggregate,
        # Where training extracted is no part of the model: it serves without Dask.
        "features": p.spec.features.model_dump(mode="json", exclude={"executor", "scheduler"}),
        "segments": p.spec.segments.model_dump(mode="json"),
        "family": final.name,
        "params": final.params,
        "form": final.form,  # refit, or bagged: the estimator averages fold models
    }
    # A feature row is the example of table models; image models read audio only, and a
    # base64 clip would bloat every logged model, so they carry the signature alone.
    example = None
    if kind.tabular:
        example = p.dataset.frame.iloc[p.split.train[:1]][columns]
        example = example.astype({c: float for c in columns if c not in roles.categorical})
    code = [
        str(Path(__file__).resolve().parents[1]),  # runner/
        str(Path(__file__).resolve().parents[2] / "features"),
    ]
    with tempfile.TemporaryDirectory(prefix="audioml-model-") as tmp:
        folder = Path(tmp)
        (folder / "estimator.pkl").write_bytes(pickle.dumps(estimator))
        (folder / "config.json").write_text(json.dumps(config, indent=1, default=str))
        return tracker.log_model(
            folder,
            signature=_signature(p, columns, roles.categorical),
            input_example=example,
            pip_requirements=_requirements(final.requirements),
            code_paths=code,
        )


def finalize(p: Any, study: optuna.Study, tracker: Tracker, console: Console) -> dict:
    """Refit, test once, log, register; returns the run summary.

    ``best_trial`` is tagged only once the model is registered; marking the study finalized
    and ending the parent run are the caller's (runner.session.session), after this returns.
    """
    spec = p.spec
    # The clock starts first: the trial plots still rendering in the background are waited
    # for (flush) on the final step's time.
    clock = FinalClock.for_study(study, spec.search.timeout_s)
    tracker.flush()
    with clock.part("choose"):
        final = choose_final(p, study, tracker, console)
    with clock.part("fit"):
        estimator, test_in = _fit_final(p, final)
    with clock.part("score"):
        test_scores, truth, pred, proba = _score_test(p, estimator, test_in)
    tracker.log_metrics({f"test_{k}": v for k, v in test_scores.items() if np.isfinite(v)})
    metric = spec.search.metric
    tracker.log_metrics({f"best_cv_{metric}": final.cv_value, "best_trial": final.trial})
    with clock.part("plots"):
        if clock.allows("final_plots", PLOT_S * (1 if spec.task == "regression" else 3)):
            _log_final_plots(tracker, p, truth, pred, proba)
    with clock.part("importance"):
        log_final_importance(p, clock, tracker, estimator, test_in, final.columns)
    board = leaderboard(
        trials_frame(study, metric), metric, greater_is_better=spec.greater_is_better
    )
    tracker.log_frame(board, "leaderboard.csv")
    with clock.part("study_plots"):
        if clock.allows("study_plots", 2 * PLOT_S):
            _log_study_plots(tracker, study)
    summary = {
        "study": p.study_name, "parent_run_id": tracker.parent_id, "best_trial": final.trial,
        "best_model": final.name, f"cv_{metric}": final.cv_value, "test": test_scores,
        "model_version": None, "alias_moved": False, "final_form": final.form,
    }  # fmt: skip
    if spec.tracking.log_models == "best":
        pause_point("finalize")
        with clock.part("register"):
            summary.update(_register(tracker, p, final, estimator, test_scores, console))
    tracker.log_metrics(clock.metrics())
    tracker.set_tags(
        {"best_trial": final.trial, "best_model": final.name, "final_form": final.form,
         **clock.tags()}
    )  # fmt: skip
    print_leaderboard(console, board, metric)
    _say_test(console, spec, final, test_scores)
    return summary


def _register(
    tracker: Tracker, p: Any, final: FinalModel, estimator: Any, test_scores: dict,
    console: Console,
) -> dict:  # fmt: skip
    """Log the servable model, register a version with its tags, gate the alias: the holder
    is re-scored on this version's test split (runner.tracking.gate) before it can lose the alias.
    A version this parent run registered before it was cut short is completed, not doubled."""
    spec, metric = p.spec, p.spec.search.metric
    tags = {
        f"cv_{metric}": final.cv_value, "spec_hash": spec_hash(spec),
        "run_id": tracker.parent_id, "model_family": final.name, "study_name": p.study_name,
        "final_form": final.form,
    }  # fmt: skip
    if "stacker" in final.params:
        tags["stack_members"] = ", ".join(final.params["members"])
    if final.members:
        tags["ensemble_members"] = ", ".join(f"{m}: {w:.3f}" for m, w in final.members.items())
    tags.update({f"test_{k}": v for k, v in test_scores.items()})
    gate = {
        "alias": spec.register.alias, "tags": tags, "test_score": test_scores[metric],
        "champion": lambda uri: score_champion(p, uri, tracking_uri=tracker.uri),
        "promote": spec.register.promote,
    }  # fmt: skip
    version = tracker.version_of_run(spec.model_name, tracker.parent_id)
    if version is not None:
        uri = f"models:/{spec.model_name}/{version}"
        decision = tracker.tag_and_gate(spec.model_name, version, **gate)
    else:
        uri = _log_model(tracker, p, final, estimator)
        decision = tracker.register(uri, spec.model_name, **gate)
    moved = decision.moved
    tracker.set_tags({"registered_version": decision.version, "alias_moved": str(moved).lower()})
    print_gate(console, spec, decision, test_scores[metric])
    return {"model_version": decision.version, "alias_moved": moved, "model_uri": uri}


def _say_test(console: Console, spec: Any, final: FinalModel, scores: dict) -> None:
    shown = "  ".join(f"{k}={v:.4f}" for k, v in scores.items() if np.isfinite(v))
    console.print(f"best: [bold]{final.name}[/]; held-out test: {shown}")
    if spec.tracking.log_models == "best":
        console.print(
            f"serve it: mlflow models serve -m models:/{spec.model_name}@{spec.register.alias} "
            "--env-manager local -p 5001"
        )
