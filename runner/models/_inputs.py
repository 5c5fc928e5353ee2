"""What a family reads, built one way for training and serving.

An :class:`InputKind` turns :class:`Rows` (the feature table of one part of the data, audio
features and metadata side by side, plus a loader of the aligned log-mel images) into the
estimator input: a table (``TABLE``), images (``IMAGE``) or images with the metadata of the
same rows (``IMAGE_TABLE``). Training, the refit and the served model all call ``take``, so
the image and the table row of a clip (or a window) cannot drift apart.

Metadata columns keep their roles (:class:`ColumnRoles`) and are encoded inside the fitted
estimator by :class:`MetadataEncoded` (numeric: impute, scale; categorical: impute, one-hot,
unseen values ignored), fitted on the training rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.models._lazy import lazy_exports
from runner.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "IMAGE",
    "IMAGE_GROUP",
    "IMAGE_TABLE",
    "INPUT_KINDS",
    "METADATA_GROUP",
    "TABLE",
    "ColumnRoles",
    "ImageTable",
    "InputKind",
    "Inputs",
    "Rows",
    "input_kind",
    "register_input_kind",
]

# The encoding imports scikit-learn and pandas, so it lives in ``_encoding`` (loaded when an
# estimator is built); re-exported here for the models logged before it moved.
__getattr__ = lazy_exports(
    __name__,
    {
        name: "runner.models._encoding"
        for name in ("MetadataEncoded", "as_text", "log_target", "metadata_encoder")
    },
)

#: The feature group that holds every metadata column (importance, feature-group search).
METADATA_GROUP = "metadata"
#: The log-mel image of image families, one group in feature importance (named after the
#: ``features.mel_image`` switch that makes it); it is never dropped by the group search.
IMAGE_GROUP = "mel_image"


@dataclass(frozen=True)
class ColumnRoles:
    """The metadata columns of a table, by role; every other feature column is audio."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def __bool__(self) -> bool:
        return bool(self.numeric or self.categorical)

    def restrict(self, columns: Iterable[str]) -> ColumnRoles:
        """The roles of the metadata columns among ``columns`` (a feature-group selection)."""
        keep = set(columns)
        return ColumnRoles(
            tuple(c for c in self.numeric if c in keep),
            tuple(c for c in self.categorical if c in keep),
        )

    def to_json(self) -> dict[str, list[str]]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[str]] | None) -> ColumnRoles:
        data = data or {}
        return cls(tuple(data.get("numeric", ())), tuple(data.get("categorical", ())))


