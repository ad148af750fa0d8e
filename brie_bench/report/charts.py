"""Geometry for the inline SVG charts: numbers in, coordinates out; the template draws them.

Keeping the arithmetic here (not in Jinja) makes the charts testable and the
template a plain drawing. No JavaScript and no external library: the report
must open offline, years later.
"""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable, Sequence


def pct(x: float | None) -> str:
    """0.625 -> '62.5%'; None -> '–'."""
    return "–" if x is None else f"{100 * x:.1f}%"


def signed(x: float | None) -> str:
    """0.42 -> '+0.42'; None -> '–'."""
    return "–" if x is None else f"{x:+.2f}"


def points(x: float | None) -> str:
    """A difference of two rates in percentage points: +0.125 -> '+12.5 pts'; None -> '–'."""
    return "–" if x is None else f"{100 * x:+.1f} pts"


def ci_chart(rows: Sequence[dict[str, Any]], *, lo: float = 0.0, hi: float = 1.0, ref: float | None = 0.5,
             ticks: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), fmt: Callable[[float | None], str] = pct,
             width: int = 860, label_width: int = 210, row_height: int = 28) -> dict[str, Any]:
    """Layout for a horizontal point-and-interval chart.

    Each row is ``{"label": str, "interval": <interval dict from model.interval_dict>}``.
    An interval that is not trusted is drawn hollow, without its bar when it has no
    bounds, and labelled "cannot be trusted" so a reader never mistakes it for a finding.
    """
    x0, x1 = label_width, width - 330  # room on the right for "62.5% cannot be trusted" and the like
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return round(x0 + (min(max(v, lo), hi) - lo) / span * (x1 - x0), 1)

    out_rows = []
    for i, row in enumerate(rows):
        ci = row["interval"]
        y = 24 + i * row_height
        est, low, high = ci.get("estimate"), ci.get("low"), ci.get("high")
        has_est = est is not None and math.isfinite(est)
        has_bar = low is not None and high is not None
        text = fmt(est) + (f" [{fmt(low)}, {fmt(high)}]" if has_bar else "")
        out_rows.append({
            "y": y, "label": row["label"], "trusted": bool(ci.get("trusted")),
            "est_x": x(est) if has_est else None,
            "low_x": x(low) if has_bar else None, "high_x": x(high) if has_bar else None,
            "text": text if ci.get("trusted") else f"{fmt(est)} cannot be trusted",
        })
    return {
        "width": width, "height": 24 + len(rows) * row_height + 10, "x0": x0, "x1": x1,
        "ref_x": x(ref) if ref is not None else None,
        "ticks": [{"x": x(t), "text": fmt(t)} for t in ticks],
        "rows": out_rows, "axis_y": 24 + len(rows) * row_height - 8,
    }
