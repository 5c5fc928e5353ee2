"""Extension points are closed: a metric, a model family, its input kind, a data source and a
sampler registered from this file alone are read, searched, tracked, refit and tested by a real
run, and an extractor registered here fills a column of a built feature table, with no other
module knowing their names. Every registry refuses a duplicate and names the key and the
choices for an unknown name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score
from sklearn.naive_bayes import GaussianNB
from test_search import _spec, _table

import features._worker
from features import (
    FEATURES,
    FeaturesSpec,
    SegmentsSpec,
    SpectralContext,
    build_table,
    decode_audio,
    register_feature,
)
from features.cache import config_key
from features.errors import FeatureError, format_error
from runner.config.samplers import PRUNERS, SAMPLERS, SamplerKind, register_sampler
from runner.config.source_registry import SOURCES, Source, register_source
from runner.config.spec import ExperimentSpec
from runner.errors import RegistryError
from runner.metrics import METRICS, Metric, register_metric
from runner.models import INPUT_KINDS, MODELS, TABLE, InputKind, ensure_loaded, register_input_kind
from runner.session.pipeline import RunOptions
from runner.session.session import run_experiment
from tests.features.conftest import SR, make_corpus


@pytest.fixture
def balanced_accuracy():
    metric = register_metric(Metric(
        "balanced_accuracy_for_test", "classification", True,
        lambda t, p, *_: float(balanced_accuracy_score(t, p)),
    ))  # fmt: skip
    yield metric
    del METRICS[metric.name]


def _read_table(spec, *, base=None):
    """A layout of its own: the feature table reader under another name."""
    from runner.data.sources.feature_table import load_feature_table

    return load_feature_table(spec, base=base)


@pytest.fixture
def quasi_random():
    import optuna

    kind = register_sampler(SamplerKind(
        "qmc_for_test", lambda spec: optuna.samplers.QMCSampler(seed=spec.seed, scramble=True)
    ))  # fmt: skip
    yield kind
    del SAMPLERS[kind.name]


@pytest.fixture
def table_source():
    source = register_source(Source("table_for_test", _read_table, metadata=True, audio=False))
    yield source
    del SOURCES[source.name]


class MfccOnly(InputKind):
    """A table of the ``mfcc*`` columns only: an input no built-in kind offers."""

    def columns(self, columns, roles):
        return [c for c in super().columns(columns, roles) if c.startswith("mfcc")]


class FourColumnsNB(GaussianNB):
    """Naive Bayes that fails its trial unless it is given the 4 ``mfcc*`` columns."""

    def fit(self, X, y, sample_weight=None):
        if np.shape(X)[1] != 4:
            raise ValueError(f"expected the 4 mfcc columns, got {np.shape(X)[1]}")
        return super().fit(X, y, sample_weight)


@pytest.fixture
def mfcc_only():
    kind = register_input_kind(MfccOnly("mfcc_only_for_test", False, True, False))
    yield kind
    del INPUT_KINDS[kind.name]


def test_a_metric_family_source_and_sampler_from_a_test_file_run_a_study(
    workdir: Path, temporary_family, balanced_accuracy, table_source, quasi_random, mfcc_only
) -> None:
    temporary_family("bayes_for_test", lambda params, **kw: FourColumnsNB(), input=mfcc_only)
    _table(workdir / "table.csv")
    spec = _spec(workdir, models=["logistic", "bayes_for_test"], n_trials=4,
                 metric=balanced_accuracy.name)  # fmt: skip
    raw = spec.model_dump()  # validated again: the checks read the source's record
    raw["data"]["source"] = table_source.name
    raw["search"]["sampler"] = quasi_random.name
    raw["final"] = {"candidate": "trial", "stack": False}
    spec = ExperimentSpec.model_validate(raw)
    summary = run_experiment(spec, RunOptions(progress=False))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(spec.name).experiment_id])
    trials = [r for r in runs if "trial_number" in r.data.tags]
    assert {r.data.params["model"] for r in trials} == {"logistic", "bayes_for_test"}
    # The family read its kind's columns: a wider table would have failed its trials.
    assert {
        r.data.tags["state"] for r in trials if r.data.params["model"] == "bayes_for_test"
    } == {"COMPLETE"}
    key = f"cv_{balanced_accuracy.name}_mean"
    assert all(
        0.0 < r.data.metrics[key] <= 1.0 for r in trials if r.data.tags["state"] == "COMPLETE"
    )
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.params["search.sampler"] == quasi_random.name
    assert parent.data.params["data.source"] == table_source.name
    test = parent.data.metrics[f"test_{balanced_accuracy.name}"]
    # The held-out score is the metric of the final model's clip predictions.
    assert test == pytest.approx(summary["test"][balanced_accuracy.name])
    assert np.isfinite(test)


def test_an_unregistered_source_is_refused_with_the_choices(workdir: Path) -> None:
    raw = _spec(workdir).model_dump()
    raw["data"]["source"] = "nowhere"
    with pytest.raises(
        ValueError, match=r"data\.source: 'nowhere' is not one of folder, manifest"
    ):
        ExperimentSpec.model_validate(raw)


def peak_for_test(ctx: SpectralContext) -> dict[str, float]:
    """The segment's peak amplitude; at module level, so worker processes unpickle it."""
    return {"abs": float(np.max(np.abs(ctx.y)))}


