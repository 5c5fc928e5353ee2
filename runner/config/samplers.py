"""The sampler and pruner registries: a record per ``search.sampler`` / ``search.pruner`` name.

A record builds its Optuna object from the spec (Optuna is imported only then, so checking a
spec stays light) and says what it needs: a sampler the module it cannot run without, a pruner
whether it may see only the trials told before a windowed trial began
(``runner.search.horizon.HorizonPruner``). A new one is one module and one registration.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.errors import format_error
from runner.registry import Registry

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "PrunerKind",
    "SamplerKind",
    "get_pruner",
    "get_sampler",
    "register_pruner",
    "register_sampler",
]


@dataclass(frozen=True)
class SamplerKind:
    """``make(spec)`` returns a seeded ``optuna.samplers.BaseSampler``; ``needs`` names a
    module it cannot run without, ``install`` what to do when it is missing."""

    name: str
    make: Callable[[Any], Any]
    needs: str | None = None  # the module
    requires: str = ""  # what it is called, for people
    install: str = ""

    def missing(self) -> str | None:
        """Why it cannot run here (None when it can)."""
        if self.needs is None or importlib.util.find_spec(self.needs) is not None:
            return None
        what = self.requires or self.needs
        return format_error(
            "search.sampler", self.name, problem=f"needs {what}, which is not installed",
            hint=self.install,
        )  # fmt: skip


@dataclass(frozen=True)
class PrunerKind:
    """``make(spec)`` returns an ``optuna.pruners.BasePruner`` whose steps are CV folds;
    ``horizon``: it reads other trials through ``study.get_trials`` (so it can be shown only
    the trials told before a windowed trial began)."""

    name: str
    make: Callable[[Any], Any]
    horizon: bool = True


SAMPLERS: Registry[SamplerKind] = Registry("sampler", "search.sampler")
PRUNERS: Registry[PrunerKind] = Registry("pruner", "search.pruner")
register_sampler, get_sampler = SAMPLERS.register, SAMPLERS.get_record
register_pruner, get_pruner = PRUNERS.register, PRUNERS.get_record


def _tpe(spec: Any) -> Any:
    import optuna

    startup = max(3, min(10, spec.search.n_trials // 4))
    with warnings.catch_warnings():
        # multivariate + group are flagged experimental; they are what a conditional
        # (family -> its own parameters) space needs.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.seed, multivariate=True, group=True, n_startup_trials=startup,
            constant_liar=True,
        )  # fmt: skip


def _seeded(cls: str) -> Callable[[Any], Any]:
    def make(spec: Any) -> Any:
        import optuna

        return getattr(optuna.samplers, cls)(seed=spec.seed)

    return make


def _pruner(cls: str, **kwargs: Any) -> Callable[[Any], Any]:
    def make(spec: Any) -> Any:
        import optuna

        with warnings.catch_warnings():  # Wilcoxon is flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return getattr(optuna.pruners, cls)(**kwargs)

    return make


def _hyperband(spec: Any) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.search.cv.folds)


register_sampler(SamplerKind("tpe", _tpe))
register_sampler(SamplerKind("random", _seeded("RandomSampler")))
register_sampler(SamplerKind("cmaes", _seeded("CmaEsSampler")))
register_sampler(SamplerKind(
    "gp", _seeded("GPSampler"), needs="torch", requires="PyTorch (Optuna's GPSampler)",
    install="pip install 'audioml[gp]', or choose one of tpe, random, cmaes",
))  # fmt: skip
register_pruner(PrunerKind("none", _pruner("NopPruner"), horizon=False))
register_pruner(
    PrunerKind("median", _pruner("MedianPruner", n_startup_trials=3, n_warmup_steps=1))
)
register_pruner(
    PrunerKind("wilcoxon", _pruner("WilcoxonPruner", p_threshold=0.1, n_startup_steps=2))
)
# Hyperband opens bracket studies on the storage itself, past any view of the study.
register_pruner(PrunerKind("hyperband", _hyperband, horizon=False))
