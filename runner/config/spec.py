"""The experiment spec: pydantic models for every key, cross-field checks, loading.

The Field defaults here and in ``features.config`` are the spec's only defaults
(``configs/defaults.yaml`` is generated from them); ``--set KEY=VALUE`` overrides are
applied last. Every error names the file and the dotted key and, where there is a closed set
of choices, lists them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from features.config import FeaturesSpec, SegmentsSpec, StrictModel
from runner.errors import format_error
from runner.metrics import greater_is_better, metric_names

__all__ = [
    "CvSpec",
    "DataSpec",
    "ExperimentSpec",
    "FinalSpec",
    "MetadataSpec",
    "RegisterSpec",
    "SearchSpec",
    "TrackingSpec",
]


class MetadataSpec(StrictModel):
    """Manifest or table columns used as model inputs beside the audio, by role."""

    numeric: list[str] = Field(default_factory=list, description="imputed and scaled")
    categorical: list[str] = Field(
        default_factory=list, description="one-hot encoded; values unseen in training are safe"
    )

    @model_validator(mode="after")
    def check_distinct(self) -> MetadataSpec:
        seen: set[str] = set()
        for column in [*self.numeric, *self.categorical]:
            if column in seen:
                raise ValueError(format_error("data.metadata", column, problem="is listed twice"))
            seen.add(column)
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def _source(name: str) -> Any:
    """The registered data source ``name`` (``runner.config.source_registry``, imported when a spec
    is checked: it imports the spec's package in turn)."""
    from runner.config.source_registry import get_source

    try:
        return get_source(name)
    except KeyError as exc:  # RegistryError: pydantic reports ValueErrors with the key
        raise ValueError(str(exc)) from None


class DataSpec(StrictModel):
    """Where the clips (or a pre-extracted feature table) come from."""

    source: str = Field(
        "folder",
        description="folder, manifest, labels_json, feature_table, or a registered source "
        "(runner.data.sources.register_source)",
    )
    root: str = Field(description="dataset folder; relative paths below are inside it")
    # Where files live, not what they hold: kept out of model_dump, so out of the spec hash.
    allow_outside_root: bool = Field(
        False,
        exclude=True,
        description="let data.manifest and data.audio_dir name files outside data.root "
        "(absolute paths or ../)",
    )
    manifest: str | None = Field(None, description="CSV/TSV, labels JSON or feature table file")
    audio_dir: str | None = Field(None, description="folder of path_column's files, inside root")
    path_column: str = "path"
    label_column: str | None = Field(None, description="label column (manifest, feature_table)")
    group_column: str | None = Field(None, description="speaker/artist column for grouping")
    filters: dict[str, list[str]] = Field(default_factory=dict)
    label_map: dict[str, str] = Field(
        default_factory=dict, description="rename labels, e.g. {both: music} for a binary task"
    )
    balance: Literal["none", "downsample", "class_weight"] = "none"
    drop_columns: list[str] = Field(default_factory=list)
    extensions: list[str] = Field(
        default_factory=lambda: [".wav", ".flac", ".ogg", ".mp3"],
        description="audio file endings the folder source lists",
    )
    max_clips: int | None = Field(None, ge=1, description="cap on clips, seeded sample")
    metadata: MetadataSpec = Field(
        default_factory=MetadataSpec, description="manifest columns used as model inputs"
    )
    min_clips_per_class: int | None = Field(
        None,
        ge=1,
        description="drop classes with fewer clips, or fewer clips/groups than the folds need",
    )

    @model_validator(mode="after")
    def check_source(self) -> DataSpec:
        _source(self.source)  # a registered name, or the error lists them
        return self

    @model_validator(mode="after")
    def check_manifest(self) -> DataSpec:
        if _source(self.source).needs_manifest and not self.manifest:
            raise ValueError(
                format_error(
                    "data.manifest", None, must=f"a file: source '{self.source}' reads one"
                )
            )
        return self

    @model_validator(mode="after")
    def check_metadata_columns(self) -> DataSpec:
        if not self.metadata.columns:
            return self
        if not _source(self.source).metadata:
            from runner.config.source_registry import with_metadata

            raise ValueError(
                format_error(
                    "data.source", self.source, one_of=with_metadata(),
                    what="sources with metadata columns (data.metadata)",
                )
            )  # fmt: skip
        roles = {
            "data.label_column": self.label_column or "label",
            "data.path_column": self.path_column,
            "data.group_column": self.group_column,
        }
        for key, column in roles.items():
            if column in self.metadata.columns:
                raise ValueError(
                    format_error(
                        "data.metadata", column, problem=f"is {key}",
                        hint="a column has one role (the label is never an input)",
                    )
                )  # fmt: skip
        return self

    @model_validator(mode="after")
    def check_label_column(self) -> DataSpec:
        if _source(self.source).needs_label_column and not self.label_column:
            raise ValueError(
                format_error(
                    "data.label_column", None, must=f"a column: source '{self.source}' needs one"
                )
            )
        return self


class CvSpec(StrictModel):
    """Cross-validation inside the search."""

    folds: int = Field(5, ge=2, le=50)


class SearchSpec(StrictModel):
    """The Optuna study: families, budget, metric, sampler, pruner."""

    models: list[str] = Field(default_factory=lambda: ["logistic", "random_forest"], min_length=1)
    n_trials: int = Field(20, ge=1, strict=True)  # strict: YAML's `true` is not 1 trial
    timeout_s: float | None = Field(None, gt=0)
    metric: str = "f1_macro"
    cv: CvSpec = Field(default_factory=CvSpec)
    test_size: float = Field(0.2, gt=0, lt=0.9)
    sampler: str = Field(
        "tpe",
        description="tpe, random, cmaes, gp, or a registered sampler (runner.config.samplers)",
    )
    pruner: str = Field(
        "median",
        description=(
            "none, median, wilcoxon, hyperband, or a registered pruner (runner.config.samplers)"
        ),
    )
    n_jobs: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="cores the search uses (auto: every available one)"
    )
    parallel_trials: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="trials at a time (auto: enough that their folds fill the cores); asked "
        "together and told in trial order, so a seed and a plan fix the trials",
    )
    fold_workers: Literal["auto", "threads", "processes"] = Field(
        "auto",
        description="where trials side by side fit their folds: threads of this process, or "
        "worker processes (auto: processes from 4 fold slots on a machine of 4+ cores)",
    )
    warm_start: bool = Field(True, description="try each family's known-good settings first")
    drop_dominated: bool | None = Field(
        None,
        description="stop drawing a family another family beats with cheaper trials once it "
        "has taken more than its share of the time (runner.search.dominance); default: on when "
        "timeout_s is set",
    )
    ensemble: bool = Field(
        True, description="greedy ensemble selection over the trials' out-of-fold predictions"
    )
    feature_groups: bool = Field(False, description="search over dropping extractor groups")
    target_transform: Literal["none", "log"] = Field(
        "none", description="regression: fit on log1p(target); scores stay in original units"
    )
    spaces: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-family narrowed ranges, e.g. {svm: {C: [0.1, 10]}}"
    )


