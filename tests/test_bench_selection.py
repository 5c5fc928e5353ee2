"""The final-choice benchmark's harness (benchmarks/bench_selection.py): its rules are scored
on the test clips exactly as the runner scores what it registers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._corpora import ensure
from benchmarks.bench_selection import RULES, markdown, one_seed


@pytest.mark.slow
def test_the_rule_the_runner_used_scores_what_the_runner_registered(tmp_path: Path) -> None:
    """With ``final.form=refit`` the runner serves ``best_cv`` refit; the harness, which
    refits each member once and averages their test outputs, must give the same score."""
    corpus, _ = ensure(tmp_path / "gtzan", "gtzan_table", rows=300)
    extra = ["search.models=[logistic,knn]", "final.form=refit", "tracking.plots=[]"]
    row = one_seed(
        "genre_features", 0, 6, corpus=corpus, cache=tmp_path / "cache", extra=extra,
        log=lambda line: None,
    )  # fmt: skip
    assert row["complete"] >= 2 and row["pool"] >= 2
    assert row["test"]["served"] == pytest.approx(row["test"]["best_cv"], abs=1e-9)
    assert set(row["test"]) == set(RULES) - ({"stack"} - set(row["cv"]))
    assert row["test_bagged"] == {}  # a refit-only run keeps no fold models
    assert row["test"]["best"] > 0.2  # twice chance (10 genres)
    assert row["picked"] in ("trial", "ensemble", "stack")


def _row(task: str, seed: int, served: float, **test: float) -> dict:
    return {
        "task": task, "seed": seed, "metric": "mae", "greater": False, "complete": 9,
        "pool": 9, "test": {"served": served, "best_cv": served, **test}, "test_bagged": {},
        "cv": {}, "honest": {"best": 1.0}, "picked": "ensemble", "honest_pick": "best",
        "best_trial": 0, "ensemble_size": 2, "bagged_size": 3, "search_s": 1.0, "recv_s": 1.0,
        "refit_s": 1.0, "refits": 3,
    }  # fmt: skip


def test_the_report_counts_seeds_by_the_metrics_direction() -> None:
    """MAE: lower is better, so 7.9 against a served 8.0 is a better seed."""
    rows = [_row("age", 0, 8.0, best=7.9, top5=8.0), _row("age", 1, 9.0, best=9.5, top5=8.5)]
    text = markdown(rows, "python -m benchmarks.bench_selection --merge x")
    assert "| best | 8.7000 | 7.9000-9.5000 | 1 / 0 / 1 |" in text
    assert "| top5 | 8.2500 | 8.0000-8.5000 | 1 / 1 / 0 |" in text
    assert "| best, refit | 1 / 0 / 1 |" in text
    assert "## age (mae, lower is better; seeds 0, 1)" in text


@pytest.mark.slow
def test_the_bagged_form_scores_what_the_runner_registered_bagged(tmp_path: Path) -> None:
    """With ``final.form=bagged`` the runner serves its choice as fold models averaged; the
    harness's bagged form of the same rule, from the same kept fold models, must agree."""
    corpus, _ = ensure(tmp_path / "gtzan", "gtzan_table", rows=300)
    extra = ["search.models=[logistic,knn]", "final.form=bagged", "final.stack=false",
             "tracking.plots=[]"]  # fmt: skip
    row = one_seed(
        "genre_features", 0, 6, corpus=corpus, cache=tmp_path / "cache", extra=extra,
        log=lambda line: None,
    )  # fmt: skip
    rule = {"trial": "best"}.get(row["picked"], row["picked"])
    assert rule in ("best", "ensemble")
    assert row["test"]["served"] == pytest.approx(row["test_bagged"][rule], abs=1e-9)
