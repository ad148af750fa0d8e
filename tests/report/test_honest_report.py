"""Honest report figures: length bias is flagged, degenerate intervals are never trusted,
bias warnings reach every format, and native runs cluster by prompt text.

Runs here are real: legacy JSONL imported through the CLI, or scripted suites run by
the engine over the fixture plugins; reports are built by the CLI or `build_report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import run_suite, scripted_suite, write_yaml

from brie_bench import stats
from brie_bench.cli import cli
from brie_bench.report.figures import report_interval
from brie_bench.report.model import build_report
from brie_bench.store import Store

ENV = {"COLUMNS": "240"}


def intervals(obj: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every interval object anywhere in a report (anything with a `trusted` key)."""
    if isinstance(obj, dict):
        if "trusted" in obj and "low" in obj:
            yield path, obj
        for k, v in obj.items():
            yield from intervals(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from intervals(v, f"{path}[{i}]")


def assert_no_degenerate_interval_is_trusted(report: dict[str, Any]) -> int:
    """The issue's rule, checked over the whole report; returns how many intervals were checked."""
    n = 0
    for path, ci in intervals(report):
        n += 1
        low, high = ci.get("low"), ci.get("high")
        if ci.get("trusted"):
            assert low is not None and high is not None and ci.get("estimate") is not None, path
            assert high - low > 1e-12, f"{path}: zero-width interval marked trusted: {ci}"
            span = (-4.0, 4.0) if ".criteria" in path else (-1.0, 1.0) if ci["method"].startswith("paired") \
                else (0.0, 1.0)
            width = span[1] - span[0]
            assert not (low <= span[0] + 0.001 * width and high >= span[1] - 0.001 * width), \
                f"{path}: interval spanning the whole range marked trusted: {ci}"
            assert not (ci.get("note") or "").startswith("cannot"), path
    return n


def _legacy_line(i: int, ft_len: int, base_len: int, verdict: str) -> dict[str, Any]:
    return {"config_name": "philosophy", "prompt_num": i, "prompt": f"Question number {i} about being?",
            "temperature": 0.75, "max_tokens": 512, "baseline_response": "b" * base_len,
            "brie_response": "f" * ft_len, "judge_model": "longer-judge",
            "judgment": f"Reasoning: picked one.\nWinner: {verdict}", "presentation_order": "AB" if i % 2 else "BA",
            "winner": {"A": "baseline", "B": "brie", "Tie": "tie"}[verdict], "timestamp": f"2025-01-01T00:00:{i:02d}"}


@pytest.fixture(scope="module")
def always_longer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A judge that always picks the longer answer over 40 prompts: 22 of 22 when the fine-tune is longer,
    0 of 17 when it is shorter, and a tie on the one pair of equal length."""
    tmp = tmp_path_factory.mktemp("longer")
    lines = [_legacy_line(i, 300 + i, 100, "B") for i in range(22)]
    lines += [_legacy_line(22 + i, 80 + i, 250, "A") for i in range(17)]
    lines += [_legacy_line(39, 150, 150, "Tie")]
    path = tmp / "longer.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    db = tmp / "l.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    return db, result.output.split("imported run ", 1)[1].split(":", 1)[0]


def test_always_longer_judge_gets_the_length_bias_warning_everywhere(always_longer) -> None:
    db, run_id = always_longer
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, ["--db", str(db), "report", run_id, "--json"], env=ENV).stdout)
    (j,), (b,) = data["judges"], data["bias"]
    assert j["n_prompts"] == 40 and j["win_rate"] == pytest.approx(22.5 / 40)
    length = b["length"]
    assert (length["ft_longer"]["estimate"], length["ft_longer"]["n"]) == (1.0, 22)
    assert (length["ft_shorter"]["estimate"], length["ft_shorter"]["n"]) == (0.0, 17)
    assert length["flagged"] and length["gap"] == 1.0 and length["fisher_p"] < 1e-6
    (warning,) = [w for w in data["warnings"] if w["kind"] == "length-bias"]
    assert "wins 100% of 22" in warning["text"] and "0% of 17" in warning["text"]
    md = runner.invoke(cli, ["--db", str(db), "report", run_id, "--markdown"], env=ENV).stdout
    assert "**length-bias**" in md.split("### Caveats", 1)[1] and "possible length bias" in md
    term = runner.invoke(cli, ["--db", str(db), "report", run_id], env=ENV).output
    assert "possible length bias" in " ".join(term.split())
    # The length-controlled rate cannot be estimated (length separates wins from losses): no number.
    lc = j["length_controlled"]
    assert lc["estimate"] is None and lc["low"] is None and not lc["trusted"] and not lc["estimable"]
    assert lc["note"].startswith("cannot be estimated: the length difference separates wins from losses")
    assert_no_degenerate_interval_is_trusted(data)


def test_length_bias_threshold_leaves_a_content_judge_alone() -> None:
    rng = np.random.default_rng(3)
    lf, lb = rng.integers(50, 400, 40), rng.integers(50, 400, 40)
    outcomes = (rng.random(40) < 0.7).astype(float)  # prefers the fine-tune, whatever the length
    assert not stats.length_bias(outcomes, lf, lb).flagged
    follows = np.where(lf > lb, 1.0, 0.0)
    assert stats.length_bias(follows, lf, lb).flagged


@pytest.fixture(scope="module")
def always_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `fixed` judge always answers "A", over 30 prompts; the `marker` judge wins a 5-prompt section 5/5."""
    tmp = tmp_path_factory.mktemp("always-a")
    data = scripted_suite(judges={"fixed": {"type": "fixed"}, "marker": {"type": "marker"}},
                          sections=[{"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(25)]},
                                    {"name": "five", "prompts": [f"Five-prompt item {i}" for i in range(5)]}])
    db = tmp / "a.db"
    assert run_suite(write_yaml(tmp / "suite.yaml", data), db) == 0
    return db


def test_always_a_judge_still_gets_label_and_position_warnings(always_a) -> None:
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, ["--db", str(always_a), "report", "--json"], env=ENV).stdout)
    kinds = {(w["kind"], w["text"].split(" ")[0]) for w in data["warnings"]}
    assert ("label-bias", "fixed") in kinds and ("position-bias", "fixed") in kinds
    assert data["run"]["n_prompts"] == 30
    md = runner.invoke(cli, ["--db", str(always_a), "report", "--markdown"], env=ENV).stdout
    caveats = md.split("### Caveats", 1)[1].split("\n### ", 1)[0]
    assert "**label-bias**" in caveats and "**position-bias**" in caveats
    assert_no_degenerate_interval_is_trusted(data)


