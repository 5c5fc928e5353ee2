"""The feature and segment parts of the experiment spec (pydantic, closed schema).

They live in the features package so that the feature engine and the served model read
exactly the same configuration objects the runner validated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from features._registry import ALL_EXTRACTORS, VOICE_EXTRACTORS
from features.errors import format_error

__all__ = [
    "ALL_EXTRACTORS",
    "POOLINGS",
    "RUNTIME_KEYS",
    "STAMPED_KEYS",
    "STATS",
    "VOICE_EXTRACTORS",
    "EmbeddingSpec",
    "FeaturesSpec",
    "MfccSpec",
    "SegmentsSpec",
    "StrictModel",
]

#: FeaturesSpec keys that change how or where features are made, never their values: left out
#: of the cache key (features.cache) and of the champion gate's feature comparison.
RUNTIME_KEYS = frozenset({"n_jobs", "cache_dir", "clip_timeout_s", "executor", "scheduler"})
#: FeaturesSpec keys that enter the cache key only through their extractor's stamp
#: (``FeatureExtractor.stamp``): the model file's content, not its path, and not its
#: speed-only settings; unused (extractor not listed), they change nothing.
STAMPED_KEYS = frozenset({"embedding"})

Stat = Literal["mean", "std", "var", "min", "max", "median", "skew", "kurtosis", "p10", "p90"]
STATS: tuple[str, ...] = Stat.__args__  # type: ignore[attr-defined]


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors and objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MfccSpec(StrictModel):
    """Parameters of the mfcc (and delta_mfcc) extractors."""

    n_mfcc: int = Field(20, ge=1, le=128, description="number of MFCC coefficients")


Pooling = Literal["mean", "std", "max"]
POOLINGS: tuple[str, ...] = Pooling.__args__  # type: ignore[attr-defined]


class EmbeddingSpec(StrictModel):
    """The ``embedding`` extractor: a user-supplied ONNX model run on windows of each segment.

    ``model`` is resolved like ``data.root`` and ``features.cache_dir``: a relative path is
    relative to the working directory. The model's file content (not its path) keys the
    feature cache, and the file is packaged with every logged model.
    """

    model: str = Field(
        min_length=1,
        description="ONNX file, waveform in, embedding out (relative: to the working directory)",
    )
    sample_rate: int = Field(16000, ge=4000, le=96000, description="the rate the model expects")
    window_s: float = Field(3.0, gt=0, le=600, description="seconds of audio per model run")
    hop_s: float | None = Field(
        None, gt=0, le=600, description="hop between windows (default: window_s)"
    )
    pooling: list[Pooling] = Field(
        default_factory=lambda: ["mean", "std"], min_length=1, description="over the windows"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="windows per model run (speed only)")

    @model_validator(mode="after")
    def check_pooling_unique(self) -> EmbeddingSpec:
        if len(set(self.pooling)) != len(self.pooling):
            raise ValueError(
                format_error("features.embedding.pooling", self.pooling, must="without repeats")
            )
        return self

    @property
    def hop(self) -> float:
        """The effective hop in seconds (defaults to the window length)."""
        return self.hop_s if self.hop_s is not None else self.window_s


class SegmentsSpec(StrictModel):
    """How clips become examples: whole clips, fixed windows, or the last N seconds."""

    mode: Literal["whole", "fixed", "last"] = "whole"
    length_s: float | None = Field(None, gt=0, description="window length (fixed) or tail (last)")
    hop_s: float | None = Field(None, gt=0, description="hop between fixed windows")
    aggregate: Literal["mean_proba", "majority"] = Field(
        "mean_proba", description="how window predictions become one clip prediction"
    )

    @model_validator(mode="after")
    def check_length(self) -> SegmentsSpec:
        if self.mode in ("fixed", "last") and self.length_s is None:
            must = f"a number of seconds > 0 for segments.mode '{self.mode}'"
            raise ValueError(format_error("segments.length_s", None, must=must))
        if self.mode != "fixed" and self.hop_s is not None:
            must = f"null for segments.mode '{self.mode}' (only mode 'fixed' uses it)"
            raise ValueError(format_error("segments.hop_s", self.hop_s, must=must))
        return self

    @property
    def hop(self) -> float | None:
        """The effective hop in seconds (defaults to the window length)."""
        return self.hop_s if self.hop_s is not None else self.length_s


class FeaturesSpec(StrictModel):
    """Which librosa features to extract and how to summarise them per segment."""

    sample_rate: int = Field(22050, ge=4000, le=96000)
    n_fft: int = Field(2048, ge=256, le=16384)
    hop_length: int = Field(512, ge=64, le=8192)
    n_mels: int = Field(128, ge=8, le=512)
    extractors: list[str] = Field(
        default_factory=lambda: ["mfcc", "zcr", "centroid", "rms", "chroma"], min_length=1
    )
    mfcc: MfccSpec = Field(default_factory=MfccSpec)
    stats: list[Stat] = Field(default_factory=lambda: ["mean", "std"], min_length=1)
    mel_image: bool = Field(False, description="also cache fixed-size log-mel images (CNNs)")
    mel_image_frames: int = Field(128, ge=16, le=2048, description="time frames per image")
    cache_dir: str | None = Field(
        None, description="feature cache folder (default: .audioml-cache in the working dir)"
    )
    n_jobs: int = Field(1, ge=-1, description="extraction processes (-1 or 0: all cores)")
    max_duration_s: float | None = Field(
        600.0, gt=0, allow_inf_nan=False, description="read at most this many seconds (null: all)"
    )
    clip_timeout_s: float | None = Field(
        300.0, gt=0, allow_inf_nan=False, description="skip a clip taking longer (null: no limit)"
    )
    beat_level: bool = Field(
        False,
        description="also summarise frame-level extractors across tracked beats (beat_* columns)",
    )
    embedding: EmbeddingSpec | None = Field(
        None, description="the ONNX model of the 'embedding' extractor (ignored when not listed)"
    )
    executor: Literal["local", "dask"] = Field(
        "local",
        description="where clips are extracted: this machine's worker processes, or a Dask "
        "cluster (needs audioml[dask]; see docs/scale-out.md)",
    )
    scheduler: str | None = Field(
        None,
        description="executor dask: the scheduler (tcp://HOST:8786, or a scheduler JSON "
        "file); default Dask's DASK_SCHEDULER_ADDRESS",
    )

    @model_serializer(mode="wrap")
    def _omit_unset_embedding(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Without an embedding the dump is what it was before the key existed, so spec
        # hashes, study names and feature-cache keys of existing specs do not change.
        data = handler(self)
        if self.embedding is None:
            data.pop("embedding", None)
        # Where extraction runs changes no value; left out at its default for the same reason.
        if self.executor == "local":
            data.pop("executor", None)
        if self.scheduler is None:
            data.pop("scheduler", None)
        return data

    @model_validator(mode="after")
    def check_extractors(self) -> FeaturesSpec:
        # Names and optional packages only: validation must not import librosa or extractors.
        from features._registry import known_extractors, missing_requirement

        known = known_extractors()
        unknown = [name for name in self.extractors if name not in known]
        if unknown:
            raise ValueError(format_error("features.extractors", unknown[0], one_of=sorted(known)))
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(
                format_error("features.extractors", self.extractors, must="without repeats")
            )
        for name in self.extractors:
            if reason := missing_requirement(name):
                raise ValueError(format_error("features.extractors", problem=reason))
        return self

    @model_validator(mode="after")
    def check_executor(self) -> FeaturesSpec:
        # find_spec, not import: validation stays fast and a missing extra is named at once.
        import importlib.util

        if self.executor != "dask":
            return self
        try:
            present = importlib.util.find_spec("distributed") is not None
        except (ImportError, ValueError):  # a broken install counts as absent
            present = False
        if not present:
            raise ValueError(
                format_error(
                    "features.executor", "dask", problem="needs Dask's distributed package",
                    hint="install it with pip install 'audioml[dask]'",
                )
            )  # fmt: skip
        return self

    @model_validator(mode="after")
    def check_stats_unique(self) -> FeaturesSpec:
        if len(set(self.stats)) != len(self.stats):
            raise ValueError(format_error("features.stats", self.stats, must="without repeats"))
        return self
