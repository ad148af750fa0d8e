"""Inline SVG charts for every HTML page: plain numbers in, escaped markup out.

One module draws every chart (report, static comparison, viewer) so that they
share one look and one rule for text size: a chart is drawn `width` units wide
and the stylesheet never lets it shrink below `NARROWEST_PX` (its box scrolls
instead), so text of `font_units(width)` units is never rendered below
`MIN_TEXT_PX` pixels, on a phone included. No JavaScript, no library, nothing
fetched: the pages must open offline, years later.

Colours are CSS classes from the one stylesheet (`templates/_style.css`), never
inline styles, so a page's Content-Security-Policy can forbid style attributes.
Each figure keeps the numbers it draws in a table one click away (`<details>`),
for screen readers and for copying.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from markupsafe import Markup, escape

from brie_bench.report.charts import (MIN_TEXT_PX, NARROWEST_PX, WIDTH, font_units, pct, rendered_px, signed,
                                      text_width, trim)

_ids = count(1)


def _n(x: float) -> str:
    """A coordinate, short: 12.0 -> '12', 12.345 -> '12.3'."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg_open(cls: str, width: float, height: float, font: float, title: str, *, wide: bool = False) -> str:
    """The root element; `wide`: drawn wider than the text-size rule assumes, so never shrunk (its box scrolls)."""
    extra = ' data-wide="1"' if wide else ""
    return (f'<svg class="chart" data-chart="{cls}"{extra} role="img" aria-label="{escape(title)}" width="{_n(width)}" '
            f'height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" font-size="{_n(font)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start", full: str | None = None) -> str:
    tip = f"<title>{escape(full)}</title>" if full and full != text else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" class="{cls}" text-anchor="{anchor}">{tip}{escape(text)}</text>')


def data_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], summary: str = "Data table") -> Markup:
    """The chart's numbers as a table behind a disclosure (scrolls inside its own box)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Markup(f'<details class="chart-data"><summary>{escape(summary)}</summary><div class="scroll">'
                  f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details>')


# ---------------------------------------------------------------- stacked won / lost / tied bars

@dataclass(frozen=True)
class Tally:
    """One bar: a label and its counts of won, lost, tied and invalid comparisons."""

    label: str
    won: int
    lost: int
    tied: int
    invalid: int = 0

    @property
    def total(self) -> int:
        return self.won + self.lost + self.tied + self.invalid


@dataclass(frozen=True)
class Segment:
    """One coloured piece of a bar, in SVG units."""

    kind: str  # "won", "lost", "tied" or "invalid"
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class BarRow:
    label: str
    y: float
    segments: tuple[Segment, ...]
    total: int


@dataclass(frozen=True)
class BarLayout:
    width: float
    height: float
    font: float
    x0: float
    x1: float
    bar_height: float
    unit: float  # units per comparison: every bar is drawn to the same scale
    rows: tuple[BarRow, ...]


KINDS = ("won", "lost", "tied", "invalid")


def bar_layout(tallies: Sequence[Tally], *, width: float = WIDTH) -> BarLayout:
    """Geometry: one bar per tally, each comparison the same length (`unit`), so a bar's length is its count."""
    font = font_units(width)
    x0, x1 = 4.0, width - 4.0
    most = max((t.total for t in tallies), default=0)
    unit = (x1 - x0) / most if most else 0.0
    bar_h = round(font * 1.3, 1)
    row_h = font * 1.4 + bar_h + 8
    top = font * 2.2  # the legend
    rows = []
    for i, t in enumerate(tallies):
        y = top + i * row_h
        x = x0
        segs = []
        for kind in KINDS:
            n = int(getattr(t, kind))
            if n:
                segs.append(Segment(kind, n, round(x, 2), round(n * unit, 2)))
                x += n * unit
        rows.append(BarRow(t.label, y, tuple(segs), t.total))
    return BarLayout(width, round(top + len(tallies) * row_h + 4, 1), font, x0, x1, bar_h, unit, tuple(rows))


