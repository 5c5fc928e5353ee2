"""The portfolio (configs/portfolio.yaml): a fresh study's first trials are its
configurations in order, asked in a batch as parallel trials ask them, then the sampler's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from runner.config.spec import ExperimentSpec
from runner.errors import SpecError
from runner.models import get_family
from runner.resources import shipped
from runner.search.objective import make_objective
from runner.search.warm_start import WARM_ATTR, portfolio
from runner.session.pipeline import RunOptions, open_spec_study, prepare

MODELS = ["decision_tree", "logistic", "lightgbm", "extra_trees"]


def _spec(root: Path, rng, **search: Any) -> ExperimentSpec:
    y = rng.integers(0, 2, 90)
    frame = pd.DataFrame(rng.normal(size=(90, 4)) + y[:, None], columns=[f"mfcc{i}_mean"
                         for i in range(4)])  # fmt: skip
    frame.insert(0, "filename", [f"c{i}.wav" for i in range(90)])
    frame["label"] = [("ab")[v] for v in y]
    frame.to_csv(root / "table.csv", index=False)
    data = {"source": "feature_table", "root": str(root), "manifest": "table.csv",
            "label_column": "label"}  # fmt: skip
    search = {"models": MODELS, "cv": {"folds": 3}, "pruner": "none", **search}
    return ExperimentSpec.model_validate({"name": "portfolio-test", "seed": 3, "data": data,
                                          "search": search})  # fmt: skip


def _expected(task: str, models: list[str]) -> list[dict[str, Any]]:
    """The shipped file's entries of ``models``, read here without the runner's code, then
    the warm-start settings of the searched families it does not name."""
    entries = yaml.safe_load(shipped("configs", "portfolio.yaml").read_text())[task]
    pairs = [next(iter(e.items())) for e in entries if next(iter(e)) in models]
    named = {name for name, _ in pairs}
    pairs += [(n, s) for n in models if n not in named for s in get_family(n).warm_start]
    return [{"model": n, **{f"{n}.{k}": v for k, v in p.items()}} for n, p in pairs]


@pytest.mark.filterwarnings("ignore:Heartbeat:UserWarning")  # asked and told, as in batches
def test_a_fresh_study_runs_the_portfolio_in_order_then_the_sampler(workdir: Path, rng) -> None:
    spec = _spec(workdir, rng)
    p = prepare(spec, RunOptions(progress=False))
    study = open_spec_study(p)
    expected = _expected("classification", MODELS)
    # The portfolio names the other three; decision_tree follows with its warm-start setting.
    assert [e["model"] for e in expected][-1] == "decision_tree"
    assert {e["model"] for e in expected} == set(MODELS)
    assert study.user_attrs[WARM_ATTR] == len(expected)
    objective = make_objective(spec, p.data)
    batch = [study.ask() for _ in range(len(expected) + 1)]  # asked together, then told
    for trial in batch:
        study.tell(trial, objective(trial))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.params for t in done[: len(expected)]] == expected
    assert all(t.user_attrs.get("warm_start") for t in done[: len(expected)])
    sampled = done[len(expected)]
    assert "warm_start" not in sampled.user_attrs and sampled.params not in expected


def test_warm_start_false_switches_the_portfolio_off(workdir: Path, rng) -> None:
    spec = _spec(workdir, rng, warm_start=False)
    study = open_spec_study(prepare(spec, RunOptions(progress=False)))
    assert study.get_trials() == [] and WARM_ATTR not in study.user_attrs


def test_values_outside_a_narrowed_space_are_left_to_the_sampler(workdir: Path, rng) -> None:
    lgbm = [dict(c) for n, c in portfolio("classification") if n == "lightgbm"]
    assert lgbm and all(c["num_leaves"] > 7 for c in lgbm)  # outside [4, 7]
    spaces = {"lightgbm": {"num_leaves": [4, 7]}}
    spec = _spec(workdir, rng, models=["lightgbm"], spaces=spaces)
    study = open_spec_study(prepare(spec, RunOptions(progress=False)))
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials()]
    assert len(waiting) == len(lgbm)
    assert waiting[0] == {"model": "lightgbm"} | {
        f"lightgbm.{k}": v for k, v in lgbm[0].items() if k != "num_leaves"
    }


def test_the_shipped_portfolio_covers_both_tasks() -> None:
    for task in ("classification", "regression"):
        names = [name for name, _ in portfolio(task)]
        assert names and all(get_family(n).supports(task) for n in names)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("classification:\n- lgbm: {}\n", r"\[0\]: search.models: unknown model family 'lgbm'"),
        ("regression:\n- logistic: {C: 1.0}\n", r"'logistic' does not support task"),
        ("classification:\n- logistic: {C: 5000}\n", r"\[0\]: logistic.C: 5000 is not in"),
        ("classification:\n- logistic: {C: 1}\n  knn: {}\n", r"one 'family: \{param: value\}'"),
    ],
)
def test_a_bad_portfolio_entry_is_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "portfolio.yaml"
    path.write_text(text)
    task = "regression" if text.startswith("regression") else "classification"
    with pytest.raises(SpecError, match=match):
        portfolio(task, path)
