"""What every command of a spec shares before its run session: features, the held-out split,
CV folds, the study's name and storage, and the parent run's tags and inputs.

Everything that can be checked (spec, data, folds) is checked here, before the MLflow parent
run is created (``runner.session.session``), so bad input never leaves an empty run behind.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import distribution_to_json
from rich.console import Console

import runner
from runner.config.loading import spec_hash
from runner.config.spec import ExperimentSpec
from runner.data.dataset import Dataset, prepare_dataset, targets
from runner.data.splits import Split, check_folds, cv_folds, holdout_split
from runner.errors import DataError, format_error
from runner.models import get_family, resolve_space
from runner.search.objective import SearchData, make_pruner, make_sampler, resource_plan
from runner.search.study import default_storage, open_study, study_name
from runner.stores.checks import resolve_tracking_uri
from runner.stores.lock import StudyLock
from runner.tracking.tracker import Tracker, flatten

# Set on the parent run once its lineage (inputs, counts, spec and schema files) is logged.
LINEAGE_TAG = "audioml.lineage"

__all__ = [
    "LINEAGE_TAG",
    "Prepared",
    "RunOptions",
    "log_inputs",
    "log_lineage",
    "open_spec_study",
    "parent_tags",
    "prepare",
    "tracker_for",
]


@dataclass
class RunOptions:
    """Where things are stored and what the caller wants printed."""

    tracking_uri: str | None = None
    storage: str | None = None
    spec_path: Path | None = None
    spec_text: str = ""
    resolved: dict = field(default_factory=dict)
    progress: bool = True
    console: Console = field(default_factory=Console)


@dataclass
class Prepared:
    """Everything the search, a worker and the finalizer share for one spec."""

    spec: ExperimentSpec
    dataset: Dataset
    split: Split
    data: SearchData
    study_name: str
    storage: str
    tracking_uri: str
    space: dict


def _search_data(spec: ExperimentSpec, ds: Dataset, split: Split) -> SearchData:
    train = ds.frame.iloc[split.train].reset_index(drop=True)
    check_folds(train, folds=spec.search.cv.folds, task=spec.task)
    folds = cv_folds(train, folds=spec.search.cv.folds, task=spec.task, seed=spec.seed)
    y = targets(train["label"], spec.task)
    classes = sorted(set(y.tolist())) if spec.task == "classification" else None
    return SearchData(
        rows=ds.rows(split.train),
        y=y,
        clip_ids=train["clip_id"].to_numpy(),
        feature_columns=ds.feature_columns,
        groups=ds.groups,
        folds=folds,
        classes=classes,
        roles=ds.roles,
    )


def _one_class(ds: Dataset) -> str:
    """The refusal of a classification table left with fewer than 2 classes (the source had
    more: clips of the others were skipped by the feature engine)."""
    labels = sorted(str(label) for label in ds.frame["label"].unique())
    must = f"at least 2 classes for task 'classification' (found in {len(ds.frame)} clips)"
    hint = "add clips of another class"
    if len(ds.skipped):
        first = ds.skipped.iloc[0]
        hint = (
            f"{len(ds.skipped)} clips were skipped (first: {first['path']}: {first['reason']}); "
            f"fix them or {hint}"
        )
    return format_error("label", labels, must=must, hint=hint, file=ds.source)


def prepare(spec: ExperimentSpec, opts: RunOptions, *, base: Path | None = None) -> Prepared:
    """Data, features, the held-out split, CV folds, and the study's name and storage."""
    ds = prepare_dataset(spec, base=base, progress=opts.progress)
    if spec.task == "classification" and ds.frame["label"].nunique() < 2:
        raise DataError(_one_class(ds))
    split = holdout_split(
        ds.frame, test_size=spec.search.test_size, task=spec.task, seed=spec.seed
    )
    data = _search_data(spec, ds, split)
    space = {}
    for name in spec.search.models:
        fam = get_family(name, spec.task)
        dists = resolve_space(fam, spec.task, spec.search.spaces.get(name))
        space[name] = {k: json.loads(distribution_to_json(d)) for k, d in dists.items()}
    comparable = spec_hash(spec) + json.dumps(space, sort_keys=True)
    tracking_uri = resolve_tracking_uri(opts.tracking_uri)
    return Prepared(
        spec=spec,
        dataset=ds,
        split=split,
        data=data,
        study_name=study_name(spec.name, comparable, ds.digest),
        storage=opts.storage or default_storage(tracking_uri),
        tracking_uri=tracking_uri,
        space=space,
    )


