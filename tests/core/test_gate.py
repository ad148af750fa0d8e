"""`brie-bench gate`: exit 0 passed, 1 failed, 3 cannot decide, 2 bad input; Markdown summary and JUnit.

The runs are real: scripted suites run by the engine over the fixture plugins. The
`marker` judge prefers the answer that carries its marker, so the contenders' markers
decide who wins; a prompt whose text holds the marker puts it in both answers (a tie).
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from brie_bench.cli import cli
from helpers import run_suite, scripted_suite, write_yaml

#: 30 prompts: 8 hold "*" and 2 hold "#" (ties for a judge looking for that marker), 20 plain.
PROMPTS = [("* " if i < 8 else "# " if i < 10 else "") + f"What is being number {i}?" for i in range(30)]


def _suite(name: str, *, seed: int, marker: str = "#", baseline_marker: str = "", prompts: list[str] = PROMPTS,
           judges: dict[str, object] | None = None) -> dict[str, object]:
    data = scripted_suite(
        seed=seed, judges=judges or {"marker": {"type": "marker", "options": {"marker": marker}}},
        sections=[{"name": "philosophy", "prompts": prompts}],
        contenders={"baseline": {"backend": "scripted", "model": "base", "options": {"marker": baseline_marker}},
                    "brie": {"backend": "scripted", "model": "base", "options": {"marker": marker, "style": "long"}}})
    data["name"] = name
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(database, {suite name: run id}) for every situation the gate must tell apart."""
    tmp = tmp_path_factory.mktemp("gate")
    db = tmp / "gate.db"
    suites = {
        "good": _suite("good", seed=1),  # 28 wins, 2 ties: 97% [83-100%]
        "prev": _suite("prev", seed=2),  # the same adapter evaluated before: the run to be not worse than
        "worse": _suite("worse", seed=3, marker="*"),  # 22 wins, 8 ties: 87% [76-94%]
        "loss": _suite("loss", seed=4, marker="", baseline_marker="#",
                       judges={"marker": {"type": "marker", "options": {"marker": "#"}}}),  # 28 losses, 2 ties
        "few": _suite("few", seed=5, prompts=PROMPTS[10:13]),  # 3 prompts: no interval can be trusted
        "two": _suite("two", seed=6, judges={"marker": {"type": "marker", "options": {"marker": "#"}},
                                             "fixed": {"type": "fixed"}}),  # "fixed" follows the position
    }
    for name, data in suites.items():
        assert run_suite(write_yaml(tmp / f"{name}.yaml", data), db) == 0
    conn = sqlite3.connect(db)
    try:
        ids = {suite: run_id for run_id, suite in conn.execute("SELECT id, suite_name FROM runs")}
    finally:
        conn.close()
    assert set(ids) == set(suites)
    return db, ids


def gate(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), "gate", *args], env={"COLUMNS": "200"})


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_clear_win_passes(runs) -> None:
    db, ids = runs
    result = gate(db, ids["good"], "--min-win-rate", "0.6")
    assert result.exit_code == 0, result.output
    out = _flat(result.stdout)
    assert "PASSED marker (brie): win rate ≥ 60%: 97% [83–100%], 30 prompts; lower bound 83% ≥ 60%" in out
    assert "gate passed (exit 0)" in out and out.startswith("Verdict: brie is better than baseline")
    # A percentage works as well as a fraction; with no threshold at all, the lower bound must reach 50%.
    assert gate(db, ids["good"], "--min-win-rate", "80%").exit_code == 0
    assert gate(db, ids["good"]).exit_code == 0


def test_the_interval_not_the_point_estimate_must_clear_the_bar(runs) -> None:
    db, ids = runs
    loss = gate(db, ids["loss"], "--min-win-rate", "0.6")
    assert loss.exit_code == 1, loss.output
    assert "the whole interval lies below 60%" in _flat(loss.stdout) and "gate failed (exit 1)" in loss.stdout
    # 87% [76-94%]: the estimate clears 80%, the lower bound does not, so the gate fails (and it is not exit 3).
    short = gate(db, ids["worse"], "--min-win-rate", "0.8")
    assert short.exit_code == 1, short.output
    assert "lower bound 76% < 80%: not shown to reach 80%" in _flat(short.stdout)


def test_cannot_decide_is_exit_3(runs) -> None:
    db, ids = runs
    few = gate(db, ids["few"], "--min-win-rate", "0.6")
    assert few.exit_code == 3, few.output
    assert "cannot be trusted (only 3 prompts)" in _flat(few.stdout) and "gate cannot decide (exit 3)" in few.stdout
    # The judge that follows the position cannot decide: named, it gives exit 3 ...
    fixed = gate(db, ids["two"], "--judges", "fixed")
    assert fixed.exit_code == 3 and "follow the position of the answers" in _flat(fixed.stdout)
    # ... by default it is skipped beside a judge that decides; --require-trusted refuses to skip it.
    assert gate(db, ids["two"]).exit_code == 0
    assert gate(db, ids["two"], "--require-trusted").exit_code == 3
    assert gate(db, ids["two"], "--judges", "majority").exit_code == 0  # 1 of the 1 judge that decides
    assert gate(db, ids["two"], "--judges", "majority", "--require-trusted").exit_code == 3  # 1 of 2: it could go either way
    assert gate(db, ids["two"], "--judges", "marker", "--min-win-rate", "0.99").exit_code == 1