class TrackingSpec(StrictModel):
    """What is logged per trial."""

    plots: list[Literal["confusion_matrix", "feature_importance"]] = Field(
        default_factory=lambda: ["confusion_matrix", "feature_importance"]
    )
    log_models: Literal["best", "none"] = "best"


class RegisterSpec(StrictModel):
    """The Model Registry entry of the final model."""

    model_name: str | None = Field(None, description="default: the spec's name")
    alias: str = Field("champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    promote: Literal["better", "always"] = Field(
        "better",
        description="better: move the alias only when the new version beats its holder on "
        "the new test split; always: move it to every new version",
    )


class FinalSpec(StrictModel):
    """What the final step serves: which candidate, in which form (``runner.final.bagging``,
    ``runner.final.stacking``). It never changes a trial, so it is no part of the study hash."""

    form: Literal["auto", "refit", "bagged"] = Field(
        "auto",
        description="refit: fit the chosen model once more on all training data; bagged: "
        "average the fold models its CV fitted; auto: bagged when the refit is estimated "
        "not to fit in what is left of search.timeout_s",
    )
    stack: bool = Field(
        True, description="enter a stacker trained on the best trials' out-of-fold predictions"
    )
    stack_features: bool = Field(
        False, description="the stacker also reads the audio feature columns"
    )
    stack_boosted: bool = Field(
        False, description="also try a boosted stacker; the nested CV keeps the better one"
    )
    candidate: Literal["best_cv", "trial", "ensemble", "stack"] = Field(
        "best_cv",
        description="best_cv: the candidate with the best CV score; or always this one "
        "when it can be built (else the best trial)",
    )


