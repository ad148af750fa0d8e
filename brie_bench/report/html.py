"""Render a report (and the run's comparisons) as one self-contained HTML file.

Jinja templates ship as package data with autoescape ON, so every name and text
from the store is escaped where the server renders it. The comparison list is
embedded as JSON (Jinja's `tojson` escapes <, >, & and ' so no answer can close
the script element) and drawn in the browser with `textContent`, never
`innerHTML`: model output is untrusted and must always render as text. Nothing
is loaded from the network; CSS, charts (SVG) and script are inline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from brie_bench.report.charts import ci_chart, pct, points, signed
from brie_bench.report.items import comparison_items
from brie_bench.report.majority import majority_note
from brie_bench.report.rows import RunData
from brie_bench.report.schema import Interval, Report

#: Comparisons per page in the browsable list (the reader can change it; also `#per=N` in the URL).
PAGE_SIZE = 25


def fmt_p(p: float | None) -> str:
    """A p-value for people: '<0.001', '0.034', or '–'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_ci(ci: Interval | Mapping[str, Any] | None, fmt: str = "pct") -> str:
    """'62.5% [48.0%, 75.1%]' (`fmt` "pct"), '+4.0 pts [...]' ("points", a difference of rates), '+0.42 [...]'
    ("signed", a score difference); or the estimate with 'cannot be trusted'."""
    if not ci:
        return "–"
    f = {"pct": pct, "points": points}.get(fmt, signed)
    # The run-vs-run page still passes its intervals as data (report.compare); the single-run report, records.
    if isinstance(ci, Mapping):
        estimate, low, high = ci.get("estimate"), ci.get("low"), ci.get("high")
    else:
        estimate, low, high = ci.estimate, ci.low, ci.high
    if low is None or high is None:
        return f"{f(estimate)} (no interval)"
    return f"{f(estimate)} [{f(low)}, {f(high)}]"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja environment: package templates, autoescape always on, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("brie_bench.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, signed=signed, p=fmt_p, num=fmt_num, ci=fmt_ci, pretty_json=pretty_json)
    env.globals.update(ci_chart=ci_chart, majority_note=majority_note)
    from brie_bench.report import power_text

    env.globals.update(power_text=power_text)
    from brie_bench.report import readings, svg  # the charts and their one-line readings (templates call them)

    env.globals.update(svg=svg, readings=readings)
    return env


def _charts(report: Report) -> dict[str, Any]:
    """Chart layouts for the template (headline, sections, bias, criteria).

    `charts.ci_chart` reads each interval as data (its JSON form): the geometry knows nothing of the records.
    """
    multi_candidate = len({j.candidate for j in report.judges}) > 1

    def who(judge: str, candidate: str) -> str:
        return f"{judge} · {candidate}" if multi_candidate else judge

    def row(label: str, ci: Interval) -> dict[str, Any]:
        return {"label": label, "interval": ci.to_json_dict()}

    headline = [row(who(j.judge, j.candidate), j.ci95) for j in report.judges]
    for ag in (ag for ag in report.agreement if majority_note(ag) is None):  # 3+ voters (majority.py)
        label = "majority vote" + (f" · {ag.candidate}" if multi_candidate else "")
        headline.append(row(label, ag.majority_vote.ci95))
    sections = [row(f"{s.section} · {who(e.judge, e.candidate)}", e.ci95) for s in report.sections for e in s.judges]
    label_bias = [row(who(b.judge, b.candidate), b.label.label_a_share) for b in report.bias]
    position = [row(who(b.judge, b.candidate), b.position.first_shown_share) for b in report.bias]
    lc = [row(who(j.judge, j.candidate), j.length_controlled) for j in report.judges]
    criteria = [row(f"{c.criterion} · {who(c.judge, c.candidate)}", c.difference) for c in report.criteria]
    return {
        "headline": ci_chart(headline) if headline else None,
        "sections": ci_chart(sections) if sections else None,
        "label_bias": ci_chart(label_bias) if label_bias else None,
        "position": ci_chart(position) if position else None,
        "length_controlled": ci_chart(lc) if lc else None,
        "criteria": ci_chart(criteria, lo=-4.0, hi=4.0, ref=0.0, ticks=(-4, -2, 0, 2, 4), fmt=signed)
        if criteria else None,
    }


def render_html(report: Report, data: RunData, *, page_size: int = PAGE_SIZE) -> str:
    """The full HTML document for one run.

    The page's only script is ours; its SHA-256 goes into a Content-Security-Policy
    that also forbids every network fetch, so even a markup bug elsewhere could not
    run a script that came from an answer.
    """
    env = environment()
    script = env.get_template("list.js.j2").render(page_size=int(page_size))
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return env.get_template("report.html.j2").render(
        report=report, charts=_charts(report), items=comparison_items(data), page_size=int(page_size),
        script=Markup(script), script_hash=script_hash)


def write_html(report: Report, data: RunData, path: str | Path, *, page_size: int = PAGE_SIZE,
               db: str | Path | None = None, follow_symlinks: bool = False) -> Path:
    """Render and write the report atomically (`brie_bench.atomic`), creating the folder; returns the path written.

    `db` and `follow_symlinks` are the atomic writer's refusals: never over the
    database, never through a link unless asked.
    """
    from brie_bench.atomic import check_target, write_text

    out = Path(path)
    check_target(out, db=db, follow_symlinks=follow_symlinks)  # refused before the (long) rendering
    write_text(out, render_html(report, data, page_size=page_size), db=db, follow_symlinks=follow_symlinks)
    return out
