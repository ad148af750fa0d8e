"""Missing keys and dead servers are found early, all at once, with the name of who needs them."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.testing.loopback import LoopbackProvider
from helpers import FIXTURE_PLUGINS, rows, scripted_suite, write_yaml

REPO = Path(__file__).resolve().parents[2]
MULTI = str(REPO / "suites" / "multi_domain.yaml")
NEEDED = {"claude": "ANTHROPIC_API_KEY", "gpt4o": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def test_run_names_every_missing_key_and_refuses_before_loading_anything(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "run", MULTI], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output  # one line
    for judge, variable in NEEDED.items():
        assert f"judge '{judge}'" in errors[0] and variable in errors[0], errors[0]
    assert "3 API keys are missing" in errors[0]
    assert not db.exists()  # refused before a run (or a model) was created
    assert "Traceback" not in result.output


def test_dry_run_warns_about_every_missing_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "run", MULTI, "--dry-run"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # undo the wrapping at 80 columns
    for judge, variable in NEEDED.items():
        assert f"warning: judge '{judge}' (backend " in text and variable in text


def test_a_server_that_refuses_connections_fails_fast_with_its_url(tmp_path: Path) -> None:
    with LoopbackProvider() as srv:
        url = srv.url("openai")  # the server stops at the end of the block: nothing listens there then
    suite = scripted_suite(judges={"local-judge": {"type": "llm", "backend": "openai", "model": "m",
                                                   "backend_options": {"base_url": url, "require_key": False}}})
    path = write_yaml(tmp_path / "suite.yaml", suite)
    db = tmp_path / "runs.db"
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "run", str(path)],
                                env={"COLUMNS": "80"})
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    errors = rows(db, "SELECT kind, transient, final, message FROM errors WHERE name='local-judge'")
    assert errors and all(e["kind"] == "refused" and e["final"] == 1 and e["transient"] == 0 for e in errors)
    assert len(errors) == 10  # one attempt per judge call, no retries
    assert url in errors[0]["message"] and "refused the connection" in errors[0]["message"]
    assert "refused the connection" in result.output
    print(f"10 refused judge calls took {elapsed:.1f} s")  # no retries with backoff (was 28 s)


def test_validate_checks_every_file_and_counts_in_good_english() -> None:
    bad = str(REPO / "tests" / "bad_suites" / "baseline_unknown.yaml")
    smoke = str(REPO / "suites" / "smoke.yaml")
    result = CliRunner().invoke(cli, ["validate", smoke, bad, MULTI], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert f"ok: {smoke}: 2 sections, 6 prompts, 2 contenders, 1 judge" in lines
    assert any(line.startswith(f"ok: {MULTI}: ") and line.endswith("3 judges") for line in lines)  # after the bad one
    (error,) = [line for line in lines if line.startswith("error:")]
    assert "baseline_unknown.yaml:" in error and "baseline" in error
    assert "1 of 3 suites failed" in lines