# ``register`` is a key of the user-facing spec; it shadows ABCMeta.register, which pydantic
# warns about and which no spec code uses.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class ExperimentSpec(StrictModel):
    """A whole experiment: data, segments, features, search, tracking, registry."""

    # MLflow's experiment names are at most 500 characters (the study name adds 11 more, under
    # Optuna's 512).
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=500)
    task: Literal["classification", "regression"] = "classification"
    # NumPy's and scikit-learn's random_state take [0, 2**32 - 1].
    seed: int = Field(42, ge=0, le=2**32 - 1, strict=True)
    data: DataSpec
    segments: SegmentsSpec = Field(default_factory=SegmentsSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    register: RegisterSpec = Field(default_factory=RegisterSpec)
    final: FinalSpec = Field(default_factory=FinalSpec)

    @model_validator(mode="after")
    def check_metric_fits_task(self) -> ExperimentSpec:
        allowed = self.metrics_for_task()
        if self.search.metric not in allowed:
            raise ValueError(
                format_error(
                    "search.metric", self.search.metric, one_of=allowed,
                    what=f"metrics of task '{self.task}'",
                )
            )  # fmt: skip
        return self

    @model_validator(mode="after")
    def check_families_support_task(self) -> ExperimentSpec:
        from runner.models import MODELS, ensure_loaded

        ensure_loaded()
        for name in self.search.models:
            fitting = sorted(n for n, f in MODELS.items() if f.supports(self.task))
            if name not in MODELS or not MODELS[name].supports(self.task):
                what = f"model families of task '{self.task}'"
                raise ValueError(format_error("search.models", name, one_of=fitting, what=what))
        return self

    @model_validator(mode="after")
    def check_families_installed(self) -> ExperimentSpec:
        # A family behind an extra (catboost) is refused here, before any data is read.
        from runner.models import MODELS

        for name in self.search.models:
            if reason := MODELS[name].missing_requirement():
                raise ValueError(format_error("search.models", problem=reason))
        return self

    @model_validator(mode="after")
    def check_cnn_needs_mel_image(self) -> ExperimentSpec:
        from runner.models import MODELS

        needs = [n for n in self.search.models if n in MODELS and MODELS[n].input.images]
        if needs and not self.features.mel_image:
            raise ValueError(
                format_error(
                    "features.mel_image", False, must=f"true: model family '{needs[0]}' reads it"
                )
            )
        return self

    @model_validator(mode="after")
    def check_feature_table_source(self) -> ExperimentSpec:
        if not _source(self.data.source).audio:
            from runner.models import MODELS

            name = self.data.source
            needs = [n for n in self.search.models if MODELS[n].input.images]
            if needs:
                raise ValueError(
                    format_error(
                        "search.models", needs[0], problem=f"needs audio; source '{name}' has none"
                    )
                )
            if self.segments.mode != "whole":
                raise ValueError(
                    format_error(
                        "segments.mode", self.segments.mode,
                        must=f"'whole': source '{name}' has no audio to segment",
                    )
                )  # fmt: skip
        return self

    @model_validator(mode="after")
    def check_sampler_and_pruner(self) -> ExperimentSpec:
        from runner.config.samplers import get_pruner, get_sampler

        try:
            sampler = get_sampler(self.search.sampler)
            get_pruner(self.search.pruner)
        except KeyError as exc:  # RegistryError: pydantic reports ValueErrors with the key
            raise ValueError(str(exc)) from None
        why = sampler.missing()
        if why:
            raise ValueError(why)
        return self

    @model_validator(mode="after")
    def check_target_transform_task(self) -> ExperimentSpec:
        if self.search.target_transform != "none" and self.task != "regression":
            raise ValueError(
                format_error(
                    "search.target_transform", self.search.target_transform,
                    must=f"'none' for task '{self.task}' (log needs task 'regression')",
                )
            )  # fmt: skip
        return self

    @model_validator(mode="after")
    def check_regression_balance(self) -> ExperimentSpec:
        if self.task == "regression" and self.data.balance != "none":
            raise ValueError(
                format_error(
                    "data.balance", self.data.balance,
                    must="'none' for task 'regression' (balancing classes needs classification)",
                )
            )  # fmt: skip
        return self

    def metrics_for_task(self) -> list[str]:
        """The metrics that fit this spec's task (``runner.metrics``' registry)."""
        return metric_names(self.task)

    @property
    def greater_is_better(self) -> bool:
        return greater_is_better(self.search.metric)

    @property
    def model_name(self) -> str:
        return self.register.model_name or self.name

    def data_root(self, base: Path | None = None) -> Path:
        """``data.root`` resolved against ``base`` (default: the working directory)."""
        root = Path(self.data.root).expanduser()
        return root if root.is_absolute() else (base or Path.cwd()) / root
