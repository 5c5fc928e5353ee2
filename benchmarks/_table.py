"""A feature table shaped like GTZAN's features_30_sec.csv (1,000 rows, 57 features, 10
classes), written as CSV so the runner reads it through its feature_table source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

GENRES = [
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
]


def write_gtzan_like(path: Path, *, rows: int = 1000, seed: int = 0) -> Path:
    """Noisy, partly redundant features so that model choice and tuning matter."""
    X, y = make_classification(
        n_samples=rows,
        n_features=57,
        n_informative=18,
        n_redundant=12,
        n_classes=10,
        n_clusters_per_class=2,
        class_sep=1.0,
        flip_y=0.05,
        random_state=seed,
    )
    names = [f"mfcc{i}_mean" for i in range(1, 21)] + [f"mfcc{i}_var" for i in range(1, 21)]
    names += [f"feat{i}" for i in range(57 - len(names))]
    frame = pd.DataFrame(X, columns=names)
    frame.insert(0, "filename", [f"clip{i:05d}.wav" for i in range(rows)])
    frame["label"] = np.asarray(GENRES)[y]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def table_spec(root: Path, **search: object) -> dict:
    """The spec dict of a classification run on that table."""
    return {
        "name": "bench",
        "seed": 0,
        "data": {
            "source": "feature_table",
            "root": str(root),
            "manifest": "features.csv",
            "label_column": "label",
            "drop_columns": [],
        },
        "search": {"cv": {"folds": 3}, "metric": "f1_macro", "pruner": "median", **search},
    }
