"""The SVG chart module: geometry and values of every chart kind, text size at phone width, escaping.

Charts are parsed as XML (each must be well-formed on its own) and their numbers
checked against the input: a bar's segments are as long as their counts, a heatmap
cell holds the pair's value, an interval sits where its bounds are, and the text
size keeps at least 10 px when the chart is shown at its narrowest.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from brie_bench.report import readings
from brie_bench.report.charts import NARROWEST_PX, ci_chart, font_units, rendered_px
from brie_bench.report.svg import (IntervalRow, PairAgreement, Series, Tally, agreement_figure, agreement_matrix,
                                   bar_layout, heat_layout, history_chart, history_layout, interval_figure,
                                   stacked_bars)

NS = {"s": "http://www.w3.org/2000/svg"}


def svgs(markup: str) -> list[ET.Element]:
    """Every <svg> element of a figure, parsed on its own."""
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", str(markup), flags=re.S)]


def smallest_px(svg: ET.Element, shown_px: float) -> float:
    """The smallest text of `svg`, in pixels, when the chart is shown `shown_px` wide."""
    width = float(svg.get("viewBox", "").split()[2])
    return rendered_px(float(svg.get("font-size", "0")), width, shown_px)


@pytest.mark.parametrize("width", [300, 440, 616, 900])
def test_text_stays_at_least_10px_when_a_chart_is_shown_at_its_narrowest(width: float) -> None:
    assert rendered_px(font_units(width), width, NARROWEST_PX) >= 10.0
    assert rendered_px(font_units(width), width, NARROWEST_PX) < 10.2  # and not needlessly larger


def test_every_chart_kind_keeps_10px_text_at_the_narrowest_size() -> None:
    figures = [
        stacked_bars([Tally("a", 3, 1, 1)], "bars"),
        agreement_figure(["x", "y"], [PairAgreement("x", "y", 10, 0.8, 0.6)], "agreement"),
        interval_figure(ci_chart([{"label": "a", "interval": {"estimate": .5, "low": .4, "high": .6,
                                                                "trusted": True}}]), "ci"),
        history_chart(["r1", "r2"], [Series("j", (IntervalRow("r1", .5, .4, .6), IntervalRow("r2", .6, .5, .7)))],
                      "history"),
    ]
    for fig in figures:
        found = svgs(fig)
        assert found
        for svg in found:
            assert svg.get("class") == "chart"
            assert smallest_px(svg, NARROWEST_PX) >= 10.0
            for t in svg.iter(f"{{{NS['s']}}}text"):
                assert t.get("font-size") is None and t.get("style") is None  # the root's size is the only one


def test_stacked_bar_segments_are_as_long_as_their_counts_on_one_scale() -> None:
    tallies = [Tally("s1 · marker", won=6, lost=2, tied=2), Tally("s2 · marker", won=1, lost=3, tied=0, invalid=1)]
    g = bar_layout(tallies, width=400)
    assert g.unit == pytest.approx((g.x1 - g.x0) / 10)  # the longest bar (10 comparisons) fills the width
    for t, row in zip(tallies, g.rows):
        assert [(s.kind, s.count) for s in row.segments] == [(k, getattr(t, k)) for k in ("won", "lost", "tied",
                                                                                            "invalid")
                                                             if getattr(t, k)]
        assert sum(s.width for s in row.segments) / g.unit == pytest.approx(t.total, abs=0.01)
        for a, b in zip(row.segments, row.segments[1:]):
            assert b.x == pytest.approx(a.x + a.width, abs=0.01)  # stacked end to end
    svg = svgs(stacked_bars(tallies, "t"))[0]
    rects = [r for r in svg.iter(f"{{{NS['s']}}}rect") if "seg" in (r.get("class") or "") and r.find("s:title", NS)
             is not None]
    assert [r.find("s:title", NS).text for r in rects] == ["won: 6", "lost: 2", "tied: 2", "won: 1", "lost: 3",
                                                          "invalid: 1"]
    drawn = bar_layout(tallies)  # the default width, as drawn
    assert sum(float(r.get("width", "0")) for r in rects[:3]) == pytest.approx(drawn.x1 - drawn.x0, abs=0.05)
    assert sum(float(r.get("width", "0")) for r in rects[3:]) == pytest.approx(5 * drawn.unit, abs=0.05)


def test_stacked_bars_keep_their_table_one_click_away() -> None:
    fig = str(stacked_bars([Tally("philosophy · marker", 4, 1, 0)], "t"))
    table = fig[fig.index("<details"):]
    assert "<summary>Data table</summary>" in table
    assert re.search(r"<td>philosophy · marker</td><td>4</td><td>1</td><td>0</td><td>0</td><td>5</td>", table)


def test_heatmap_cells_hold_each_pair_kappa_and_percent_people_marked() -> None:
    names = ["gpt", "claude", "ann"]
    pairs = [PairAgreement("gpt", "claude", 40, 0.75, 0.5), PairAgreement("gpt", "ann", 20, 0.9, 0.8),
             PairAgreement("claude", "ann", 20, 0.6, None)]
    kappa = agreement_matrix(names, pairs, "kappa")
    assert kappa == [[None, 0.5, 0.8], [0.5, None, None], [0.8, None, None]]
    assert agreement_matrix(names, pairs, "percent")[2][1] == 0.6
    g = heat_layout(names, kappa, lo=0.0, hi=1.0, fmt=lambda v: "–" if v is None else f"{v:.2f}")
    cells = {(c.row, c.col): c for c in g.cells}
    assert len(cells) == 9 and cells[(0, 2)].text == "0.80" and cells[(2, 0)].text == "0.80"
    assert cells[(1, 1)].shade == "hmself" and cells[(1, 2)].shade == "hmnone"
    assert cells[(0, 2)].shade == "hm4" and cells[(0, 1)].shade == "hm2"
    assert cells[(0, 1)].x + g.size == pytest.approx(cells[(0, 2)].x)
    fig = str(agreement_figure(names, pairs, "Agreement", people=["ann"]))
    kmap, pmap = svgs(fig)
    assert "0.80" in ET.tostring(kmap, encoding="unicode") and "90%" in ET.tostring(pmap, encoding="unicode")
    assert "3 ann (person)" in fig
    # The switch needs no script: two radio buttons, the first checked.
    assert len(re.findall(r'<input type="radio"', fig)) == 2 and "checked" in fig and "<script" not in fig


def test_a_heatmap_of_many_judges_grows_wider_instead_of_dropping_its_values() -> None:
    names = [f"judge-{i}" for i in range(9)]
    pairs = [PairAgreement(a, b, 10, 0.7, 0.4) for i, a in enumerate(names) for b in names[i + 1:]]
    fig = str(agreement_figure(names, pairs, "many"))
    kmap = svgs(fig)[0]
    width = float(kmap.get("viewBox", "").split()[2])
    assert width > 440 and kmap.get("data-wide") is not None  # never shrunk: its box scrolls instead
    values = [t for t in kmap.iter(f"{{{NS['s']}}}text") if "cellval" in (t.get("class") or "")]
    assert len(values) == 9 * 8 and {t.text for t in values} == {"0.40"}
    assert rendered_px(float(kmap.get("font-size", "0")), width, width) >= 10.0


def test_interval_rows_sit_at_their_bounds_and_untrusted_ones_say_so() -> None:
    c = ci_chart([{"label": "a", "interval": {"estimate": 0.5, "low": 0.25, "high": 0.75, "trusted": True}},
                  {"label": "b", "interval": {"estimate": 0.9, "low": None, "high": None, "trusted": False}}])
    a, b = c["rows"]
    mid = (c["x0"] + c["x1"]) / 2
    assert a["est_x"] == pytest.approx(mid, abs=0.1)
    assert a["high_x"] - a["est_x"] == pytest.approx(a["est_x"] - a["low_x"], abs=0.1)
    assert c["ref_x"] == pytest.approx(mid, abs=0.1)
    assert b["low_x"] is None and "cannot be trusted" in b["text"]
    svg = str(interval_figure(c, "t"))
    assert svg.count('class="est untrusted"') == 1 and svg.count('class="bar"') == 1


def test_interval_rows_accept_objects_as_well_as_dicts() -> None:
    row = IntervalRow("x", 0.6, 0.5, 0.7, True)
    c = ci_chart([{"label": "x", "interval": row}])
    assert c["rows"][0]["text"] == "60.0% [50.0%, 70.0%]"


def test_long_labels_are_trimmed_never_overflowing() -> None:
    c = ci_chart([{"label": "a very long section name · a judge with a long name · candidate",
                   "interval": {"estimate": 0.5, "low": 0.25, "high": 0.75, "trusted": True}}])
    row = c["rows"][0]
    assert row["shown_label"].endswith("…") and row["text"] == "50.0%"  # bounds stay in the table
    assert row["full_text"] == "50.0% [25.0%, 75.0%]"
    assert "<title>50.0% [25.0%, 75.0%]</title>" in str(interval_figure(c, "t"))


def test_history_puts_runs_left_to_right_and_win_rates_bottom_to_top() -> None:
    series = [Series("marker", (IntervalRow("r1", 0.5, 0.4, 0.6), None, IntervalRow("r3", 1.0, 0.9, 1.0))),
              Series("fixed", (IntervalRow("r1", 0.2, 0.1, 0.3), IntervalRow("r2", 0.3, 0.2, 0.4), None))]
    g = history_layout(3, series)
    marker, fixed = g["lines"]
    assert [round(x) for x, _ in marker["line"]] == [round(g["xs"][0]), round(g["xs"][2])]  # the gap is skipped
    assert marker["line"][1][1] == pytest.approx(g["top"], abs=0.1)  # 100% at the top
    assert marker["line"][0][1] == pytest.approx(g["y"][0.5])
    assert len(marker["band"]) == 4 and fixed["line"][0][1] > marker["line"][0][1]  # 20% below 50%
    fig = str(history_chart(["r1", "r2", "r3"], series, "h"))
    assert fig.count("<polyline") == 2 and fig.count("<polygon") == 2
    assert "<td>3</td><td>r3</td><td>marker</td><td>100.0% [90.0%, 100.0%]</td>" in fig


def test_names_are_escaped_in_every_chart() -> None:
    evil = "<script>alert(1)</script>"
    for fig in (stacked_bars([Tally(evil, 1, 0, 0)], evil),
                agreement_figure([evil, "b"], [PairAgreement(evil, "b", 1, 1.0, 1.0)], evil),
                history_chart([evil], [Series(evil, (IntervalRow(evil, 0.5, 0.4, 0.6),))], evil)):
        assert "<script>" not in str(fig) and "&lt;script&gt;" in str(fig)
        svgs(fig)  # still well-formed


def test_readings_say_what_the_figure_shows() -> None:
    assert readings.sections([Tally("a", 4, 0, 0), Tally("b", 1, 3, 0)]).startswith("Best: a, won 4 of 4")
    assert "least: x and z agree on 50.0%" in readings.agreement(
        [PairAgreement("x", "y", 10, 0.9, 0.8), PairAgreement("x", "z", 10, 0.5, 0.0)])
    rows = [IntervalRow("up", 0.7, 0.6, 0.8), IntervalRow("flat", 0.5, 0.3, 0.7), IntervalRow("?", 0.9, None, None,
                                                                                            False)]
    assert readings.beyond(rows, 0.5) == "1 of 2 trusted intervals exclude 50.0% (above 50.0%: up)."
    assert "+40.0 points" in readings.length(["m"], [IntervalRow("m", 0.8, 0.6, 0.9)],
                                             [IntervalRow("m", 0.4, 0.2, 0.6)])
