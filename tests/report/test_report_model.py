"""The report: every figure checked against an independent count of the stored rows."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from brie_bench import stats
from brie_bench.report.html import render_html
from brie_bench.report.jsonout import render_json
from brie_bench.report.markdown import model_index, render_markdown
from brie_bench.report.model import MIN_PROMPTS, SCHEMA_VERSION, build_report, build_report_from_data
from brie_bench.report.rows import load_run
from brie_bench.store import Store
from helpers import run_suite, scripted_suite, two_judge_suite, write_yaml


@pytest.fixture(scope="module")
def two_judge_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight single-order prompts and three both-order prompts, judged by a content judge and a pure-'A' judge."""
    tmp = tmp_path_factory.mktemp("report-model")
    data = two_judge_suite()
    db = tmp / "r.db"
    assert run_suite(write_yaml(tmp / "suite.yaml", data), db) == 0
    return db


def _raw_rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM judgments").fetchall()
    finally:
        conn.close()


def _independent_outcomes(db: Path, judge: str, section: str | None = None) -> dict[tuple[str, str], float]:
    """Per comparison outcome computed straight from SQL rows, orders combined by hand."""
    per: dict[tuple[str, str], list[float]] = {}
    for r in _raw_rows(db):
        if r["judge"] != judge or (section and r["section"] != section):
            continue
        o = math.nan if r["winner"] is None else {"brie": 1.0, "baseline": 0.0, "tie": 0.5}[r["winner"]]
        per.setdefault((r["section"], r["prompt_id"]), []).append(o)
    out = {}
    for k, os_ in per.items():
        if len(os_) == 1:
            out[k] = os_[0]
        else:
            out[k] = math.nan if any(math.isnan(o) for o in os_) else (os_[0] if os_[0] == os_[1] else 0.5)
    return out


def test_per_judge_figures_match_an_independent_count(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True)).to_json_dict()
    assert report["schema"] == "brie-bench-report" and report["schema_version"] == SCHEMA_VERSION
    by_judge = {j["judge"]: j for j in report["judges"]}
    assert set(by_judge) == {"marker", "fixed"}
    for name, entry in by_judge.items():
        outs = list(_independent_outcomes(two_judge_run, name).values())
        wins, losses = outs.count(1.0), outs.count(0.0)
        ties = outs.count(0.5)
        assert (entry["wins"], entry["losses"], entry["ties"], entry["invalid"]) == (wins, losses, ties, 0)
        assert entry["n"] == 11 and entry["n_judgments"] == 14 and entry["n_prompts"] == 11
        if name == "fixed":  # always "A": its verdicts follow the position, so no win rate
            assert entry["information"]["follows"] == "position" and entry["win_rate"] is None
            assert entry["ci95"]["estimate"] is None and not entry["ci95"]["trusted"]
            continue
        assert entry["win_rate"] == pytest.approx((wins + 0.5 * ties) / 11)
        assert entry["strict_win_rate"] == pytest.approx(wins / 11)
        ci = entry["ci95"]
        # 11 prompts: below stats.BOOTSTRAP_MIN_CLUSTERS the percentile bootstrap under-covers,
        # so the report shows the cluster-robust t interval, or the exact one when every verdict is a win.
        assert ci["method"] in ("effective-n", "clopper-pearson-prompts") and ci["n_prompts"] == 11 and ci["trusted"]
        assert ci["low"] <= entry["win_rate"] <= ci["high"]
    # The marker judge recognises the candidate's text: it wins everything.
    assert by_judge["marker"]["wins"] == 11
    # The pure-"A" judge: under orders both every pair is a tie (MT-Bench rule).
    sec = {s["section"]: {e["judge"]: e for e in s["judges"]} for s in report["sections"]}
    assert sec["brainstorm"]["fixed"]["ties"] == 3 and sec["brainstorm"]["fixed"]["win_rate"] is None
def test_interval_matches_stats_on_the_same_clusters(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True)).to_json_dict()
    entry = next(j for j in report["judges"] if j["judge"] == "marker")  # "fixed" has no win rate
    outcomes = _independent_outcomes(two_judge_run, "marker")
    keys = sorted(outcomes)
    ci = stats.rate_ci(np.array([outcomes[k] for k in keys]), np.array([f"{s}\x1f{p}" for s, p in keys]))
    assert entry["ci95"]["low"] == pytest.approx(ci.low) and entry["ci95"]["high"] == pytest.approx(ci.high)


def test_sections_with_few_prompts_say_cannot_be_trusted(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True)).to_json_dict()
    brainstorm = next(s for s in report["sections"] if s["section"] == "brainstorm")
    assert brainstorm["n_prompts"] == 3 < MIN_PROMPTS
    for e in brainstorm["judges"]:
        assert e["ci95"]["trusted"] is False and "cannot be" in e["ci95"]["note"]  # trusted, or estimated
    philosophy = next(s for s in report["sections"] if s["section"] == "philosophy")
    assert all(e["ci95"]["trusted"] for e in philosophy["judges"] if e["judge"] != "fixed")  # no estimate


def test_bias_flags_the_judge_that_follows_the_label(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True)).to_json_dict()
    bias = {b["judge"]: b for b in report["bias"]}
    fixed, marker = bias["fixed"], bias["marker"]
    assert fixed["label"]["label_a_share"]["estimate"] == 1.0 and fixed["label"]["significant"]
    assert fixed["order_consistency"]["n_pairs"] == 3 and fixed["order_consistency"]["reversals"] == 3
    assert {f["prompt_id"] for f in fixed["order_consistency"]["flipped"]} == {"brainstorm-1", "brainstorm-2",
                                                                               "brainstorm-3"}
    assert marker["order_consistency"]["n_flipped"] == 0 and not marker["label"]["significant"]
    kinds = {(w["kind"], w["text"].split(" ")[0]) for w in report["warnings"]}
    # 3 of 3 flips one way is no evidence (sign test p = 0.25), so no order-flip warning; the judge
    # is named as carrying no information instead.
    assert ("no-information", "fixed") in kinds and ("label-bias", "fixed") in kinds
    assert ("order-flips", "fixed") not in kinds
    assert not any(w["text"].startswith("marker") for w in report["warnings"])


