"""The per-trial figures as SVG text: a confusion matrix and an importance bar chart.

A search logs two figures per trial; drawn with matplotlib they cost about half a second of
CPU each trial (text layout and rasterising), more than the tracking itself. Written as SVG
they cost a millisecond, stay sharp at any zoom, and the MLflow UI shows them as images. The
final model's figures stay matplotlib PNGs (runner.tracking.plots): one set per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np
import pandas as pd

__all__ = ["confusion_svg", "importance_svg", "text_width"]

_FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def _blue(share: float) -> str:
    """Matplotlib's "Blues" end points, interpolated linearly (white to dark blue)."""
    lo, hi = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, b = (lo + (hi - lo) * min(max(share, 0.0), 1.0)).round().astype(int)
    return f"rgb({r},{g},{b})"


def text_width(text: str, size: float = 12) -> float:
    """A generous estimate of a line's width in pixels: DejaVu Sans averages about 0.6 em
    a character; 0.65 keeps a long title of wide letters inside the figure."""
    return 0.65 * size * len(text)


def _svg(width: float, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {_FONT} font-size="12">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>'
    )


def confusion_svg(matrix: np.ndarray, classes: Sequence, *, title: str = "") -> str:
    """Counts of true (rows) against predicted (columns) classes, darker for more."""
    names = [escape(str(c)) for c in classes]
    cell, n = 44, len(names)
    left = top = 14 + 7 * max(len(s) for s in names)
    top += 24  # the title
    peak = max(float(matrix.max()), 1.0)
    title = title or "confusion matrix"
    body = [f'<text x="10" y="18" font-size="14">{escape(title)}</text>']
    for i in range(n):
        y = top + i * cell
        body.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{names[i]}</text>'
        )
        for j in range(n):
            x, v = left + j * cell, float(matrix[i, j])
            ink = "white" if v > peak / 2 else "black"
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_blue(v / peak)}"/>'
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                f'fill="{ink}">{int(v)}</text>'
            )
    bottom = top + n * cell
    for j in range(n):
        x = left + j * cell + cell / 2
        body.append(
            f'<text x="{x}" y="{bottom + 12}" text-anchor="end" '
            f'transform="rotate(-45 {x} {bottom + 12})">{names[j]}</text>'
        )
    body.append(
        f'<text x="{left + n * cell / 2}" y="{top - 6}" text-anchor="middle">predicted</text>'
    )
    body.append(
        f'<text x="12" y="{top + n * cell / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + n * cell / 2})">true</text>'
    )
    # Wide enough for the grid and for the title, whichever is wider.
    size = max(left + n * cell + 10, 10 + text_width(title, 14) + 10)
    return _svg(size, bottom + left - 24 + 10, body)


def _bars(values: pd.Series, x0: float, y0: float, width: float, colour: str) -> list[str]:
    labels = [escape(str(k)) for k in values.index]
    label_w = 8 * max((len(s) for s in labels), default=1) + 14
    span = float(np.nanmax(np.abs(values.to_numpy()))) if len(values) else 0.0
    scale = (width - label_w - 60) / span if span > 0 else 0.0
    out = []
    for k, (label, v) in enumerate(zip(labels, values.to_numpy(), strict=True)):
        y = y0 + k * 18
        length = max(float(v), 0.0) * scale
        out.append(
            f'<text x="{x0 + label_w - 6}" y="{y + 12}" text-anchor="end">{label}</text>'
            f'<rect x="{x0 + label_w}" y="{y + 2}" width="{length:.1f}" height="13" '
            f'fill="{colour}"/><text x="{x0 + label_w + length + 4:.1f}" y="{y + 12}" '
            f'font-size="10">{v:.3g}</text>'
        )
    return out


def importance_svg(
    importance: pd.Series, by_group: pd.Series | None = None, *, top: int = 20
) -> str:
    """The top features and, beside them, the sum per feature family (largest first)."""
    head = importance.head(top)
    panels = [(f"top {len(head)} features", head, "rgb(31,119,180)")]
    if by_group is not None and len(by_group):
        panels.append(
            (
                "importance per feature family",
                by_group.sort_values(ascending=False),
                "rgb(255,127,14)",
            )
        )
    width = max(420, *(text_width(title, 14) + 20 for title, _, _ in panels))
    rows = max(len(v) for _, v, _ in panels)
    body = []
    for p, (title, values, colour) in enumerate(panels):
        x0 = p * width
        body.append(f'<text x="{x0 + 10}" y="18" font-size="14">{escape(title)}</text>')
        body += _bars(values, x0, 28, width, colour)
    return _svg(width * len(panels), 40 + rows * 18, body)
