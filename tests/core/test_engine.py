"""The engine, store and CLI together over the scripted test backend: retries, failures, resume."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from brie_bench.cli import cli
from helpers import FIXTURE_PLUGINS, hello_command_plugin, rows, run_suite, scripted_suite, write_yaml


def logged_suite(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The scripted suite with every contender call appended to a log: (suite, database, log)."""
    log = tmp_path / "calls.jsonl"
    data = scripted_suite()
    for c in data["contenders"].values():
        c.setdefault("options", {})["call_log"] = str(log)
    return write_yaml(tmp_path / "suite.yaml", data), tmp_path / "b.db", log


def test_run_stores_every_unit_and_resumes_without_calls(tmp_path):
    path, db, log = logged_suite(tmp_path)
    assert run_suite(path, db) == 0
    calls = len(log.read_text().splitlines())
    assert calls == 2 * (4 + 3)  # two contenders, seven prompts
    assert len(rows(db, "SELECT * FROM judgments")) == 4 + 3 * 2  # orders: both doubles the second section
    assert run_suite(path, db) == 0
    assert len(log.read_text().splitlines()) == calls  # nothing called again
    assert len(rows(db, "SELECT * FROM runs")) == 1
    assert len(rows(db, "SELECT * FROM judgments")) == 10


def test_new_run_reuses_generations_but_judges_again(tmp_path):
    path, db, log = logged_suite(tmp_path)
    assert run_suite(path, db) == 0
    calls = len(log.read_text().splitlines())
    assert run_suite(path, db, new_run=True) == 0
    assert len(log.read_text().splitlines()) == calls
    runs = rows(db, "SELECT id FROM runs")
    assert len(runs) == 2
    for r in runs:
        assert len(rows(db, "SELECT * FROM judgments WHERE run_id=?", r["id"])) == 10


def test_transient_failures_are_retried_and_logged_never_counted(tmp_path):
    data = scripted_suite(sections=[{"name": "s", "prompts": [f"p {i}" for i in range(10)]}])
    data["contenders"]["brie"]["options"]["transient_failures"] = 2
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    assert run_suite(path, db) == 0
    errors = rows(db, "SELECT * FROM errors")
    assert len(errors) == 20 and all(e["transient"] and not e["final"] for e in errors)
    assert {e["kind"] for e in errors} == {"rate_limit"}
    judged = rows(db, "SELECT * FROM judgments")
    assert len(judged) == 10 and all(j["winner"] == "brie" for j in judged)


def test_permanent_failure_is_recorded_and_exit_code_is_1(tmp_path):
    data = scripted_suite(sections=[{"name": "s", "prompts": ["fine prompt", "forbidden prompt", "another"]}])
    data["contenders"]["brie"]["options"]["permanent_if"] = "forbidden"
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    assert run_suite(path, db) == 1
    errors = rows(db, "SELECT * FROM errors")
    assert len(errors) == 1 and errors[0]["final"] and errors[0]["kind"] == "refusal"
    assert len(rows(db, "SELECT * FROM judgments")) == 2  # the blocked comparison is not a verdict
    assert rows(db, "SELECT status FROM runs")[0]["status"] == "incomplete"


