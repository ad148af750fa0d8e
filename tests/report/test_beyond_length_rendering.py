"""The style-controlled and human-calibrated win rates read as one plain sentence in every report form.

A real scripted run gives the report; its informative judge's `style_controlled` block
comes from the run itself, and a `human_calibrated` block is computed by
`human_calibrated_blocks` on hand-made verdicts (people on 40 of 120 prompts), as the report
does when people judged. The terminal, Markdown and HTML must each carry both sentences.
"""

from __future__ import annotations

import io
from pathlib import Path

from markupsafe import escape
from rich.console import Console

import dataclasses

from brie_bench.report.controls import human_calibrated_blocks
from brie_bench.report.html import render_html
from brie_bench.report.markdown import render_markdown
from brie_bench.report.model import build_report_from_data
from brie_bench.report.rows import load_run
from brie_bench.report.terminal import print_report
from brie_bench.store import Store
from helpers import human_calibrated_example, run_suite, scripted_suite, write_yaml


def _human_block():
    entries, units = human_calibrated_example()
    return human_calibrated_blocks(entries, units, level=0.95)[("ft", "gpt")]


def test_both_sentences_appear_in_terminal_markdown_and_html(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", scripted_suite()), db) == 0
    with Store(db, readonly=True) as store:
        data = load_run(store)
    report = build_report_from_data(data)
    judge = next(j for j in report.judges if j.style_controlled.sentence)
    judge = dataclasses.replace(judge, human_calibrated=_human_block())
    report = dataclasses.replace(report, judges=[judge if j.judge == judge.judge and j.candidate == judge.candidate
                                                 else j for j in report.judges])
    style, human = judge.style_controlled.sentence, judge.human_calibrated.sentence
    assert "human verdicts" in human
    out = io.StringIO()
    print_report(Console(file=out, width=400, color_system=None), report)
    terminal = " ".join(out.getvalue().split())
    assert f"style-controlled ({judge.judge}, {judge.candidate}): {' '.join(style.split())}" in terminal
    assert f"human-calibrated ({judge.judge}, {judge.candidate}): {' '.join(human.split())}" in terminal
    markdown = render_markdown(report)
    assert style in markdown and human in markdown
    html = render_html(report, data)
    assert 'class="style-controlled"' in html and 'class="human-calibrated"' in html
    assert str(escape(style)) in html and str(escape(human)) in html
