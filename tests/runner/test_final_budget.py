"""Budget use in the final step: with search.timeout_s it takes no longer than the search
did (runner.final.clock); each part's seconds and what was cut are on the parent run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.data.demo_data import synthesize_corpus
from runner.final.clock import FinalClock, ImportancePlan

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"


def test_importance_shrinks_to_the_time_left() -> None:
    roomy = FinalClock(budget_s=1e9)
    assert roomy.importance(10, 1000, predict_s=1.0) == ImportancePlan(3, None)
    assert roomy.cut == []
    # 10 columns x 1 s per predict: one pass 10 s; 25 s left: two repeats over every row.
    two = FinalClock(budget_s=25.5, reserve_s=0.0)
    assert two.importance(10, 1000, predict_s=1.0) == ImportancePlan(2, None)
    # 5 s left: one repeat over half the rows (less a hair of elapsed time).
    half = FinalClock(budget_s=5.0, reserve_s=0.0)
    assert half.importance(10, 1000, predict_s=1.0) == ImportancePlan(1, 499)
    assert half.cut == ["importance_repeats=1,rows=499"]
    spent = FinalClock(budget_s=0.0)
    assert spent.importance(10, 1000, predict_s=1.0) is None
    assert not spent.allows("final_plots", 0.5)
    assert spent.tags() == {"final_cut": "importance, final_plots"}
    assert FinalClock(budget_s=None).left() == float("inf"), "no time budget: nothing is cut"


@pytest.mark.slow
def test_demo_final_step_within_the_search_time(workdir: Path) -> None:
    corpus = synthesize_corpus(workdir / "corpus", clips_per_class=12, duration_s=2.0)
    code = main([
        "run", str(DEMO), "-q", "--set", f"data.root={corpus}", "--set", "search.timeout_s=10",
        "--set", "features.n_jobs=1",
    ])  # fmt: skip
    assert code == 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("demo")
    (parent,) = [
        r for r in client.search_runs([exp.experiment_id]) if "trial_number" not in r.data.tags
        and "mlflow.parentRunId" not in r.data.tags
    ]  # fmt: skip
    metrics, tags = parent.data.metrics, parent.data.tags
    assert 0 < metrics["search_seconds"] <= metrics["time_search_s"]
    assert 0 < metrics["final_seconds"] <= metrics["search_seconds"], metrics
    parts = {k for k in metrics if k.startswith("final_") and k.endswith("_s")}
    assert {"final_choose_s", "final_fit_s", "final_score_s", "final_register_s"} <= parts
    assert tags["final_cut"]  # "none", or the parts cut
    assert tags["registered_version"] == "1"