@pytest.fixture
def peak_extractor():
    register_feature("peak_for_test")(peak_for_test)
    yield "peak_for_test"
    del FEATURES["peak_for_test"]


# fork: the workers inherit the registration. forkserver (what a process running JAX uses):
# they start clean, and the record travels with the job.
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_an_extractor_from_a_test_file_fills_a_table_column(
    tmp_path: Path, rng, peak_extractor: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    monkeypatch.setattr(features._worker, "_context", lambda: multiprocessing.get_context(method))
    clips = make_corpus(tmp_path / "audio", 2, rng)
    spec = FeaturesSpec(sample_rate=SR, extractors=["rms", peak_extractor], stats=["mean"])
    table = build_table(clips, spec, SegmentsSpec(), cache_dir=tmp_path / "cache", progress=False)
    assert table.skipped.empty, table.skipped
    assert table.groups[peak_extractor] == ["peak_for_test_abs"]
    peaks = [np.max(np.abs(decode_audio(p, SR))) for p in clips["path"]]
    assert table.frame["peak_for_test_abs"].tolist() == pytest.approx(peaks, rel=1e-6)


def _registries() -> list:
    ensure_loaded()
    features.ensure_loaded()
    return [
        pytest.param(registry, error, id=registry.kind)
        for registry, error in [
            (METRICS, RegistryError), (SOURCES, RegistryError), (SAMPLERS, RegistryError),
            (PRUNERS, RegistryError), (MODELS, RegistryError), (INPUT_KINDS, RegistryError),
            (FEATURES, FeatureError),
        ]
    ]  # fmt: skip


@pytest.mark.parametrize(("registry", "error"), _registries())
def test_every_registry_refuses_a_duplicate_and_names_the_choices(registry, error) -> None:
    first, *_ = registry.values()
    with pytest.raises(error, match=f"{registry.kind}: '{first.name}' is already registered"):
        registry.register(first)
    unknown = f"{registry.key}: 'nowhere' is not one of {first.name}, "
    with pytest.raises(error, match=re.escape(unknown)):
        registry.get_record("nowhere")


def test_the_public_registration_functions_refuse_duplicates() -> None:
    from runner.models import get_family, input_kind, register_family

    with pytest.raises(RegistryError, match="model family: 'logistic' is already registered"):
        register_family(get_family("logistic"))
    with pytest.raises(RegistryError, match="input kind: 'table' is already registered"):
        register_input_kind(TABLE)
    with pytest.raises(FeatureError, match="extractor: 'rms' is already registered"):
        register_feature("rms")(peak_for_test)
    with pytest.raises(
        RegistryError, match=r"search\.models: 'nowhere' is not one of .*\blogistic\b"
    ):
        get_family("nowhere")
    # A model logged before input kinds were objects names its image input "mel_image".
    assert input_kind("mel_image") is input_kind("image")
    assert "mel_image" not in INPUT_KINDS


def _gain_file(features: FeaturesSpec) -> Path:
    """Beside the cache folder: a runtime key, so every process of the build finds it while
    the file, not the path, is what the stamp says."""
    return Path(features.cache_dir).parent / "gain.txt"  # type: ignore[arg-type]


def scaled_peak_for_test(ctx: SpectralContext) -> dict[str, float]:
    """The segment's peak times the gain in the gain file: values a stale cache would keep."""
    gain = float(_gain_file(ctx.features).read_text())  # type: ignore[arg-type]
    return {"abs": gain * float(np.max(np.abs(ctx.y)))}


def gain_stamp_for_test(features: FeaturesSpec) -> str:
    return _gain_file(features).read_text().strip()


def gain_check_for_test(features: FeaturesSpec) -> list[str]:
    if features.cache_dir is None or not _gain_file(features).is_file():
        return [
            format_error(
                "features.extractors", "scaled_peak_for_test",
                problem="needs a gain.txt beside features.cache_dir",
            )
        ]  # fmt: skip
    return []


@pytest.fixture
def scaled_peak_extractor():
    register_feature("scaled_peak_for_test", stamp=gain_stamp_for_test, check=gain_check_for_test)(
        scaled_peak_for_test
    )
    yield "scaled_peak_for_test"
    del FEATURES["scaled_peak_for_test"]


def test_an_extractor_stamp_keys_the_cache(
    tmp_path: Path, rng, scaled_peak_extractor: str
) -> None:
    clips = make_corpus(tmp_path / "audio", 2, rng)
    cache = tmp_path / "cache"
    spec = FeaturesSpec(sample_rate=SR, extractors=["rms", scaled_peak_extractor],
                        stats=["mean"], cache_dir=str(cache))  # fmt: skip
    peaks = np.array([np.max(np.abs(decode_audio(p, SR))) for p in clips["path"]])

    def build(gain: str):
        (tmp_path / "gain.txt").write_text(gain)
        table = build_table(clips, spec, SegmentsSpec(), cache_dir=cache, progress=False)
        assert table.skipped.empty, table.skipped
        return table

    first, again = build("1"), build("1")
    assert again.stats["cache_hits"] == len(clips) and again.stats["cache_misses"] == 0
    # A new stamp is a new key: the clips are extracted again, with the new gain.
    changed = build("3")
    assert config_key(spec, SegmentsSpec()) != _key_with_gain(tmp_path, spec, "1")
    assert changed.stats["cache_misses"] == len(clips)
    assert first.frame["scaled_peak_for_test_abs"].tolist() == pytest.approx(peaks, rel=1e-6)
    assert changed.frame["scaled_peak_for_test_abs"].tolist() == pytest.approx(3 * peaks, rel=1e-6)


def _key_with_gain(tmp_path: Path, spec: FeaturesSpec, gain: str) -> str:
    old = (tmp_path / "gain.txt").read_text()
    (tmp_path / "gain.txt").write_text(gain)
    try:
        return config_key(spec, SegmentsSpec())
    finally:
        (tmp_path / "gain.txt").write_text(old)


def test_an_extractor_check_is_reported_by_validate(
    tmp_path: Path, scaled_peak_extractor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli import main

    spec = str(Path(__file__).resolve().parents[2] / "experiments" / "genre.yaml")
    args = ["validate", spec, "--set", f"features.extractors=[rms,{scaled_peak_extractor}]",
            "--set", f"features.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    assert main(args) == 2
    said = "".join(capsys.readouterr())
    needs = (
        "features.extractors: 'scaled_peak_for_test' needs a gain.txt beside features.cache_dir"
    )
    assert needs in said, said
    # The same spec passes once the check is satisfied: the problem was the check's.
    (tmp_path / "gain.txt").write_text("2")
    assert main(args) == 0, capsys.readouterr()
