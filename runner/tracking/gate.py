"""The champion gate's other half: the version holding the alias, scored on the new version's
held-out test split.

A test score is only comparable on the same clips: after the data, the labels or the split
change, the champion's own ``test_<metric>`` tag describes other clips. So the champion is
loaded from the registry (its pyfunc: its estimator, feature config and input kind) and
scored on the new split's test clips with the code the new version's test score came from
(``predict_rows``, ``aggregate_clips``, ``score_all``). Its inputs are the same feature rows
when its feature config matches the spec's, else its own extraction of the same clips
through the feature cache. When it cannot score them (other classes, a metadata column the
data lacks, another task, a load error), :func:`score_champion` says why instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.config import RUNTIME_KEYS
from runner.config.source_registry import get_source
from runner.data.dataset import cache_dir_for, targets
from runner.metrics import score_all
from runner.models import aggregate_clips, predict_rows

__all__ = ["ChampionScore", "score_champion"]


@dataclass(frozen=True)
class ChampionScore:
    """The champion's score on the new test split, or why there is none.

    Attributes:
        score: the spec's metric, or None when the champion could not be scored.
        rows: the held-out test clips of the new split (both versions' score covers them).
        reason: why there is no score (None when there is one).
    """

    score: float | None
    rows: int
    reason: str | None = None


class _Unscorable(Exception):
    """The champion cannot score the split; the message says why."""


def score_champion(p: Any, model_uri: str, *, tracking_uri: str) -> ChampionScore:
    """Score the model at ``model_uri`` on the held-out test split of ``p`` (a Prepared).

    Args:
        p: the new run's prepared data (spec, dataset, split, search data).
        model_uri: the registered champion, e.g. ``models:/name/1``.
        tracking_uri: the store to load it from.

    Returns:
        Its score by the spec's metric on the test clips, or the reason it has none.
    """
    test = p.dataset.frame.iloc[p.split.test].reset_index(drop=True)
    n_clips = int(test["clip_id"].nunique())
    try:
        audio = _load(model_uri, tracking_uri)
        _check_fits(audio, p, test)
        frame, images = _inputs(audio, p, test)
        score = _score(audio, p, frame, images, test)
    except _Unscorable as exc:
        return ChampionScore(None, n_clips, str(exc))
    except Exception as exc:  # listing or extracting the clips again failed: the gate says so
        return ChampionScore(None, n_clips, f"{type(exc).__name__}: {exc}")
    if not np.isfinite(score):
        return ChampionScore(None, n_clips, f"its {p.spec.search.metric} is undefined here")
    return ChampionScore(score, n_clips)


def _load(model_uri: str, tracking_uri: str) -> Any:
    from runner.errors import REPORTED
    from runner.predict.model import load_model

    try:
        return load_model(model_uri, tracking_uri).audio
    except REPORTED as exc:
        raise _Unscorable(f"cannot load it: {exc}") from None
    except Exception as exc:  # a model pickled by code that is gone, a missing package
        raise _Unscorable(f"cannot load it: {type(exc).__name__}: {exc}") from None


def _check_fits(audio: Any, p: Any, test: pd.DataFrame) -> None:
    """Raise when the champion's task, classes or metadata do not fit the new split."""
    spec, config = p.spec, audio.config
    if config["task"] != spec.task:
        raise _Unscorable(f"it is a {config['task']} model; this run is {spec.task}")
    if spec.task == "classification":
        theirs, ours = set(map(str, config["classes"])), set(map(str, p.data.classes))
        if theirs != ours:
            raise _Unscorable(
                f"it knows classes {', '.join(sorted(theirs))}; this split has "
                f"{', '.join(sorted(ours))}"
            )
    missing = [c for c in audio.roles.columns if c not in test.columns]
    if missing:
        raise _Unscorable(f"it reads metadata column(s) {', '.join(missing)}, absent here")


def _same_features(audio: Any, spec: Any) -> bool:
    def plain(model: Any) -> dict:
        return {k: v for k, v in model.model_dump(mode="json").items() if k not in RUNTIME_KEYS}

    return plain(audio.features) == plain(spec.features) and plain(audio.segments) == plain(
        spec.segments
    )


def _inputs(audio: Any, p: Any, test: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
    """The test clips' segment rows (and images) as the champion's features describe them."""
    if _same_features(audio, p.spec):
        missing = [c for c in audio.columns if c not in test.columns]
        if missing:
            raise _Unscorable(
                f"its feature column(s) {', '.join(missing[:5])} are not in this table"
            )
        images = None
        if audio.kind.images:
            if p.dataset.load_mel is None:
                raise _Unscorable("it reads log-mel images; this run's table has none")
            images = p.dataset.load_mel(np.asarray(p.split.test))
        return test, images
    return _extract(audio, p, test)


def _extract(audio: Any, p: Any, test: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
    """The test clips extracted with the champion's own feature config (cache first)."""
    from features import build_table
    from runner.data.sources import load_source

    if audio.audio_reason or not get_source(p.spec.data.source).audio:
        raise _Unscorable("its feature config differs and this data has no audio to extract")
    clips = load_source(p.spec).clips
    clips = clips[clips["clip_id"].astype(str).isin(set(test["clip_id"].astype(str)))]
    keep = [c for c in audio.roles.columns if c in clips.columns]
    table = build_table(
        clips, audio.features, audio.segments, cache_dir=cache_dir_for(p.spec),
        n_jobs=p.spec.features.n_jobs, progress=False, keep_columns=keep,
    )  # fmt: skip
    if not table.skipped.empty:
        first = table.skipped.iloc[0]
        raise _Unscorable(
            f"its features could not be extracted from {len(table.skipped)} test clip(s) "
            f"(first: {first['clip_id']}: {first['reason']})"
        )
    images = table.load_mel(None) if audio.kind.images else None
    return table.frame, images


def _score(audio: Any, p: Any, frame: pd.DataFrame, images: Any, test: pd.DataFrame) -> float:
    """The metric the new version's test score uses, on the champion's predictions."""
    from mlflow.exceptions import MlflowException

    spec, classes = p.spec, audio.config["classes"]
    try:
        X = audio.segment_inputs(frame, images)
        pred, proba = predict_rows(audio.estimator, X, task=spec.task, classes=classes)
    except MlflowException as exc:
        raise _Unscorable(f"it refused the test rows: {exc.message}") from None
    except Exception as exc:  # a model from other code that no longer fits these inputs
        raise _Unscorable(f"it failed on the test rows: {type(exc).__name__}: {exc}") from None
    ids, clip_pred, clip_proba = aggregate_clips(
        frame["clip_id"].to_numpy(), pred, proba, how=audio.config["aggregate"], classes=classes
    )
    labels = test.groupby(test["clip_id"].astype(str), sort=False)["label"].first()
    truth = targets(labels.loc[np.asarray(ids).astype(str)], spec.task)
    return float(score_all(spec.task, truth, clip_pred, clip_proba, classes)[spec.search.metric])
