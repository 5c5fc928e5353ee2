"""The per-trial SVG figures: valid XML, the numbers they claim, labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd

from runner.tracking.svg import confusion_svg, importance_svg, text_width

NS = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{NS}text")]


def test_confusion_cells_hold_the_counts_row_by_row(rng) -> None:
    cm = rng.integers(0, 90, (3, 3))
    texts = _texts(confusion_svg(cm, ["a<b", "c&d", "e"], title="trial 4"))
    assert texts[0] == "trial 4"
    cells = [t for t in texts if t.isdigit()]
    assert cells == [str(v) for v in cm.ravel()]
    assert texts.count("a<b") == 2 and texts.count("c&d") == 2  # a row and a column label
    rects = [r for r in ET.fromstring(confusion_svg(cm, list("abc"))).iter(f"{NS}rect")]
    assert len(rects) == 1 + 9  # the background and one per cell
    darkest = rects[1 + int(cm.argmax())].get("fill")
    assert darkest == "rgb(8,48,107)"  # the largest count gets the darkest blue


def test_importance_bars_follow_the_ranking_and_scale() -> None:
    imp = pd.Series([0.5, 0.25, 0.1], index=["mfcc1", "rms", "zcr"])
    groups = pd.Series({"rms": 0.25, "mfcc": 0.5})
    root = ET.fromstring(importance_svg(imp, groups))
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert labels[:2] == ["top 3 features", "mfcc1"]
    widths = [float(r.get("width")) for r in list(root.iter(f"{NS}rect"))[1:]]
    first, second, third = widths[:3]
    assert np.isclose(first / second, 2.0) and np.isclose(second / third, 2.5)
    assert labels.index("importance per feature family") < labels.index("mfcc")


def test_figures_are_wide_enough_for_their_titles() -> None:
    """A trial's title on two classes was clipped to "trial 0: out-of-f..." in 154 px."""
    title = "trial 0: out-of-fold confusion matrix, f1_macro 0.873"
    root = ET.fromstring(confusion_svg(np.eye(2, dtype=int), ["m", "s"], title=title))
    (text,) = [t for t in root.iter(f"{NS}text") if t.text == title]
    right = float(text.get("x")) + text_width(title, 14)
    assert float(root.get("width")) >= right + 5, (root.get("width"), right)
    # a 0.6 em average is the font's; the estimate must not be below it
    assert text_width(title, 14) >= 0.6 * 14 * len(title)
    imp = pd.Series([1.0], index=["rms"])
    root = ET.fromstring(importance_svg(imp, pd.Series({"rms": 1.0})))
    assert float(root.get("width")) == 2 * 420
