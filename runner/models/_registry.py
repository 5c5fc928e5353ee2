"""The model-family registry: one frozen :class:`ModelFamily` record per family, registered by
its own module (:func:`register_family`) in :data:`MODELS`, a :class:`runner.registry.Registry`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from optuna.distributions import BaseDistribution

from runner.errors import RegistryError, format_error
from runner.models._inputs import TABLE, ColumnRoles, InputKind
from runner.registry import Registry

__all__ = [
    "MODELS",
    "TASKS",
    "Ensemble",
    "ModelFamily",
    "ensure_loaded",
    "get_family",
    "register_family",
]

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Ensemble:
    """How an ensemble family draws on earlier trials.

    Attributes:
        accepts: whether the best completed trial of a family may be a member.
        size: how many members a parameter set asks for (the best ``size`` families).
        min_members: fewer completed members than this fails the trial.
    """

    accepts: Callable[[ModelFamily], bool]
    size: Callable[[Mapping[str, Any]], int]
    min_members: int = 2


@dataclass(frozen=True)
class ModelFamily:
    """A searchable model family.

    Attributes:
        name: the name used in ``search.models``.
        tasks: the tasks the family supports.
        space: returns the Optuna distributions of the family's hyperparameters (unprefixed
            names; a function of the task so that e.g. a loss can depend on it).
        build: ``build(params, task=..., seed=..., balanced=False)`` returns an unfitted
            scikit-learn-API estimator (preprocessing included, fitted on training folds only).
        input: what the family reads (``TABLE``, ``IMAGE``, ``IMAGE_TABLE``); the kind
            builds the training inputs and the served model's.
        deterministic: whether the same params and seed give the same predictions.
        requirements: pip packages the logged model needs beyond the base ones.
        ensemble: for ensembles, which earlier trials become members; None otherwise.
        warm_start: known-good parameter sets (defaults that generalise), tried first in a
            new study before the sampler takes over; values outside a narrowed space are
            left to the sampler.
        thread_safe: whether two estimators of the family may fit at once in one process
            (the CV folds of a trial are fitted side by side when it is).
        install: how to install ``requirements`` when they are not in the default install
            (an extra); a spec naming the family is refused with it where they are missing.
        native_categorical: the estimator reads categorical metadata itself (``build`` takes
            ``categorical=``, the column names, and gets the raw columns) instead of one-hot.
    """

    name: str
    tasks: frozenset[str]
    space: Callable[[str], dict[str, BaseDistribution]]
    build: Callable[..., Any]
    input: InputKind = TABLE
    deterministic: bool = True
    requirements: tuple[str, ...] = ()
    ensemble: Ensemble | None = None
    thread_safe: bool = True
    warm_start: tuple[Mapping[str, Any], ...] = ()
    install: str = ""
    native_categorical: bool = False

    def supports(self, task: str) -> bool:
        return task in self.tasks

    def missing_requirement(self) -> str | None:
        """Why the family cannot fit here (an optional package is not installed), or None.

        Looks the packages up with ``importlib.util.find_spec``: nothing is imported.
        """
        if not self.install:
            return None
        import importlib.util

        missing = [r for r in self.requirements if importlib.util.find_spec(r) is None]
        if not missing:
            return None
        return (
            f"model family '{self.name}' needs {', '.join(missing)}, which is not installed; "
            f"{self.install}"
        )

    @property
    def stackable(self) -> bool:
        """Whether the family can be a member of an ensemble: a table family that is not an
        ensemble itself (the ensemble then reads one table, the union of its members')."""
        return self.ensemble is None and self.input.tabular

    def make(
        self,
        params: Mapping[str, Any],
        *,
        task: str,
        seed: int,
        balanced: bool = False,
        metadata: ColumnRoles | None = None,
        target_transform: str = "none",
        threads: int = 1,
    ) -> Any:
        """Build an unfitted estimator for ``task`` from ``params``.

        The one place where metadata encoding and the target transform wrap every family.

        Args:
            params: hyperparameters (unprefixed names, as sampled from ``space(task)``).
            task: ``"classification"`` or ``"regression"``.
            seed: the random state of the estimator.
            balanced: weight classes inversely to their frequency where the estimator can.
            metadata: the metadata columns of the input; they are encoded inside the
                estimator (fitted on its training rows only).
            target_transform: ``"log"`` fits on ``log1p(y)`` and predicts in original units.
            threads: the threads of each ``n_jobs`` parameter of the estimator (the search's
                resource plan; families without one use the process's thread limit).

        Raises:
            RegistryError: the family does not support ``task``, or a log target is asked
                for a classifier.
        """
        if not self.supports(task):
            what = f"tasks of model family '{self.name}'"
            raise RegistryError(format_error("task", task, one_of=sorted(self.tasks), what=what))
        from runner.models._encoding import MetadataEncoded, log_target

        # A family that reads categories natively gets the raw columns and their names.
        native = self.native_categorical and metadata is not None and bool(metadata.categorical)
        extra = {"categorical": metadata.categorical} if native and metadata else {}
        estimator = self.build(dict(params), task=task, seed=seed, balanced=balanced, **extra)
        use_threads(estimator, threads)
        if metadata and not native:
            estimator = MetadataEncoded(estimator, metadata.numeric, metadata.categorical)
        if target_transform == "log":
            if task != "regression":
                must = "'none' for task 'classification'"
                raise RegistryError(format_error("search.target_transform", "log", must=must))
            estimator = log_target(estimator)
        elif target_transform != "none":
            one_of = ("none", "log")
            raise RegistryError(
                format_error("search.target_transform", target_transform, one_of=one_of)
            )
        return estimator


def use_threads(estimator: Any, threads: int) -> None:
    """Set every ``n_jobs`` parameter the family's builder set (nested ones too) to
    ``threads``; one left at its default (None) is not the family's to parallelise."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return
    keys = [
        k
        for k, v in get_params(deep=True).items()
        if (k == "n_jobs" or k.endswith("__n_jobs")) and isinstance(v, int)
    ]
    if keys:
        estimator.set_params(**dict.fromkeys(keys, threads))


#: Every model family by name; a family module registers its own with :func:`register_family`.
MODELS: Registry[ModelFamily] = Registry("model family", "search.models")


def register_family(family: ModelFamily) -> ModelFamily:
    """Register ``family``; returns it unchanged. Duplicate names are refused."""
    unknown = set(family.tasks) - set(TASKS)
    if unknown:
        what = f"tasks (model family '{family.name}')"
        raise RegistryError(format_error("tasks", sorted(unknown), one_of=TASKS, what=what))
    return MODELS.register(family)


def ensure_loaded() -> None:
    """Import the modules that register the built-in families (keras is imported lazily)."""
    import runner.models.families  # noqa: F401


def get_family(name: str, task: str | None = None) -> ModelFamily:
    """Return the family ``name``, refusing unknown names and unsupported tasks."""
    ensure_loaded()
    family = MODELS.get_record(name)
    if task is not None and not family.supports(task):
        fitting = sorted(n for n, f in MODELS.items() if f.supports(task))
        what = f"model families of task '{task}'"
        raise RegistryError(format_error("model family", name, one_of=fitting, what=what))
    return family