def test_a_section_won_five_of_five_is_not_a_point(always_a) -> None:
    report = build_report(Store(always_a, readonly=True)).to_json_dict()
    five = next(s for s in report["sections"] if s["section"] == "five")
    marker = next(e for e in five["judges"] if e["judge"] == "marker")
    assert (marker["wins"], marker["n"]) == (5, 5)
    ci = marker["ci95"]
    assert ci["method"] == "clopper-pearson-prompts" and ci["high"] == 1.0
    assert ci["low"] == pytest.approx(0.025 ** (1 / 5))  # exact lower bound for 5 of 5 prompts
    assert "every verdict went the same way" in ci["method_note"]
    assert_no_degenerate_interval_is_trusted(report)


def test_report_interval_never_trusts_a_degenerate_interval() -> None:
    point = stats.Interval(1.0, 1.0, 1.0, 0.95, "cluster-bootstrap", 10, 10)
    assert not report_interval(point).trusted and "zero-width" in (report_interval(point).note or "")
    everything = stats.Interval(0.5, 0.0006, 0.9995, 0.95, "cluster-t", 20, 10)
    assert not report_interval(everything).trusted
    fit = stats.length_controlled_win_rate(np.ones(12), np.arange(12) * 10, np.full(12, 50), np.arange(12))
    d = report_interval(fit.win_rate)
    assert fit.at_bound and d.estimate is None and not d.trusted and (d.note or "").startswith("cannot be estimated")
    fine = stats.Interval(0.6, 0.45, 0.74, 0.95, "cluster-bootstrap", 40, 30)
    assert report_interval(fine).trusted


def test_native_runs_cluster_by_prompt_text_across_sections(tmp_path: Path) -> None:
    """Like suites/temperature.yaml: the same prompts in three sections are six prompts, not eighteen."""
    prompts = [f"Describe the stillness before dawn, take {i}." for i in range(6)]
    data = scripted_suite(sections=[{"name": "t05", "prompts": prompts, "temperature": 0.5},
                                    {"name": "t075", "prompts": [p.upper() for p in prompts]},
                                    {"name": "t10", "prompts": [p.replace(" ", "  ") for p in prompts],
                                     "temperature": 1.0}])
    db = tmp_path / "t.db"
    assert run_suite(write_yaml(tmp_path / "suite.yaml", data), db) == 0
    report = build_report(Store(db, readonly=True)).to_json_dict()
    (j,) = report["judges"]
    assert report["run"]["n_prompts"] == 6
    assert j["n"] == 18 and j["n_prompts"] == 6 and j["ci95"]["n_prompts"] == 6
    assert j["rows"]["n_replicates"] == 0
    assert all(e["n_prompts"] == 6 for s in report["sections"] for e in s["judges"])


def test_few_prompts_is_a_caveat_in_the_model_card_block(tmp_path: Path) -> None:
    legacy = Path(__file__).parents[1] / "fixtures" / "legacy"
    db = tmp_path / "few.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", str(db), "import", "legacy", str(legacy / "judge_claude.jsonl")],
                         env=ENV).exit_code == 0
    data = json.loads(runner.invoke(cli, ["--db", str(db), "report", "--json"], env=ENV).stdout)
    (few,) = [w for w in data["warnings"] if w["kind"] == "few-prompts"]
    assert few["text"].startswith("Only 3 distinct prompt(s)")
    md = runner.invoke(cli, ["--db", str(db), "report", "--markdown"], env=ENV).stdout
    caveats = md.split("### Caveats", 1)[1].split("\n### ", 1)[0]
    assert "**few-prompts**" in caveats and "**legacy-labels**" in caveats
    assert_no_degenerate_interval_is_trusted(data)
