"""The mini-Brie degenerate case: a judge that answers "A" every time carries no information.

The laptop mini-Brie run had a 135M judge that answered label "A" 48 of 48 times over 24
pairs judged in both orders (every pair flipped, so every comparison became a tie) and a
served judge that gave no valid verdict at all. The report then promised a ±0-point
minimum detectable effect, trusted a 0% strict win rate, never said in words that the
judge follows the position, and `--power --pilot` planned "2 prompts" from it. The run
here is real: a scripted suite run by the engine over the fixture plugins (the `fixed`
judge always answers one label), 24 prompts in both orders.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import FIXTURE_PLUGINS, run_suite, scripted_suite, write_yaml
from rich.console import Console

from brie_bench.cli import cli
from brie_bench.modelcard import model_index
from brie_bench.report.html import render_html
from brie_bench.report.model import build_report, build_report_from_data
from brie_bench.report.rows import load_run
from brie_bench.report.schema import OutcomeFigures
from brie_bench.report.terminal import print_report
from brie_bench.run import print_summary
from brie_bench.engine import EngineStats
from brie_bench.stats.bias import judge_information
from brie_bench.store import Store
from report_records import interval

ENV = {"COLUMNS": "240"}
NO_INFO = "this judge's verdicts follow the position of the answers, not their content"


@pytest.fixture(scope="module")
def mini_brie(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(database, suite file, run id): `always-a` answers "A" 48/48, `served` never gives a valid verdict."""
    tmp = tmp_path_factory.mktemp("mini-brie")
    data = scripted_suite(judges={"served": {"type": "fixed", "options": {"answer": "invalid"}},
                                  "always-a": {"type": "fixed"}},
                          sections=[{"name": "mini", "prompts": [f"Mini-Brie prompt number {i}" for i in range(24)],
                                     "orders": "both"}])
    db, suite = tmp / "mini.db", write_yaml(tmp / "mini_brie.yaml", data)
    assert run_suite(suite, db) == 0
    conn = sqlite3.connect(db)
    try:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
        verdicts = conn.execute("SELECT judge, verdict, count(*) FROM judgments GROUP BY judge, verdict").fetchall()
    finally:
        conn.close()
    assert sorted(verdicts) == [("always-a", "A", 48), ("served", "invalid", 48)]
    return db, suite, run_id


def _judge(report: dict, name: str) -> dict:
    return next(j for j in report["judges"] if j["judge"] == name)


def test_report_names_the_judge_and_gives_no_win_rate_and_no_mde(mini_brie) -> None:
    db, _, _ = mini_brie
    report = build_report(Store(db, readonly=True)).to_json_dict()
    a = _judge(report, "always-a")
    assert (a["wins"], a["losses"], a["ties"]) == (0, 0, 24)
    assert a["information"]["informative"] is False and a["information"]["follows"] == "position"
    assert a["information"]["statement"].startswith(NO_INFO) and "no win rate can come from it" in \
        a["information"]["statement"]
    assert "stronger judge" in a["information"]["advice"]
    assert a["win_rate"] is None and a["strict_win_rate"] is None
    for ci in (a["ci95"], a["strict_ci95"], a["rows"]["strict_ci95"]):
        assert ci["estimate"] is None and not ci["trusted"] and NO_INFO in ci["note"]
    assert a["power"]["mde"] is None and a["power"]["prompts_needed"] is None
    assert NO_INFO in a["power"]["mde_reason"]
    served = _judge(report, "served")
    assert served["power"]["mde"] is None and served["power"]["mde_reason"] == "no valid verdict to measure the variance from"
    kinds = [w for w in report["warnings"] if w["kind"] == "no-information"]
    assert len(kinds) == 1 and kinds[0]["text"].startswith("always-a (brie vs baseline): " + NO_INFO)
    # The majority vote counts only judges with information: here none.
    (ag,) = report["agreement"]
    assert ag["majority_vote"]["left_out"] == ["always-a"] and ag["majority_vote"]["judges"] == ["served"]
    # Every flip went towards the answer shown first: position bias, and never "prompt injection".
    (b,) = [b for b in report["bias"] if b["judge"] == "always-a"]
    oc = b["order_consistency"]
    assert (oc["n_pairs"], oc["n_flipped"], oc["toward_first"], oc["toward_second"]) == (24, 24, 24, 0)
    assert oc["systematic"] and oc["warn"] and oc["flip_rate"] == 1.0
    texts = " ".join(w["text"] for w in report["warnings"])
    assert "prompt injection" not in texts and "position bias" in texts


def test_terminal_html_and_card_show_no_zero_mde_and_no_trusted_strict_rate(mini_brie) -> None:
    db, _, _ = mini_brie
    data = load_run(Store(db, readonly=True))
    report = build_report_from_data(data)
    console = Console(record=True, width=240)
    print_report(console, report)
    terminal = " ".join(console.export_text().split())
    html = render_html(report, data)
    for text in (terminal, html):
        assert not re.search(r"±\s*0\s*(pts|points)", text)
        assert NO_INFO.replace("'", "&#39;") in text or NO_INFO in text
    assert "power (always-a, brie): No power figure: " + NO_INFO in terminal
    index = json.dumps(model_index(report))
    assert "minimum_detectable_effect" not in index
    assert '"trusted": true' not in index  # neither the win rate nor the strict 0% of a judge with no information
    md = CliRunner().invoke(cli, ["--db", str(db), "report", "--markdown", "--model-index"], env=ENV).stdout
    assert not re.search(r"±\s*0\s*(pts|points)", md) and "**no-information**" in md