def stacked_bars(tallies: Sequence[Tally], title: str, *, width: float = WIDTH) -> Markup:
    """Won / lost / tied (/ invalid) per row as one stacked bar, counts written where they fit, and the table."""
    if not tallies:
        return Markup("")
    g = bar_layout(tallies, width=width)
    f = g.font
    out = [_svg_open("bars", g.width, g.height, f, title)]
    x = g.x0
    for kind in KINDS:  # legend
        if kind == "invalid" and not any(t.invalid for t in tallies):
            continue
        out.append(f'<rect x="{_n(x)}" y="{_n(f * 0.5)}" width="{_n(f * 0.8)}" height="{_n(f * 0.8)}" class="seg {kind}"/>')
        out.append(_text(x + f, f * 1.2, kind, "legend"))
        x += f * 1.6 + text_width(kind, f)
    for r in g.rows:
        total = f"{r.total}"
        out.append(_text(g.x0, r.y + f, trim(r.label, f, g.x1 - g.x0 - text_width(total, f) - f), "rowlabel",
                         full=r.label))
        out.append(_text(g.x1, r.y + f, total, "val", "end"))
        by = r.y + f * 1.4
        for s in r.segments:
            out.append(f'<rect x="{_n(s.x)}" y="{_n(by)}" width="{_n(s.width)}" height="{_n(g.bar_height)}" '
                       f'class="seg {s.kind}"><title>{s.kind}: {s.count}</title></rect>')
            if s.width >= text_width(str(s.count), f) + 4:
                out.append(_text(s.x + s.width / 2, by + g.bar_height * 0.78, str(s.count), f"segval {s.kind}",
                                 "middle"))
    out.append("</svg>")
    table = data_table(("", "won", "lost", "tied", "invalid", "total"),
                       [(t.label, t.won, t.lost, t.tied, t.invalid, t.total) for t in tallies])
    return Markup('<figure class="chart-figure">' + "".join(out)) + table + Markup("</figure>")


# ---------------------------------------------------------------- agreement heatmap

@dataclass(frozen=True)
class PairAgreement:
    """Two judges' agreement over the comparisons both judged validly."""

    judge_a: str
    judge_b: str
    n: int
    percent: float | None
    kappa: float | None


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    x: float
    y: float
    size: float
    value: float | None
    text: str
    shade: str  # CSS class: "hm0".."hm4", "hmnone" or "hmself"


@dataclass(frozen=True)
class HeatLayout:
    width: float
    height: float
    font: float
    x0: float
    y0: float
    size: float
    labels: tuple[str, ...]
    cells: tuple[Cell, ...]


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def agreement_matrix(names: Sequence[str], pairs: Sequence[PairAgreement], measure: str) -> list[list[float | None]]:
    """Symmetric judges × judges matrix of `measure` ("kappa" or "percent"); the diagonal is None."""
    index = {name: i for i, name in enumerate(names)}
    m: list[list[float | None]] = [[None] * len(names) for _ in names]
    for p in pairs:
        if p.judge_a in index and p.judge_b in index:
            v = _finite(p.kappa if measure == "kappa" else p.percent)
            m[index[p.judge_a]][index[p.judge_b]] = m[index[p.judge_b]][index[p.judge_a]] = v
    return m


def _shade(v: float | None, lo: float, hi: float) -> str:
    if v is None:
        return "hmnone"
    t = (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0)
    return f"hm{min(4, int(t * 5))}"


