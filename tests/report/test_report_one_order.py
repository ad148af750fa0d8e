"""One judge order, one name for sections, and a majority vote only where it says something.

Every renderer (terminal, Markdown, HTML) lists judges in one order (by name, as the stored
suite lists them) in the headline, in every section and in the agreement, whichever verdicts
a section lacks; the section table
is "Per section" everywhere; the majority-vote row appears only with three or more voting
judges (with two, every disagreement is a tie) and the agreement says why otherwise.
"""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from brie_bench.report.html import render_html
from brie_bench.report.markdown import render_markdown
from brie_bench.report.model import build_report_from_data
from brie_bench.report.rows import load_run
from brie_bench.report.terminal import print_report
from brie_bench.store import Store
from helpers import run_suite, scripted_suite, write_yaml

JUDGES = ["zeta", "alpha", "mid"]  # as the suite names them
ORDER = sorted(JUDGES)  # as the store keeps them, and every table shows them


def _run(tmp: Path, judges: list[str]) -> Path:
    data = scripted_suite(judges={name: {"type": "marker"} for name in judges},
                          sections=[{"name": "first", "prompts": [f"First question {i}?" for i in range(3)]},
                                    {"name": "second", "prompts": [f"Second question {i}?" for i in range(3)]}])
    db = tmp / "r.db"
    assert run_suite(write_yaml(tmp / "suite.yaml", data), db) == 0
    return db


def _render(db: Path) -> tuple[dict[str, Any], str, str, str]:
    data = load_run(Store(db, readonly=True))
    report = build_report_from_data(data)
    console = Console(record=True, width=200, file=io.StringIO())
    print_report(console, report)
    return report.to_json_dict(), console.export_text(), render_markdown(report), render_html(report, data)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = _run(tmp_path_factory.mktemp("three"), JUDGES)
    # "alpha" loses its verdicts on the second section's first prompt, so it is first seen last there
    # (the old first-seen order put it last in that section only).
    conn = sqlite3.connect(db)
    with conn:
        gone = conn.execute("DELETE FROM judgments WHERE judge='alpha' AND section='second' AND prompt_id="
                            "(SELECT MIN(prompt_id) FROM judgments WHERE section='second')").rowcount
    conn.close()
    assert gone >= 1
    return db


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("two"), ["zeta", "alpha"])


def _judge_rows(text: str, pattern: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := re.match(pattern, line))]


def test_judges_keep_one_order_in_every_table(three: Path) -> None:
    report, terminal, md, html = _render(three)
    assert [j["judge"] for j in report["judges"]] == ORDER
    assert [[e["judge"] for e in s["judges"]] for s in report["sections"]] == [ORDER, ORDER]
    assert report["agreement"][0]["judges"] == ORDER
    # Headline, then each section: the same order, three times (the HTML's section table: twice).
    names = "|".join(ORDER)
    assert _judge_rows(terminal, rf"\W*({names})\s+\d") == ORDER * 3
    # Markdown has the power table too: headline, power, then each section.
    assert _judge_rows(md, rf"\| (?:first \| |second \| )?({names}) \|") == ORDER * 4
    sections_html = html.split('<section id="sections">', 1)[1].split("</section>", 1)[0]
    assert re.findall(rf"<td>({names})</td>", sections_html) == ORDER * 2


def test_sections_are_per_section_everywhere(three: Path) -> None:
    _, terminal, md, html = _render(three)
    for text in (terminal, md, html):
        assert "Per section" in text and "Per domain" not in text and "Domain" not in text
    assert "| Section | Judge |" in md


def test_majority_row_only_with_three_voting_judges(three: Path, two: Path) -> None:
    report, terminal, md, html = _render(three)
    assert len(report["agreement"][0]["majority_vote"]["judges"]) == 3
    assert re.search(r"majority vote\s+\d", terminal) and "| majority vote |" in md
    assert html.count("<em>majority vote</em>") == 2 and "no majority-vote row" not in terminal + md + html
    report, terminal, md, html = _render(two)
    assert report["agreement"][0]["majority_vote"]["judges"] == ["alpha", "zeta"]  # the JSON keeps it
    note = "no majority-vote row: with 2 judges every disagreement is a tie"
    assert "majority vote" not in terminal and "| majority vote |" not in md and "<em>majority vote</em>" not in html
    assert note in " ".join(terminal.split()) and note.capitalize() in md and note.capitalize() in html