def test_agreement_and_majority_vote_over_comparisons(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True)).to_json_dict()
    (ag,) = report["agreement"]
    fixed = _independent_outcomes(two_judge_run, "fixed")
    marker = _independent_outcomes(two_judge_run, "marker")
    agree = sum(fixed[k] == marker[k] for k in fixed)
    assert ag["n_items"] == 11 and ag["percent_all"] == pytest.approx(agree / 11)
    assert ag["pairs"][0]["judge_a"] == "fixed" and ag["pairs"][0]["judge_b"] == "marker"
    assert ag["note"] == stats.KAPPA_PARADOX
    # "fixed" carries no information and is left out of the vote, which is then marker's verdicts.
    mv = ag["majority_vote"]
    assert mv["left_out"] == ["fixed"] and mv["judges"] == ["marker"]
    assert mv["wins"] == sum(v == 1.0 for v in marker.values()) and mv["ties"] == 0


def test_json_is_strict_and_has_the_documented_fields(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True))
    text = render_json(report)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    j = data["judges"][0]
    for key in ("judge", "model", "wins", "losses", "ties", "invalid", "win_rate", "strict_win_rate", "ci95"):
        assert key in j
    assert {"sections", "agreement", "bias", "criteria", "cost", "run", "method", "warnings"} <= set(data)
    # No interval in a one-prompt setting becomes null, never NaN.
    assert "NaN" not in text and "Infinity" not in text
    doc = (Path(__file__).parents[2] / "docs" / "report-schema.md").read_text(encoding="utf-8")
    for key in list(data) + list(j) + list(j["ci95"]) + list(data["bias"][0]) + list(data["agreement"][0]):
        assert f"`{key}`" in doc, f"{key} is not documented in docs/report-schema.md"


def test_markdown_tables_and_model_index(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True))
    md = render_markdown(report, model_index=True, model_name="me/brie")
    lines = md.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("| Judge |"))
    assert lines[header + 1].startswith("| ---")
    # Two judges and no majority-vote row: "fixed" carries no information, so one judge votes.
    assert sum(1 for l in lines[header + 2:header + 5] if l.startswith("| ")) == 2
    assert "| majority vote |" not in md and "No majority-vote row: 1 judge with information" in md
    assert any(l.startswith("| Section |") for l in lines) and "### Per section" in lines
    assert any(l.startswith("**Agreement**") for l in lines)
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    parsed = yaml.safe_load(block)
    entry = parsed["model-index"][0]
    assert entry["name"] == "me/brie"
    metrics = {(m["type"], m["name"].split("judge: ")[1].split(",")[0].rstrip(")")): m["value"]
               for m in entry["results"][0]["metrics"]}
    marker = next(j for j in report.judges if j.judge == "marker")
    assert marker.win_rate is not None
    assert metrics[("win_rate", "marker")] == round(100 * marker.win_rate, 1)
    assert model_index(report)["model-index"][0]["name"] == "brie"


def test_markdown_cells_cannot_break_the_table(two_judge_run: Path) -> None:
    report = build_report(Store(two_judge_run, readonly=True))
    evil = dataclasses.replace(report.judges[0], judge="evil|judge\n<img src=x>")
    report = dataclasses.replace(report, judges=[evil, *report.judges[1:]])
    md = render_markdown(report)
    row = next(l for l in md.splitlines() if "evil" in l)
    assert "evil\\|judge &lt;img src=x&gt;" in row and row.count(" | ") == 8


def test_html_escapes_server_side_text_and_carries_only_its_own_script(two_judge_run: Path, tmp_path: Path) -> None:
    import base64
    import hashlib
    import re

    store = Store(two_judge_run, readonly=True)
    data = load_run(store)
    data.run.metadata["judges"]["marker"]["model"] = "<script>alert(1)</script>{{ 7*7 }}"
    report = build_report_from_data(data)
    html = render_html(report, data)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in html
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing loaded from a network
    assert html.count('<svg class="chart"') >= 4


def test_three_contenders_get_a_bradley_terry_ranking(tmp_path: Path) -> None:
    """Two fine-tunes against one baseline: the marked one ranks first, the unmarked one near the baseline."""
    from helpers import run_suite, write_yaml

    from brie_bench.report import build_report
    from brie_bench.store import Store

    data = scripted_suite(
        contenders={"baseline": {"backend": "scripted", "model": "base"},
                    "brie": {"backend": "scripted", "model": "base", "options": {"marker": "*"}},
                    "plain": {"backend": "scripted", "model": "base", "options": {"style": "other"}}},
        sections=[{"name": "s", "prompts": [f"Question {i} about being" for i in range(12)]}])
    db = tmp_path / "three.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", data), db) == 0
    with Store(db, readonly=True) as store:
        report = build_report(store).to_json_dict()
    (ranking,) = report["ranking"]
    strength = {c["contender"]: c for c in ranking["contenders"]}
    assert ranking["anchor"] == "baseline" and strength["baseline"]["strength"] == 0
    assert ranking["n_games"] == 24
    assert strength["brie"]["strength"] > 2 and strength["brie"]["low"] > 0  # won every comparison
    assert abs(strength["plain"]["strength"]) < 0.5  # the marker judge calls these ties
    assert strength["brie"]["win_rate_vs_baseline"] > 0.9
