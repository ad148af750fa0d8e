"""A judge whose every call failed still appears in every report, with its failure kind and message.

The logprob judge here talks to a real OpenAI-compatible loopback server that
returns no token log-probabilities, the way `transformers serve` does: each of
its calls fails with "server returned no logprobs". Before, that judge simply
vanished from the run summary and the reports, which said only "incomplete".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.testing.loopback import Answer, LoopbackProvider
from helpers import FIXTURE_PLUGINS, scripted_suite, write_yaml

REASON = "server returned no logprobs"


def _no_logprobs(call):  # an empty answer has no tokens, so no log-probabilities either
    return Answer(text="")


@pytest.fixture
def failed_judge_run(tmp_path: Path):
    with LoopbackProvider(_no_logprobs, max_lifetime_s=120) as srv:
        suite = scripted_suite(judges={
            "marker": {"type": "marker"},
            "lp-judge": {"type": "llm", "backend": "openai", "model": "served-model",
                         "backend_options": {"base_url": srv.url("openai"), "require_key": False},
                         "options": {"mode": "logprob"}},
        })
        path = write_yaml(tmp_path / "suite.yaml", suite)
        db = tmp_path / "runs.db"
        runner = CliRunner()
        result = runner.invoke(cli, ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "run", str(path)],
                               env={"COLUMNS": "100"})
    return runner, db, result


def _report(runner: CliRunner, db: Path, *args: str) -> str:
    result = runner.invoke(cli, ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "report", *args],
                           env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_run_summary_names_the_failed_judge_and_why(failed_judge_run) -> None:
    _, _, result = failed_judge_run
    assert result.exit_code == 1, result.output  # failed units: a rerun retries them
    summary = result.output[result.output.index("Run "):]
    row = next(line for line in summary.splitlines() if line.startswith("lp-judge"))
    assert row.split()[-2].startswith("10"), row  # 10 judge calls (4 + 3 pairs x 2 orders) still failed
    assert "unsupported" in summary and REASON in summary
    assert any(line.startswith("marker") for line in summary.splitlines())  # the working judge is there too


def test_json_report_lists_the_failed_judge(failed_judge_run) -> None:
    runner, db, _ = failed_judge_run
    report = json.loads(_report(runner, db, "--json"))
    assert report["schema_version"] == 3
    assert {j["judge"] for j in report["judges"]} == {"marker"}  # no verdict, so no win rate ...
    (failed,) = report["failed_judges"]  # ... but it is not forgotten
    assert failed["judge"] == "lp-judge" and failed["kind"] == "unsupported"
    assert REASON in failed["message"] and failed["failed_units"] == 10
    assert report["run"]["failed_units"] == 10 and report["run"]["status"] == "incomplete"
    assert any(w["kind"] == "judge-failed" and REASON in w["text"] for w in report["warnings"])
    info = {j["name"]: j for j in report["judge_info"]}["lp-judge"]
    assert info["options"]["mode"] == "logprob" and "verdict" not in info["options"]  # it writes no verdict text
    by_name = {f["name"]: f for f in report["failures"]}
    assert by_name["lp-judge"]["failed_units"] == 10 and "marker" not in by_name


def test_terminal_and_html_reports_name_the_failed_judge(failed_judge_run, tmp_path: Path) -> None:
    runner, db, _ = failed_judge_run
    text = _report(runner, db)
    head = text[:text.index("Per section")]
    assert any(line.startswith("lp-judge") and "failed" in line for line in head.splitlines()), head
    assert REASON in head
    out = tmp_path / "report.html"
    _report(runner, db, "--html", str(out))
    html = out.read_text(encoding="utf-8")
    row = html[html.index('<tr class="failed-judge">'):]
    row = row[:row.index("</tr>")]
    assert "lp-judge" in row and "unsupported" in row and REASON in row
    assert "10 units still failed" in html
    # The headline table stays small (details behind a toggle) and explains its one piece of jargon.
    table = html[html.index('<table id="headline-table">'):]
    header = table[:table.index("</thead>")]
    assert 4 <= header.count("<th>") <= 7, header
    assert '<details id="headline-details">' in html
    assert "A verdict such as “label A → Answer 1” means" in html