def test_strict_rate_whose_verdicts_all_became_ties_is_not_trusted(mini_brie) -> None:
    db, _, _ = mini_brie
    report = build_report(Store(db, readonly=True)).to_json_dict()
    # The section entry shows no win rate either; the strict rule is checked on the judge-level figures
    # of a judge that is *not* withheld: `always-a`'s own rows, recounted without the position rule.
    a = _judge(report, "always-a")
    assert not a["strict_ci95"]["trusted"]
    from brie_bench.report.model import _no_decisive_note

    tight = interval(0.0, 0.0, 0.1, n=24, n_prompts=24)
    entry = OutcomeFigures(wins=0, losses=0, ties=24, invalid=0, n=24, n_valid=24, n_prompts=24, invalid_rate=0.0,
                           win_rate=0.5, strict_win_rate=0.0, ci95=interval(0.5, 0.3, 0.7, n=24, n_prompts=24),
                           strict_ci95=tight, sign_test_p=None)

    class U:
        pairs = [(None, 1.0, 0.0)] * 24

    strict_ci95 = _no_decisive_note(entry, U())  # type: ignore[arg-type]
    assert strict_ci95.trusted is False
    assert "24 of them because the verdict flipped" in (strict_ci95.note or "")


def test_run_summary_marks_the_judge(mini_brie) -> None:
    db, _, run_id = mini_brie
    console = Console(record=True, width=240)
    print_summary(console, Store(db, readonly=True), run_id, EngineStats())
    text = console.export_text()
    row = next(line for line in text.splitlines() if line.startswith("always-a "))
    assert "50.0%" not in row and "no info" in row
    assert NO_INFO in " ".join(text.split())


def test_power_pilot_falls_back_to_defaults_and_says_why(mini_brie) -> None:
    db, suite, run_id = mini_brie
    result = CliRunner().invoke(cli, ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "run", str(suite),
                                      "--power", "--pilot", run_id], env=ENV)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert not re.search(r"(?<!\d)2 prompts", out) and "this suite has enough" not in out
    assert "falls back to the conservative defaults" in out
    assert "judge always-a: " + NO_INFO in out and "judge served: no valid verdict" in out
    assert "±0 points" not in out and "pilot variance" not in out


def test_detection_rule_needs_the_assignment_to_vary_and_enough_verdicts() -> None:
    """Unit checks of `judge_information`: what fires and what must not."""
    rng = np.random.default_rng(0)
    first = rng.random(60) < 0.5
    # A candidate that truly wins 95%, whatever its position: informative.
    wins = (rng.random(60) < 0.95).astype(float)
    assert judge_information(wins, first, first).informative
    # Always the first-shown answer: follows the position.
    follows = judge_information(np.where(first, 1.0, 0.0), first, first)
    assert follows.follows == "position" and follows.side == "first" and follows.share == 1.0
    # Always the second-shown answer, labels decoupled from position: position again.
    labels = rng.random(60) < 0.5
    second = judge_information(np.where(first, 0.0, 1.0), first, labels)
    assert second.follows == "position" and second.side == "second"
    # Always label B, with label and position decoupled: follows the label.
    lab = judge_information(np.where(labels, 0.0, 1.0), first, labels)
    assert lab.follows == "label" and lab.side == "B"
    # The candidate was (almost) always first and always won: no way to tell, so no verdict.
    always_first = np.ones(60, dtype=bool)
    always_first[:2] = False
    assert judge_information(np.ones(60), always_first, always_first).informative
    # Too few decisive verdicts to say so.
    assert judge_information(np.array([1.0, 0.0] * 4), np.array([True, False] * 4), np.array([True, False] * 4)
                             ).informative
    # 88% one way on each side is below the 90% rule.
    cand_first = np.array([True] * 25 + [False] * 25)
    x = np.concatenate([np.r_[np.ones(22), np.zeros(3)], np.r_[np.zeros(22), np.ones(3)]])
    assert judge_information(x, cand_first, cand_first).informative
    # Every pair judged in both orders flipped (win / tie), with labels that say nothing: order.
    pairs = np.array([[1.0, 0.5]] * 6 + [[0.5, 0.0]] * 6)
    ties = judge_information(np.full(24, 0.5), np.tile([True, False], 12), np.tile([True, False], 12), pairs)
    assert ties.follows == "order" and "every one of the 12 comparisons" in (ties.reason or "")
    assert judge_information(np.full(18, 0.5), np.tile([True, False], 9), np.tile([True, False], 9),
                             pairs[:9]).informative  # fewer than 10 pairs: not enough to say so
