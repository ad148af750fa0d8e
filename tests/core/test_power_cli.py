"""Power through the real CLI: the smoke run's reports carry a per-judge MDE; `run --dry-run --power` plans."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from brie_bench.cli import cli
from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite

REPO = Path(__file__).parents[2]
SMOKE = REPO / "suites" / "smoke.yaml"
MULTI = REPO / "suites" / "multi_domain.yaml"
ENV = {"COLUMNS": "200"}
KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, tiny_base_path: Path, tiny_adapter_path: Path,
              tiny_judge_path: Path) -> tuple[Path, str]:
    """The offline smoke suite, run once for this module on the tiny local models."""
    db = tmp_path_factory.mktemp("power-smoke") / "smoke.db"
    assert execute_run(load_suite(SMOKE), load_plugins(None), db=str(db), console=Console(quiet=True)) == 0
    conn = sqlite3.connect(db)
    run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
    conn.close()
    return db, run_id


def _invoke(*args: str) -> CliRunner.invoke:
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_smoke_json_report_has_a_per_judge_mde_and_the_markdown_shows_it(smoke_run, tmp_path):
    db, run_id = smoke_run
    out = tmp_path / "report.json"
    result = _invoke("--db", str(db), "report", run_id, "--json", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["judges"]
    for j in report["judges"]:
        p = j["power"]
        assert 0 < p["mde"] < 0.5 and p["n_prompts"] == j["n_prompts"] == 6
        assert p["detectable_above"] == pytest.approx(0.5 + p["mde"])
        assert p["alpha"] == 0.05 and p["power"] == 0.8
        assert p["variance"]["total"] is not None and p["variance"]["n_order_pairs"] == 3  # brainstorming: both orders
        assert p["prompts_needed"] >= 2 and p["statement"]
    md = _invoke("--db", str(db), "report", run_id, "--markdown")
    assert md.exit_code == 0, md.output
    text = md.output
    assert "### Power" in text and "Minimum detectable effect (80% power)" in text
    above = report["judges"][0]["power"]["detectable_above"]
    assert f"±{100 * report['judges'][0]['power']['mde']:.0f} pts" in text
    assert f"{100 * above:.0f}%" in text
    terminal = _invoke("--db", str(db), "report", run_id)
    assert terminal.exit_code == 0 and "power (tiny-judge" in terminal.output


def test_smoke_html_report_has_the_power_section(smoke_run, tmp_path):
    db, run_id = smoke_run
    page = tmp_path / "r.html"
    result = _invoke("--db", str(db), "report", run_id, "--html", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert 'id="power"' in html and "minimum detectable effect (80% power)" in html


def test_dry_run_power_on_multi_domain_plans_without_any_model_or_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env.update(COLUMNS="200")
    db = tmp_path / "none.db"
    script = (
        "import sys\n"
        "from brie_bench.cli import cli\n"
        "try:\n"
        f"    cli.main(['--db', {str(db)!r}, 'run', {str(MULTI)!r}, '--dry-run', '--power'], standalone_mode=False)\n"
        "finally:\n"
        "    heavy = [m for m in ('torch', 'transformers', 'peft', 'anthropic', 'openai', 'google.genai', 'scipy.stats')"
        " if m in sys.modules]\n"
        "    print('LOADED', heavy)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    flat = " ".join(done.stdout.split())
    assert "minimum detectable effect ±" in flat
    assert "to detect a 10-point effect (a true win rate of 60% or 40%):" in flat
    assert "prompts with this layout" in flat and "judge calls" in flat and "estimated cost $" in flat
    assert "LOADED []" in flat  # no model library, no provider SDK, not even scipy.stats (start-up time)
    assert not db.exists()


def test_effect_and_pilot_options(smoke_run):
    db, run_id = smoke_run
    result = _invoke("--db", str(db), "run", str(MULTI), "--power", "--effect", "0.2")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "20-point effect (a true win rate of 70% or 30%)" in flat
    piloted = _invoke("--db", str(db), "run", str(SMOKE), "--power", "--pilot", run_id)
    assert piloted.exit_code == 0, piloted.output
    assert "pilot variance" in " ".join(piloted.output.split())
    bad = _invoke("--db", str(db), "run", str(SMOKE), "--power", "--pilot", "no-such-run")
    assert bad.exit_code == 2 and "--pilot" in bad.output and "Traceback" not in bad.output
    worse = _invoke("--db", str(db), "run", str(SMOKE), "--power", "--effect", "0.7")
    assert worse.exit_code == 2


def test_run_against_run_reports_the_minimum_detectable_difference(smoke_run, tmp_path):
    db, run_id = smoke_run
    # a second run of the same suite with another seed: same prompts, new assignments
    assert execute_run(load_suite(SMOKE), load_plugins(None), db=str(db), seed=8, new_run=True,
                       console=Console(quiet=True)) == 0
    conn = sqlite3.connect(db)
    other = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created_at, rowid")][-1]
    conn.close()
    out = tmp_path / "cmp.json"
    result = _invoke("--db", str(db), "report", run_id, other, "--json", str(out))
    assert result.exit_code == 0, result.output
    cmp = json.loads(out.read_text())
    mdd = cmp["judges"][0]["minimum_detectable_difference"]
    assert mdd["n_prompts"] == 6 and mdd["mdd"] > 0 and "could only detect" in mdd["statement"]
    text = _invoke("--db", str(db), "report", run_id, other)
    assert "could only detect differences of about ±" in " ".join(text.output.split())
    md = _invoke("--db", str(db), "report", run_id, other, "--markdown")
    assert md.exit_code == 0 and "could only detect differences of about ±" in md.output
    page = tmp_path / "cmp.html"
    html = _invoke("--db", str(db), "report", run_id, other, "--html", str(page))
    assert html.exit_code == 0, html.output
    assert "could only detect differences of about ±" in page.read_text()


def test_power_plan_and_validate_count_prompt_entries_and_texts_alike(tmp_path: Path) -> None:
    """42 prompt entries hold 25 distinct texts; both commands say so in the same words."""
    expected = "10 sections, 42 prompts (25 distinct texts)"
    validate = CliRunner().invoke(cli, ["validate", str(MULTI)], env={"COLUMNS": "200"})
    assert validate.exit_code == 0, validate.output
    assert expected in " ".join(validate.output.split())
    plan = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "run", str(MULTI), "--dry-run", "--power"],
                              env={"COLUMNS": "200"})
    assert plan.exit_code == 0, plan.output
    flat = " ".join(plan.output.split())
    assert f"Suite: {expected}; below, a prompt is a distinct text" in flat
    assert "layout: 25 distinct prompt texts, 42 comparisons (1.7 per prompt)" in flat
