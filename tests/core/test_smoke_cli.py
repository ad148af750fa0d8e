"""The offline smoke suite through the real CLI: run, kill -9 part-way, resume; nothing lost, nothing twice."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
SMOKE = REPO / "suites" / "smoke.yaml"
TOTAL_GENERATIONS, TOTAL_JUDGMENTS = 12, 9


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def _cli(db: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.fixture
def cli_env(tiny_cache: Path, tiny_base_path: Path, tiny_adapter_path: Path, tiny_judge_path: Path) -> dict[str, str]:
    env = dict(os.environ, BRIE_BENCH_CACHE=str(tiny_cache), COLUMNS="200")
    return env


def _stats(output: str) -> dict[str, int]:
    flat = " ".join(output.split())
    m = re.search(r"generations: (\d+) new, (\d+) cached, (\d+) failed; judgments: (\d+) new, (\d+) stored, "
                  r"(\d+) failed", flat)
    assert m, output
    keys = ("gen_new", "gen_cached", "gen_failed", "judg_new", "judg_stored", "judg_failed")
    return dict(zip(keys, map(int, m.groups())))


def test_smoke_run_twice_second_makes_no_calls(tmp_path, cli_env):
    db = tmp_path / "smoke.db"
    first = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE)],
                           capture_output=True, text=True, env=cli_env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    stats = _stats(first.stdout)
    assert stats["gen_new"] == TOTAL_GENERATIONS and stats["judg_new"] == TOTAL_JUDGMENTS
    assert "tiny-judge" in first.stdout
    second = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE)],
                            capture_output=True, text=True, env=cli_env, timeout=300)
    assert second.returncode == 0
    assert "model calls: 0," in " ".join(second.stdout.split())
    stats = _stats(second.stdout)
    assert stats["gen_new"] == 0 and stats["judg_new"] == 0 and stats["judg_stored"] == TOTAL_JUDGMENTS


def test_smoke_killed_and_resumed_loses_nothing_and_repeats_nothing(tmp_path, cli_env):
    db = tmp_path / "smoke.db"
    # Kill once as soon as some generations are stored, once as soon as some judgments are.
    for table in ("generations", "judgments"):
        proc = _cli(db, cli_env)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if _count(db, table) >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
        proc.stdout.close()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    stored_gen, stored_judg = _count(db, "generations"), _count(db, "judgments")
    assert stored_gen >= 1
    final = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE)],
                           capture_output=True, text=True, env=cli_env, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    stats = _stats(final.stdout)
    # Nothing stored was made again, and everything missing was made exactly once.
    assert stats["gen_cached"] == stored_gen and stats["gen_new"] == TOTAL_GENERATIONS - stored_gen
    assert stats["judg_stored"] == stored_judg and stats["judg_new"] == TOTAL_JUDGMENTS - stored_judg
    assert _count(db, "generations") == TOTAL_GENERATIONS and _count(db, "judgments") == TOTAL_JUDGMENTS
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(DISTINCT unit_key) FROM judgments").fetchone()[0] == TOTAL_JUDGMENTS


def test_summary_cost_table_and_json_give_one_call_count(tmp_path, cli_env):
    """A call is one answer or one verdict (`brie_bench.calls`), whatever the batch size, so the
    summary, the JSON's cost block and the HTML cost table agree on a fresh run."""
    import json

    from brie_bench.calls import DEFINITION

    db = tmp_path / "smoke.db"
    first = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE)],
                           capture_output=True, text=True, env=cli_env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    m = re.search(r"model calls: (\d+),", " ".join(first.stdout.split()))
    assert m, first.stdout
    summary_calls = int(m.group(1))
    assert summary_calls == TOTAL_GENERATIONS + TOTAL_JUDGMENTS  # the smoke contenders answer in batches
    report = subprocess.run([sys.executable, "-m", "brie_bench", "report", "--db", str(db), "--json"],
                            capture_output=True, text=True, env=cli_env, timeout=120)
    assert report.returncode == 0, report.stderr
    cost = json.loads(report.stdout)["cost"]
    assert cost["calls"] == summary_calls
    assert sum(c["calls"] for c in cost["contenders"] + cost["judges"]) == summary_calls
    html = tmp_path / "r.html"
    made = subprocess.run([sys.executable, "-m", "brie_bench", "report", "--db", str(db), "--html", str(html)],
                          capture_output=True, text=True, env=cli_env, timeout=120)
    assert made.returncode == 0, made.stderr
    page = html.read_text(encoding="utf-8")
    assert f'<th colspan="2">total</th><th class="n">{summary_calls}</th>' in page
    assert DEFINITION.split(":")[0].capitalize() in page
    docs = (REPO / "docs" / "report-schema.md").read_text(encoding="utf-8")
    assert "a batch of\n8 answers is 8 calls" in docs or "a batch of 8 answers is 8 calls" in docs
