"""Geometry for the inline SVG charts: numbers in, coordinates out; `report/svg.py` draws them.

Keeping the arithmetic here (not in Jinja) makes the charts testable and the
template a plain drawing. No JavaScript and no external library: the report
must open offline, years later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


#: The smallest size, in CSS pixels, that chart text may be rendered at.
MIN_TEXT_PX = 10.0
#: The narrowest a chart is ever drawn (the stylesheet's `svg.chart { min-width }`): below, its box scrolls.
NARROWEST_PX = 300
#: The default drawing width in SVG units (and the widest it is shown, in pixels).
WIDTH = 440
#: Average advance of a character, in ems, for the system sans-serif (used to fit and trim labels).
CHAR_EM = 0.56

def font_units(width: float, *, narrowest: float = NARROWEST_PX, min_px: float = MIN_TEXT_PX) -> float:
    """Text size in SVG units so that, drawn `narrowest` pixels wide, the text is still `min_px` pixels."""
    return max(min_px, math.ceil(min_px * width / narrowest * 10) / 10)


def rendered_px(font: float, width: float, shown_px: float) -> float:
    """The pixel size of `font`-unit text in a `width`-unit chart shown `shown_px` pixels wide."""
    return font * shown_px / width


def text_width(text: str, font: float) -> float:
    """Estimated width of `text` in units (no font metrics offline: a conservative average)."""
    return len(text) * CHAR_EM * font


def trim(text: str, font: float, room: float) -> str:
    """`text`, cut with '…' to fit `room` units."""
    fits = max(1, int(room / (CHAR_EM * font)))
    return text if len(text) <= fits else text[: max(1, fits - 1)] + "…"



def pct(x: float | None) -> str:
    """0.625 -> '62.5%'; None -> '–'."""
    return "–" if x is None else f"{100 * x:.1f}%"


def signed(x: float | None) -> str:
    """0.42 -> '+0.42'; None -> '–'."""
    return "–" if x is None else f"{x:+.2f}"


def points(x: float | None) -> str:
    """A difference of two rates in percentage points: +0.125 -> '+12.5 pts'; None -> '–'."""
    return "–" if x is None else f"{100 * x:+.1f} pts"


def field(obj: Any, name: str) -> Any:
    """`obj[name]` for a dict, `obj.name` otherwise; None when absent (report dicts and typed records alike)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def ci_chart(rows: Sequence[dict[str, Any]], *, lo: float = 0.0, hi: float = 1.0, ref: float | None = 0.5,
             ticks: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), fmt: Callable[[float | None], str] = pct,
             width: float = WIDTH) -> dict[str, Any]:
    """Layout for a point-and-interval chart that reads on a phone.

    Each row is ``{"label": str, "interval": <interval, a dict or an object with estimate/low/high/trusted>}``.
    A row is two lines: its label (left) and value (right), then the interval drawn across the
    whole width, so nothing needs a label column and the chart stays `width` units wide whatever
    the labels. Text is `font_units(width)` units, never under 10 px at the narrowest size shown.
    An interval that is not trusted is drawn hollow, without its bar when it has no bounds, and
    labelled "cannot be trusted" so a reader never mistakes it for a finding.
    """
    font = font_units(width)
    pad = text_width(fmt(hi), font) / 2 + 2  # half a tick label at each end
    x0, x1 = round(pad, 2), round(width - pad, 2)
    span = (hi - lo) or 1.0
    row_h = font * 2.4
    top = font * 0.3

    def x(v: float) -> float:
        return round(x0 + (min(max(v, lo), hi) - lo) / span * (x1 - x0), 1)

    out_rows = []
    for i, row in enumerate(rows):
        ci = row["interval"]
        base = top + i * row_h
        est, low, high = field(ci, "estimate"), field(ci, "low"), field(ci, "high")
        trusted = bool(field(ci, "trusted"))
        has_est = isinstance(est, (int, float)) and math.isfinite(est)
        has_bar = low is not None and high is not None
        full = fmt(est) + (f" [{fmt(low)}, {fmt(high)}]" if has_bar else "")
        full = full if trusted else f"{fmt(est)} cannot be trusted"
        label = str(row["label"])
        room = (x1 - x0) - text_width(full, font) - font
        # Where label and value do not both fit, the value shrinks to the estimate: the bar shows the
        # bounds and the figure's table has them in full.
        text = full
        if text_width(label, font) > room:
            text = fmt(est) if trusted else f"{fmt(est)} untrusted"
            room = (x1 - x0) - text_width(text, font) - font
        out_rows.append({
            "y": round(base + font * 1.75, 1), "text_y": round(base + font, 1), "label": label,
            "shown_label": trim(label, font, max(room, font * 4)), "trusted": trusted,
            "est_x": x(est) if has_est else None,
            "low_x": x(low) if has_bar else None, "high_x": x(high) if has_bar else None,
            "text": text, "full_text": full,
        })
    axis_y = round(top + len(rows) * row_h, 1)
    return {
        "width": width, "height": round(axis_y + font * 1.5, 1), "font": font, "x0": x0, "x1": x1, "top": top,
        "ref_x": x(ref) if ref is not None else None,
        "ticks": [{"x": x(t), "text": fmt(t)} for t in ticks],
        "rows": out_rows, "axis_y": axis_y,
    }