def heat_layout(names: Sequence[str], matrix: Sequence[Sequence[float | None]], *, lo: float, hi: float,
                fmt: Callable[[float | None], str], width: float = WIDTH) -> HeatLayout:
    """Square cells, rows labelled '1 name', columns by number, each cell's value written in it."""
    font = font_units(width)
    n = len(names)
    labels = tuple(f"{i + 1} {name}" for i, name in enumerate(names))
    label_w = min(width * 0.42, max((text_width(s, font) for s in labels), default=0) + font * 0.6)
    # A cell always holds its value ("−0.00"); with many judges the map grows wider than `width`
    # and is then never shrunk (its box scrolls), so its text stays as large as every chart's.
    size = max(text_width("−0.00", font) + 6, min(font * 4.5, (width - label_w - 4) / max(n, 1)))
    width = max(width, round(label_w + n * size + 4, 1))
    x0, y0 = label_w, font * 1.6
    cells = []
    for r in range(n):
        for c in range(n):
            v = matrix[r][c]
            cells.append(Cell(r, c, round(x0 + c * size, 2), round(y0 + r * size, 2), round(size, 2), v,
                              "self" if r == c else fmt(v), "hmself" if r == c else _shade(v, lo, hi)))
    return HeatLayout(width, round(y0 + n * size + 4, 1), font, x0, y0, size, labels, tuple(cells))


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], title: str, *, lo: float, hi: float,
            fmt: Callable[[float | None], str], width: float = WIDTH) -> Markup:
    """One judges × judges heatmap; the value is written in each cell, so colour is never needed to read it."""
    g = heat_layout(names, matrix, lo=lo, hi=hi, fmt=fmt, width=width)
    f = g.font
    out = [_svg_open("heatmap", g.width, g.height, f, title, wide=g.width > width)]
    for i, label in enumerate(g.labels):
        out.append(_text(g.x0 + (i + 0.5) * g.size, f * 1.2, str(i + 1), "tick", "middle"))
        out.append(_text(g.x0 - f * 0.4, g.y0 + (i + 0.5) * g.size + f * 0.35, trim(label, f, g.x0 - f * 0.6),
                         "rowlabel", "end", full=label))
    for c in g.cells:
        out.append(f'<rect x="{_n(c.x)}" y="{_n(c.y)}" width="{_n(c.size - 2)}" height="{_n(c.size - 2)}" '
                   f'class="cell {c.shade}"><title>{escape(g.labels[c.row])} · {escape(g.labels[c.col])}: '
                   f'{escape(c.text)}</title></rect>')
        if c.row != c.col:
            out.append(_text(c.x + (c.size - 2) / 2, c.y + (c.size - 2) / 2 + f * 0.35, c.text,
                             f"cellval {c.shade}", "middle"))
    out.append("</svg>")
    return Markup("".join(out))