def test_non_inferiority_against_a_second_run(runs) -> None:
    db, ids = runs
    same = gate(db, ids["good"], "--against", ids["prev"], "--not-worse-than", "0.15")
    assert same.exit_code == 0, same.output
    assert f"not worse than {ids['prev']} by > 15 pts" in _flat(same.stdout)
    # The same results again, but 30 prompts cannot show a difference within 5 points: not shown, so failed.
    tight = gate(db, ids["good"], "--against", ids["prev"], "--not-worse-than", "0.05")
    assert tight.exit_code == 1 and "not shown to be within 5 points" in _flat(tight.stdout)
    worse = gate(db, ids["worse"], "--against", ids["prev"], "--not-worse-than", "0.15")
    assert worse.exit_code == 1, worse.output
    assert "A − B -10.0 pts" in _flat(worse.stdout)
    few = gate(db, ids["few"], "--against", ids["prev"], "--not-worse-than", "0.15", "--min-win-rate", "0.5")
    assert few.exit_code == 3, few.output
    # Both thresholds at once: each is a check of the same test case.
    both = gate(db, ids["good"], "--against", ids["prev"], "--not-worse-than", "0.15", "--min-win-rate", "0.9")
    assert both.exit_code == 1 and "PASSED" in both.stdout and "FAILED" in both.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no run 'nope'"),
    (["--judges", "claude"], "--judges: no judge 'claude' in run"),
    (["--min-win-rate", "abc"], "--min-win-rate: 'abc' is not a number"),
    (["--min-win-rate", "60"], "--min-win-rate: '60' is outside 0-1 (0-100%) (did you mean 0.6?)"),
    (["--not-worse-than", "-0.1", "--against", "x"], "--not-worse-than: '-0.1' is outside 0-1"),
    (["--against", "x"], "--against: needs a non-inferiority margin"),
    (["--not-worse-than", "0.05"], "--not-worse-than: compares with a previous run"),
])
def test_bad_input_is_one_line_and_exit_2(runs, args: list[str], message: str) -> None:
    db, ids = runs
    result = gate(db, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.output


def test_markdown_summary_is_appended(runs, tmp_path: Path) -> None:
    db, ids = runs
    summary = tmp_path / "step-summary.md"
    summary.write_text("# Earlier step\n", encoding="utf-8")
    assert gate(db, ids["good"], "--min-win-rate", "0.6", "--summary", str(summary)).exit_code == 0
    assert gate(db, ids["loss"], "--min-win-rate", "0.6", "--summary", str(summary)).exit_code == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# Earlier step\n\n## ✅ Brie Bench gate passed (exit 0)")
    assert "\n## ❌ Brie Bench gate failed (exit 1)" in text
    assert f"Run `{ids['good']}` (suite good)" in text and "**Verdict:** brie is better than baseline" in text
    assert "| marker | brie | win rate ≥ 60% | ✅ passed | 97% [83–100%], 30 prompts | lower bound 83% ≥ 60% |" in text
    assert "| marker | brie | win rate ≥ 60% | ❌ failed |" in text
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left


def test_junit_has_one_case_per_judge_and_candidate(runs, tmp_path: Path) -> None:
    db, ids = runs
    junit = tmp_path / "out" / "gate.xml"
    assert gate(db, ids["two"], "--min-win-rate", "0.6", "--junit", str(junit)).exit_code == 0
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures"), root.get("skipped")) == ("2", "0", "1")
    (suite,) = root.findall("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["result"] == "passed" and props["exit_code"] == "0" and props["run"] == ids["two"]
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"marker: brie vs baseline", "fixed: brie vs baseline"}
    assert cases["marker: brie vs baseline"].find("failure") is None
    assert cases["marker: brie vs baseline"].find("skipped") is None
    skipped = cases["fixed: brie vs baseline"].find("skipped")
    assert skipped is not None and "cannot decide: its verdicts follow the position" in skipped.get("message", "")
    # A failed gate: a <failure> element saying why.
    assert gate(db, ids["loss"], "--min-win-rate", "0.6", "--junit", str(junit)).exit_code == 1
    (case,) = ET.parse(junit).getroot().iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "the whole interval lies below 60%" in failure.get("message", "")


def test_output_files_are_refused_where_the_report_refuses_them(runs, tmp_path: Path) -> None:
    db, ids = runs
    link = tmp_path / "summary.md"
    link.symlink_to(tmp_path / "elsewhere.md")
    result = gate(db, ids["good"], "--summary", str(link))
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    result = gate(db, ids["good"], "--junit", str(db))
    assert result.exit_code == 2 and "is the database" in result.stderr


def test_run_help_shows_single_percent_signs() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "%%" not in result.output and "50%" in result.output
    result = CliRunner().invoke(cli, ["gate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "%%" not in result.output and "60%" in result.output