def open_spec_study(p: Prepared) -> optuna.Study:
    """The spec's study (created or resumed) with the spec's sampler and pruner."""
    from runner.search.warm_start import enqueue_warm_start

    sampler, pruner = make_sampler(p.spec), make_pruner(p.spec)
    spec, name = p.spec, p.study_name
    study = open_study(spec, name=name, storage=p.storage, sampler=sampler, pruner=pruner)
    enqueue_warm_start(study, spec, p.data, StudyLock(p.storage, name))
    return study


def _git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _mask(url: str) -> str:
    """Hide a password in a storage URL before it is logged."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def tracker_for(p: Prepared, tracking_uri: str) -> Tracker:
    """A tracker for the spec's experiment, set up with its plots, classes and groups."""
    spec = p.spec
    tracker = Tracker(tracking_uri, spec.name, task=spec.task, metric=spec.search.metric)
    tracker.plots = set(spec.tracking.plots)
    tracker.classes = p.data.classes
    tracker.importance_groups = p.dataset.groups
    return tracker


def parent_tags(p: Prepared) -> dict[str, str]:
    """The parent run's tags: what makes it reproducible and where its study lives."""
    spec = p.spec
    tags = {
        "spec_hash": spec_hash(spec),
        "data_digest": p.dataset.digest,
        "git_sha": _git_sha(),
        "audioml_version": runner.__version__,
        "study_name": p.study_name,
        "optuna_storage": _mask(p.storage),
        "task": spec.task,
        "metric": spec.search.metric,
    }
    return {k: v for k, v in tags.items() if v}


def log_lineage(tracker: Tracker, p: Prepared, opts: RunOptions) -> bool:
    """Log the parent run's inputs (``log_inputs``) unless its ``LINEAGE_TAG`` says they are
    there, then set the tag; returns whether they were logged here.

    Called by whichever process holds the parent (its creator, or the process that adopts
    it after its creator died), so a parent gets its lineage once, even if killed half-way.
    """
    data = tracker.client.get_run(tracker.parent_id).data
    if data.tags.get(LINEAGE_TAG):
        return False
    log_inputs(tracker, p, opts, logged=(set(data.params), set(data.metrics)))
    tracker.set_tags({LINEAGE_TAG: "logged"})
    return True


def _file_params(features: dict[str, Any]) -> dict[str, str]:
    """What the configured extractors say of the files they read beyond the audio (an
    embedding model's hash, name, signature and size), as ``features.<key>_<what>``."""
    from features import extractor_files

    return {
        f"features.{key}_{k}": v
        for key, (path, record) in extractor_files(features).items()
        for k, v in record.describe(path).items()
    }


def log_inputs(
    tracker: Tracker,
    p: Prepared,
    opts: RunOptions,
    *,
    logged: tuple[set[str], set[str]] = (set(), set()),
) -> None:
    """The parent run's params (the resolved spec), spec files, space, schema and dataset.

    ``logged`` names the params and metrics already on the run (a creator killed half-way):
    those are not logged again (MLflow refuses a param's second value, and a resource plan
    may differ between the two processes)."""
    params, metrics = logged
    spec_params = flatten(opts.resolved or p.spec.model_dump(mode="json"))
    spec_params |= _file_params(p.spec.features.model_dump(mode="json"))
    plan = resource_plan(p.spec).as_params()
    tracker.log_params({k: v for k, v in {**spec_params, **plan}.items() if k not in params})
    if opts.spec_text:
        tracker.log_text(opts.spec_text, "spec/spec.yaml")
    resolved = yaml.safe_dump(p.spec.model_dump(mode="json"), sort_keys=False)
    tracker.log_text(resolved, "spec/spec.resolved.yaml")
    tracker.log_text(json.dumps(p.space, indent=1), "search_space.json")
    tracker.log_text(json.dumps(p.dataset.schema(), indent=1), "feature_table_schema.json")
    tracker.log_frame(p.dataset.skipped, "skipped_clips.csv")
    counts = {"clips_skipped": len(p.dataset.skipped), "rows": len(p.dataset.frame)}
    # What the data source dropped or relabelled (empty labels, filters, downsampling).
    counts |= {f"source_{k}": v for k, v in p.dataset.report.items()}
    tracker.log_metrics({k: v for k, v in counts.items() if k not in metrics})
    tracker.log_dataset(
        p.dataset.frame, source=p.dataset.source, name=p.spec.name, digest=p.dataset.digest
    )
