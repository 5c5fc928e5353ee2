"""The champion gate on the documented relabel loop (docs/predict.md): version 1 on the demo
corpus, version 2 on a relabelled, larger set with another feature config, version 3 with a
class version 2 never saw. Real `audioml run` commands on synthetic audio, a real SQLite
MLflow store; the champion's score on the new split is recomputed here through its served
model, independently of runner.tracking.gate."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from _audio_fixtures import write_noise
from mlflow.tracking import MlflowClient

from runner.cli import main
from runner.config.loading import load_spec
from runner.data.demo_data import synthesize_corpus
from runner.data.sources import load_source
from runner.metrics import score_all
from runner.session.pipeline import RunOptions, prepare

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "experiments" / "demo.yaml"
MODEL = "demo-audio-classifier"
pytestmark = pytest.mark.slow

# Small and quick: one family, two trials, no per-trial plots, no ensemble.
FAST = [
    "search.models=[logistic]", "search.n_trials=2", "search.cv.folds=3",
    "search.pruner=none", "search.ensemble=false", "features.n_jobs=1", "tracking.plots=[]",
    "search.timeout_s=null",
]  # fmt: skip
# Version 2's own feature config: the champion must extract the test clips its own way.
FEWER = ["features.extractors=[mfcc,rms,centroid]"]
# Version 2's search, as seeded, prunes trials 4 and 5 (median pruner) and selects an
# ensemble of trials 0 and 2: both land in MLflow as the trials do.
PRUNES = [
    "search.models=[logistic,knn]", "search.n_trials=6", "search.pruner=median",
    "search.ensemble=true", "tracking.plots=[confusion_matrix]",
]  # fmt: skip


def _sets(workdir: Path, *extra: str) -> list[str]:
    labels = ["data.source=labels_json", f"data.root={workdir}", "data.manifest=labels.json"]
    return [*FAST, *labels, *extra]


def _run(sets: list[str]) -> None:
    args = ["run", str(DEMO), "-q"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0


def _relabelled(workdir: Path) -> dict[str, str]:
    """The demo corpus plus an archive, every clip relabelled to the other class: a change
    of labels that version 1 contradicts on every clip, while its own test score stays 1."""
    synthesize_corpus(workdir / "archive", seed=3, clips_per_class=4, duration_s=1.0)
    files = sorted((workdir / "corpus").glob("*/*.wav")) + sorted(
        (workdir / "archive").glob("*/*.wav")
    )
    other = {"music": "speech", "speech": "music"}
    return {p.relative_to(workdir).as_posix(): other[p.parent.name] for p in files}


def _champion_on_split(client: MlflowClient, version: str, sets: list[str]) -> tuple:
    """Version ``version`` re-scored here on the test split ``sets`` make: through its
    served model (audio_base64 rows), scored with the metric code of the trials."""
    p = prepare(load_spec(DEMO, sets), RunOptions(progress=False))
    test = p.dataset.frame.iloc[p.split.test].groupby("clip_id", sort=False)["label"].first()
    paths = load_source(p.spec).clips.set_index("clip_id")["path"]
    encoded = [base64.b64encode(Path(paths[c]).read_bytes()).decode() for c in test.index]
    rows = pd.DataFrame({"audio_base64": encoded})
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
    pred = model.predict(rows)["label"].to_numpy()
    scores = score_all("classification", test.to_numpy().astype(str), pred)
    return scores["f1_macro"], len(test)


def _assert_pruned_and_ensemble_runs(client: MlflowClient, workdir: Path) -> None:
    """Pruned trials end FINISHED (KILLED is a person's Ctrl-C); the ensemble's child run
    has every metric key of a complete trial's, per fold too, and its confusion matrix."""
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("registered_version") == "2")
    mine = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = {r.data.tags["state"]: r for r in mine if "trial_number" in r.data.tags}
    pruned = [r for r in mine if r.data.tags.get("state") == "PRUNED"]
    assert pruned and {r.info.status for r in pruned} == {"FINISHED"}
    assert all(r.data.tags["reason"].startswith("pruned after fold") for r in pruned)
    (ensemble,) = [r for r in mine if r.data.tags.get("ensemble") == "true"]
    keys = set(ensemble.data.metrics) - {"selection_score"}
    assert keys == set(trials["COMPLETE"].data.metrics) == set(trials["PRUNED"].data.metrics)
    history = client.get_metric_history(ensemble.info.run_id, "fold_f1_macro")
    folds = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert ensemble.data.metrics["cv_f1_macro_mean"] == pytest.approx(sum(folds) / 3)
    artifacts = {a.path for a in client.list_artifacts(ensemble.info.run_id)}
    assert {"confusion_matrix_oof.svg", "members.json"} <= artifacts
    local = client.download_artifacts(ensemble.info.run_id, "members.json", str(workdir))
    members = json.loads(Path(local).read_text())
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert all(m["run"].startswith(f"trial-{m['trial']}-") for m in members)
    assert [m["run"] for m in members] == ensemble.data.params["ensemble.members"].split(", ")