def _kappa(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def agreement_figure(names: Sequence[str], pairs: Sequence[PairAgreement], title: str, *,
                     people: Sequence[str] = (), width: float = WIDTH) -> Markup:
    """Two heatmaps (Cohen's κ and percent agreement) with a CSS-only switch between them, and the table.

    Without CSS (or in a reader) both maps and the table are simply there; no script is needed.
    People (`human` judges) are marked "(person)".
    """
    if len(names) < 2:
        return Markup("")
    shown = [f"{n} (person)" if n in set(people) else n for n in names]
    uid = f"agr{next(_ids)}"
    kappa = heatmap(shown, agreement_matrix(names, pairs, "kappa"), f"{title}: Cohen's kappa", lo=0.0, hi=1.0,
                    fmt=_kappa, width=width)
    percent = heatmap(shown, agreement_matrix(names, pairs, "percent"), f"{title}: percent agreement", lo=0.5,
                      hi=1.0, fmt=lambda v: "–" if v is None else f"{100 * v:.0f}%", width=width)
    table = data_table(("judge", "judge", "shared comparisons", "agree", "Cohen's κ"),
                       [(p.judge_a, p.judge_b, p.n, pct(_finite(p.percent)), _kappa(_finite(p.kappa)))
                        for p in pairs])
    return Markup(
        f'<figure class="chart-figure switch">'
        f'<input type="radio" name="{uid}" id="{uid}-k" class="show-k" checked>'
        f'<label for="{uid}-k">Cohen\'s κ</label>'
        f'<input type="radio" name="{uid}" id="{uid}-p" class="show-p">'
        f'<label for="{uid}-p">percent agreement</label>'
        f'<div class="pane pane-k">{kappa}</div><div class="pane pane-p">{percent}</div>{table}</figure>')


# ---------------------------------------------------------------- point and interval rows

@dataclass(frozen=True)
class IntervalRow:
    """One estimate with its interval; `trusted` False draws it hollow and says so."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    trusted: bool = True


def interval_svg(c: dict[str, Any] | None, title: str) -> Markup:
    """Draw a `charts.ci_chart` layout: label and value on one line, the interval on the full width below."""
    if not c:
        return Markup("")
    f = c["font"]
    out = [_svg_open("intervals", c["width"], c["height"], f, title)]
    for t in c["ticks"]:
        out.append(f'<line x1="{_n(t["x"])}" x2="{_n(t["x"])}" y1="{_n(c["top"])}" y2="{_n(c["axis_y"])}" '
                   f'class="grid"/>')
        out.append(_text(t["x"], c["axis_y"] + f * 1.1, t["text"], "tick", t.get("anchor", "middle")))
    if c["ref_x"] is not None:
        out.append(f'<line x1="{_n(c["ref_x"])}" x2="{_n(c["ref_x"])}" y1="{_n(c["top"])}" '
                   f'y2="{_n(c["axis_y"])}" class="ref"/>')
    for r in c["rows"]:
        untrusted = "" if r["trusted"] else " untrusted"
        out.append(_text(c["x0"], r["text_y"], r["shown_label"], "rowlabel", full=r["label"]))
        out.append(_text(c["x1"], r["text_y"], r["text"], "val" + ("" if r["trusted"] else " warn"), "end",
                         full=r.get("full_text")))
        if r["low_x"] is not None:
            out.append(f'<line x1="{_n(r["low_x"])}" x2="{_n(r["high_x"])}" y1="{_n(r["y"])}" y2="{_n(r["y"])}" '
                       f'class="bar{untrusted}"/>')
        if r["est_x"] is not None:
            out.append(f'<circle cx="{_n(r["est_x"])}" cy="{_n(r["y"])}" r="{_n(f * 0.36)}" class="est{untrusted}"/>')
    out.append("</svg>")
    return Markup("".join(out))


def interval_figure(c: dict[str, Any] | None, title: str, *, value: str = "estimate [95% CI]") -> Markup:
    """`interval_svg` and its table (label, the text drawn beside the point)."""
    if not c:
        return Markup("")
    table = data_table(("", value), [(r["label"], r.get("full_text", r["text"])) for r in c["rows"]])
    return Markup(f'<figure class="chart-figure">{interval_svg(c, title)}{table}</figure>')


# ---------------------------------------------------------------- history: one line per judge over runs

@dataclass(frozen=True)
class Series:
    """One judge's estimate per run (None where the run has no such judge or no estimate)."""

    label: str
    points: tuple[IntervalRow | None, ...]


def history_layout(n_runs: int, series: Sequence[Series], *, width: float = WIDTH,
                   height_ratio: float = 0.6) -> dict[str, Any]:
    """Geometry: runs left to right (oldest first), win rate 0–100% bottom to top, a band per interval."""
    font = font_units(width)
    legend_h = font * 1.5 * len(series)
    x0, x1 = font * 3.2, width - font * 1.2
    top = legend_h + font * 0.8
    plot_h = width * height_ratio
    bottom = top + plot_h

    def x(i: int) -> float:
        return round(x0 + (x1 - x0) * (0.5 if n_runs == 1 else i / (n_runs - 1)), 2)

    def y(v: float) -> float:
        return round(bottom - min(max(v, 0.0), 1.0) * plot_h, 2)

    lines = []
    for k, s in enumerate(series):
        pts = [(i, p) for i, p in enumerate(s.points) if p is not None and p.estimate is not None]
        band = [(i, p) for i, p in pts if p.low is not None and p.high is not None]
        lines.append({
            "label": s.label, "cls": f"s{k % 6}", "legend_y": round(font * 1.5 * (k + 1) - font * 0.2, 2),
            "line": [(x(i), y(float(p.estimate))) for i, p in pts],  # type: ignore[arg-type]
            "band": [(x(i), y(float(p.high))) for i, p in band] +  # type: ignore[arg-type]
                    [(x(i), y(float(p.low))) for i, p in reversed(band)],  # type: ignore[arg-type]
            "dots": [(x(i), y(float(p.estimate)), p.trusted) for i, p in pts],  # type: ignore[arg-type]
        })
    return {"width": width, "height": round(bottom + font * 2.0, 1), "font": font, "x0": x0, "x1": x1,
            "top": top, "bottom": bottom, "y": {v: y(v) for v in (0.0, 0.25, 0.5, 0.75, 1.0)},
            "xs": [x(i) for i in range(n_runs)], "lines": lines}


def history_chart(runs: Sequence[str], series: Sequence[Series], title: str) -> Markup:
    """Win rate per run of one suite, one line (and interval band) per judge; runs numbered 1.. oldest first."""
    if not runs or not series:
        return Markup("")
    g = history_layout(len(runs), series)
    f = g["font"]
    out = [_svg_open("history", g["width"], g["height"], f, title)]
    for v, yy in g["y"].items():
        out.append(f'<line x1="{_n(g["x0"])}" x2="{_n(g["x1"])}" y1="{_n(yy)}" y2="{_n(yy)}" '
                   f'class="{"ref" if v == 0.5 else "grid"}"/>')
        out.append(_text(g["x0"] - f * 0.3, yy + f * 0.35, f"{100 * v:.0f}%", "tick", "end"))
    every = max(1, math.ceil(len(runs) * text_width("99", f) * 1.6 / (g["x1"] - g["x0"])))
    for i, xx in enumerate(g["xs"]):
        if i % every == 0 or i == len(runs) - 1:
            out.append(_text(xx, g["bottom"] + f * 1.2, str(i + 1), "tick", "middle", full=runs[i]))
    for ln in g["lines"]:
        if len(ln["band"]) >= 2:
            pts = " ".join(f"{_n(a)},{_n(b)}" for a, b in ln["band"])
            out.append(f'<polygon points="{pts}" class="band {ln["cls"]}"/>')
        if len(ln["line"]) >= 2:
            pts = " ".join(f"{_n(a)},{_n(b)}" for a, b in ln["line"])
            out.append(f'<polyline points="{pts}" class="line {ln["cls"]}"/>')
        for a, b, trusted in ln["dots"]:
            out.append(f'<circle cx="{_n(a)}" cy="{_n(b)}" r="{_n(f * 0.3)}" '
                       f'class="est {ln["cls"]}{"" if trusted else " untrusted"}"/>')
        ly = ln["legend_y"]
        out.append(f'<line x1="{_n(g["x0"])}" x2="{_n(g["x0"] + f * 1.6)}" y1="{_n(ly - f * 0.35)}" '
                   f'y2="{_n(ly - f * 0.35)}" class="line {ln["cls"]}"/>')
        out.append(_text(g["x0"] + f * 2.1, ly, trim(ln["label"], f, g["x1"] - g["x0"] - f * 2.2), "legend",
                         full=ln["label"]))
    out.append("</svg>")
    rows = []
    for i, run in enumerate(runs):
        for s in series:
            p = s.points[i]
            if p is not None:
                bounds = f" [{pct(p.low)}, {pct(p.high)}]" if p.low is not None and p.high is not None else ""
                rows.append((i + 1, run, s.label, pct(p.estimate) + bounds + ("" if p.trusted else " (not trusted)")))
    return Markup(f'<figure class="chart-figure">{"".join(out)}'
                  f'{data_table(("#", "run", "judge", "win rate [95% CI]"), rows)}</figure>')


__all__ = ["MIN_TEXT_PX", "NARROWEST_PX", "WIDTH", "Cell", "IntervalRow", "PairAgreement", "Series", "Tally",
           "agreement_figure", "agreement_matrix", "bar_layout", "data_table", "font_units", "heat_layout",
           "heatmap", "history_chart", "history_layout", "interval_figure", "interval_svg", "rendered_px",
           "signed", "stacked_bars", "text_width", "trim"]