@dataclass
class Rows:
    """Per-row data of one part of a data set (positions ``0..n-1``).

    Attributes:
        frame: audio feature columns (float) and metadata columns, one row per segment.
        load_images: log-mel images of row positions, aligned with ``frame``; None if absent.
    """

    frame: pd.DataFrame
    load_images: Callable[[np.ndarray], np.ndarray] | None = None

    def images(self, index: np.ndarray) -> np.ndarray:
        if self.load_images is None:
            raise ValueError("these rows have no log-mel images (features.mel_image is off)")
        return self.load_images(index)

    def table(self, index: np.ndarray, columns: Sequence[str], roles: ColumnRoles) -> Any:
        """The ``columns`` of ``index``: a float array, or a DataFrame when metadata is in."""
        part = self.frame.iloc[np.asarray(index, dtype=np.intp)][list(columns)]
        if roles.restrict(columns):
            return part.reset_index(drop=True)
        return part.to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class ImageTable:
    """Images and the table rows of the same clips, for networks with two inputs."""

    images: np.ndarray
    table: Any  # a DataFrame of raw metadata, or its encoded float array

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class InputKind:
    """What a family reads.

    Attributes:
        name: logged with the served model, which looks the kind up again by it.
        images: reads log-mel images (needs ``features.mel_image`` and audio).
        audio_features: reads the audio feature columns.
        metadata: reads the metadata columns.
    """

    name: str
    images: bool
    audio_features: bool
    metadata: bool

    @property
    def tabular(self) -> bool:
        """One 2-D table of named columns: a feature row is the served model's example."""
        return not self.images

    def columns(self, columns: Sequence[str], roles: ColumnRoles) -> list[str]:
        """The table columns this kind reads, out of ``columns`` (audio and metadata)."""
        meta = set(roles.columns)
        return [
            c
            for c in columns
            if (self.metadata and c in meta) or (self.audio_features and c not in meta)
        ]

    def selectable_groups(
        self, groups: Mapping[str, Sequence[str]], roles: ColumnRoles
    ) -> list[str]:
        """The feature groups the group search may switch off: those whose columns this kind
        reads (every group of a table; only ``metadata`` beside an image)."""
        return [g for g, cols in groups.items() if self.columns(cols, roles)]

    def fits_without_groups(self) -> bool:
        """Whether a trial that switched every group off still has an input (the image)."""
        return self.images

    def importance_groups(self, groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """The groups importance is summed over: ``groups``, plus the image as its own."""
        out = {g: list(cols) for g, cols in groups.items()}
        if self.images:
            out[IMAGE_GROUP] = [IMAGE_GROUP]
        return out

    def permutable(self, X: Any) -> dict[str, Callable[[np.ndarray], Any]] | None:
        """For permutation importance of an input that is not one 2-D table: its parts by
        name, each a function of a row permutation that returns ``X`` with only that part's
        rows permuted (the image as one part, ``IMAGE_GROUP``; each table column as one).

        None for table kinds, whose 2-D input scikit-learn permutes column by column.
        """
        if not self.images:
            return None
        if not isinstance(X, ImageTable):
            return {IMAGE_GROUP: lambda perm: X[perm]}
        parts: dict[str, Callable[[np.ndarray], Any]] = {
            IMAGE_GROUP: lambda perm: ImageTable(X.images[perm], X.table)
        }
        import pandas as pd

        table = X.table
        names = table.columns if isinstance(table, pd.DataFrame) else range(np.shape(table)[1])
        for i, name in enumerate(names):
            parts[str(name)] = lambda perm, i=i: ImageTable(
                X.images, _permute_column(table, i, perm)
            )
        return parts

    def take(
        self, rows: Rows, index: np.ndarray, columns: Sequence[str], roles: ColumnRoles
    ) -> Any:
        """The estimator input of the rows at ``index``."""
        used = self.columns(columns, roles)
        if not self.images:
            return rows.table(index, used, roles)
        images = rows.images(index)
        if not used:
            return images
        return ImageTable(images, rows.table(index, used, roles))


#: Every input kind by the name a served model logs; a family declares its kind, so
#: nobody tests a name (a kind registered elsewhere serves like these).
INPUT_KINDS: Registry[InputKind] = Registry("input kind", "input")
register_input_kind = INPUT_KINDS.register

TABLE = register_input_kind(InputKind("table", images=False, audio_features=True, metadata=True))
IMAGE = register_input_kind(InputKind("image", images=True, audio_features=False, metadata=False))
IMAGE_TABLE = register_input_kind(
    InputKind("image+table", images=True, audio_features=False, metadata=True)
)
# Models logged before input kinds were objects name their image input "mel_image".
INPUT_KINDS.alias("mel_image", IMAGE.name)


def input_kind(name: str) -> InputKind:
    """The registered kind ``name`` (as logged in a served model's config)."""
    return INPUT_KINDS.get_record(name)


@dataclass
class Inputs:
    """The estimator input of one part of the data, taken by row positions (fold rows)."""

    kind: InputKind
    rows: Rows
    columns: list[str]
    roles: ColumnRoles = field(default_factory=ColumnRoles)

    def take(self, index: np.ndarray) -> Any:
        return self.kind.take(self.rows, index, self.columns, self.roles)

    def all(self) -> Any:
        return self.take(np.arange(len(self.rows.frame)))


def _permute_column(table: Any, i: int, perm: np.ndarray) -> Any:
    """``table`` (a DataFrame or a 2-D array) with the rows of its column ``i`` permuted."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        out = table.copy()
        out.iloc[:, i] = table.iloc[perm, i].to_numpy()
        return out
    out = np.array(table, copy=True)
    out[:, i] = out[perm, i]
    return out