def test_cli_dry_run_calls_nothing_and_counts_stored_units(tmp_path):
    log = tmp_path / "calls.jsonl"
    data = scripted_suite()
    data["contenders"]["brie"]["options"]["call_log"] = str(log)
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    runner = CliRunner()
    args = ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS)]
    result = runner.invoke(cli, [*args, "run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "judge calls: 10 (0 already stored)" in " ".join(result.output.split())
    assert not log.exists() and not db.exists()
    assert runner.invoke(cli, [*args, "run", str(path), "--limit", "2"]).exit_code == 0
    result = runner.invoke(cli, [*args, "run", str(path), "--dry-run"])
    assert "judge calls: 10 (6 already stored)" in " ".join(result.output.split())
    result = runner.invoke(cli, [*args, "run", str(path)])
    assert result.exit_code == 0
    assert "resuming run" in result.output
    assert len(rows(db, "SELECT * FROM judgments")) == 10


def test_cli_summary_counts_match_store(tmp_path):
    data = scripted_suite(judges={"biased": {"type": "fixed", "options": {"answer": "B"}}})
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "run", str(path), "--plugins-dir", str(FIXTURE_PLUGINS)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    judged = rows(db, "SELECT * FROM judgments")
    # random orders: one row per comparison; both orders: an always-"B" judge contradicts itself -> tie
    single = [r for r in judged if r["section"] == "philosophy"]
    wins = sum(r["winner"] == "brie" for r in single)
    losses = sum(r["winner"] == "baseline" for r in single)
    both = [r for r in judged if r["section"] == "brainstorm"]
    assert len(both) == 6 and {r["verdict"] for r in both} == {"B"}
    line = next(l for l in result.output.splitlines() if l.strip().startswith("biased"))
    cells = line.split()  # judge, W, L, T, inv, win%, fail, retried (one candidate: no candidate column)
    assert cells[1:5] == [str(wins), str(losses), "3", "0"]


def test_missing_api_key_fails_before_any_call(tmp_path, monkeypatch):
    monkeypatch.delenv("BRIE_TEST_KEY", raising=False)
    data = scripted_suite()
    data["contenders"]["brie"]["options"]["api_key_env"] = "BRIE_TEST_KEY"
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "run", str(path)])
    assert result.exit_code == 2
    assert "BRIE_TEST_KEY" in result.output and "brie" in result.output
    assert not db.exists()


def test_scripted_backend_requires_key_only_when_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIE_TEST_KEY", "sk-test-0123456789")
    data = scripted_suite()
    data["contenders"]["brie"]["options"]["api_key_env"] = "BRIE_TEST_KEY"
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "b.db"
    assert run_suite(path, db) == 0
    assert b"sk-test-0123456789" not in db.read_bytes()
    snapshot = json.loads(rows(db, "SELECT suite_snapshot FROM runs")[0]["suite_snapshot"])
    assert snapshot["contenders"]["brie"]["options"]["api_key_env"] == "BRIE_TEST_KEY"


def test_plugins_command_lists_sources_and_failures(tmp_path):
    broken = tmp_path / "plugs"
    broken.mkdir()
    (broken / "broken.py").write_text("import not_a_real_module_xyz\n")
    (broken / "good.py").write_text((FIXTURE_PLUGINS / "scripted.py").read_text())
    result = CliRunner().invoke(cli, ["plugins", "--verbose", "--plugins-dir", str(broken)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "scripted" in result.output and "built-in" in result.output
    assert "broken.py" in result.output and "not_a_real_module_xyz" in result.output
    assert "transient_failures" in result.output  # option schema shown with --verbose


def test_plugin_can_add_a_cli_command(tmp_path):
    import subprocess
    import sys

    plugs = tmp_path / "plugs"
    plugs.mkdir()
    (plugs / "hello.py").write_text(hello_command_plugin("hello from a plugin"))
    result = subprocess.run([sys.executable, "-m", "brie_bench", "--plugins-dir", str(plugs), "hello"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hello from a plugin" in result.stdout


def test_run_seed_reaches_the_judges(tmp_path) -> None:
    """`--seed` seeds the judges' sampling as well as the blinding; without it they keep the suite's seed."""
    from brie_bench.plugin_manager import load_plugins
    from brie_bench.runtime import build_runtime
    from brie_bench.suite import load_suite
    from helpers import FIXTURE_PLUGINS, scripted_suite, write_yaml

    suite = load_suite(write_yaml(tmp_path / "s.yaml", scripted_suite()))
    registry = load_plugins(FIXTURE_PLUGINS)
    default = build_runtime(suite, registry)
    seeded = build_runtime(suite, registry, seed=suite.spec.seed + 41)
    for name in suite.spec.judges:
        assert default.judges[name].context.seed == suite.spec.seed
        assert seeded.judges[name].context.seed == suite.spec.seed + 41