def _roles(client: MlflowClient) -> dict[str, str | None]:
    return {
        str(v.version): v.tags.get("role") for v in client.search_model_versions(f"name='{MODEL}'")
    }


def test_relabel_loop_gates_on_the_new_test_split(workdir: Path) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    synthesize_corpus(workdir / "corpus", clips_per_class=10, duration_s=1.0)
    first = {p.relative_to(workdir).as_posix(): p.parent.name
             for p in sorted((workdir / "corpus").glob("*/*.wav"))}  # fmt: skip
    (workdir / "labels.json").write_text(json.dumps(first))
    _run(_sets(workdir))
    v1 = client.get_model_version_by_alias(MODEL, "champion")
    assert str(v1.version) == "1" and v1.tags["gate_reason"] == "no version held champion"
    # The served model on its own split reproduces its test score: the recomputation holds.
    own, n_first = _champion_on_split(client, "1", _sets(workdir))
    assert own == pytest.approx(float(v1.tags["test_f1_macro"]), abs=1e-9)

    # Version 2: more clips, every label changed, another feature config (so version 1
    # extracts the test clips its own way).
    (workdir / "labels.json").write_text(json.dumps(_relabelled(workdir)))
    sets2 = _sets(workdir, *FEWER, *PRUNES)
    _run(sets2)
    _assert_pruned_and_ensemble_runs(client, workdir)
    tags = client.get_model_version(MODEL, "2").tags
    expected, n_test = _champion_on_split(client, "1", sets2)
    assert tags["gate_metric"] == "f1_macro" and tags["gate_champion_version"] == "1"
    assert int(tags["gate_test_rows"]) == n_test > n_first  # another, larger test split
    assert float(tags["gate_champion_score"]) == pytest.approx(expected, abs=1e-9)
    assert float(tags["gate_challenger_score"]) == pytest.approx(float(tags["test_f1_macro"]))
    assert "gate_reason" not in tags
    # On the same clips version 2 wins by far; against version 1's own (stale) test score
    # it would not have: the old gate kept the wrong champion here.
    assert float(tags["gate_champion_score"]) < 0.5 < float(tags["gate_challenger_score"])
    assert float(tags["gate_challenger_score"]) <= float(v1.tags["test_f1_macro"])
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert _roles(client) == {"1": "former_champion", "2": "champion"}

    # Version 3: a class the champion never saw; it cannot be scored, and `always` promotes.
    labels = json.loads((workdir / "labels.json").read_text())
    for i in range(8):
        path = write_noise(workdir / "noise" / f"noise_{i}.wav", rng=np.random.default_rng(i))
        labels[path.relative_to(workdir).as_posix()] = "noise"
    (workdir / "labels.json").write_text(json.dumps(labels))
    _run(_sets(workdir, *FEWER, "register.promote=always"))
    v3 = client.get_model_version(MODEL, "3").tags
    assert "knows classes music, speech; this split has music, noise, speech" in v3["gate_reason"]
    assert "gate_champion_score" not in v3
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    assert _roles(client) == {"1": "former_champion", "2": "former_champion", "3": "champion"}
