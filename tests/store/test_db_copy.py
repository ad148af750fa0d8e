"""`brie-bench db copy` moves runs between SQLite and PostgreSQL without losing or doubling a row.

* A real run (loopback provider) copied SQLite -> PostgreSQL -> SQLite gives the same
  `report --json` in all three stores, apart from the time it was generated.
* Copying again writes nothing; a copy killed with SIGKILL mid-way is finished by running it
  again, with every row once and the run's status restored.
* A bad source or target is one line and exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brie_bench.store_api import open_store
from hostile.kit import loopback, loopback_suite, query, write_suite


def bb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brie_bench", *args], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, COLUMNS="200"))


def report(db: str) -> dict:
    done = bb("--db", db, "report", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    data.pop("generated_at")
    return data


def counts(db: str) -> dict[str, int]:
    return {t: query(db, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]
            for t in ("runs", "generations", "run_generations", "judgments", "errors")}


@pytest.mark.timeout(300)
def test_a_run_round_trips_sqlite_postgres_sqlite_with_the_same_report(tmp_path: Path, postgres_url: str) -> None:
    with loopback(latency_s=0.01, max_lifetime_s=250) as srv:
        data = loopback_suite(srv, prompts=6, sections=2, both=True)
        suite = write_suite(tmp_path / "suite.yaml", data)
        laptop = str(tmp_path / "laptop.db")
        done = bb("--db", laptop, "run", str(suite))
        assert done.returncode == 0, done.stdout + done.stderr
    with open_store(laptop) as store:  # an error row too, so every table is copied
        run_id = store.run().id
        store.save_error(run_id=run_id, unit_key="u", unit_kind="judgment", name="judge", attempt=1, kind="timeout",
                         transient=True, final=False, message="slow")
    published = bb("db", "copy", laptop, postgres_url)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "judgments 18 new, 0 already there" in published.stdout
    again = bb("db", "copy", laptop, postgres_url)
    assert "judgments 0 new, 18 already there" in again.stdout and "errors 0 new, 1 already there" in again.stdout
    offline = str(tmp_path / "offline.db")
    back = bb("db", "copy", postgres_url, f"sqlite:///{offline}", "--run", run_id[:12])
    assert back.returncode == 0, back.stdout + back.stderr
    assert counts(laptop) == counts(postgres_url) == counts(offline)
    original = report(laptop)
    assert report(postgres_url) == original
    assert report(offline) == original
    listed = bb("--db", postgres_url, "runs")
    assert run_id in listed.stdout and "complete" in listed.stdout


def synthetic_run(db: str, judgments: int) -> str:
    """A run with many verdicts, written through the store's own import (fast, one transaction)."""
    with open_store(db) as store:
        run_id = store.create_run(suite_name="big", suite_path="big.yaml", fingerprint="fp", snapshot={}, seed=1,
                                  versions={}, metadata={})
        store.mark_run(run_id, "complete")
        rows = [dict(run_id=run_id, unit_key=f"u{i:06d}", section="s", prompt_id=f"p{i}", sample_index=0, judge="j",
                     judge_type="llm", judge_model=None, baseline="a", candidate="b", presentation_order=0, label_a="a",
                     label_b="b", gen_key_a="ga", gen_key_b="gb", verdict="A", winner="a", p_a=None, scores=None,
                     reasoning=None, invalid_reason=None, raw="Winner: A " + "x" * 200, input_tokens=1,
                     output_tokens=1, latency_s=0.5, created_at=1700000000.0 + i) for i in range(judgments)]
        store.import_rows("judgments", run_id, rows)
    return run_id


@pytest.mark.timeout(300)
def test_a_killed_copy_is_finished_by_running_it_again(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "big.db")
    total = 40_000
    run_id = synthetic_run(source, total)
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "db", "copy", source, postgres_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    copied = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            copied = query(postgres_url, "SELECT COUNT(*) AS n FROM judgments")[0]["n"]
        except Exception:  # the tables are not created yet
            copied = 0
        if copied > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    partial = query(postgres_url, "SELECT COUNT(*) AS n FROM judgments")[0]["n"]
    assert 0 < partial < total, f"the kill came at {partial} of {total} rows"
    assert query(postgres_url, "SELECT status FROM runs") == [{"status": "copying"}]
    done = bb("db", "copy", source, postgres_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"judgments {total - partial} new, {partial} already there" in done.stdout
    assert query(postgres_url, "SELECT COUNT(*) AS n, COUNT(DISTINCT unit_key) AS d FROM judgments") == \
        [{"n": total, "d": total}]
    assert query(postgres_url, "SELECT id, status FROM runs") == [{"id": run_id, "status": "complete"}]
    first = query(postgres_url, "SELECT unit_key FROM judgments ORDER BY seq LIMIT 3")
    assert [r["unit_key"] for r in first] == ["u000000", "u000001", "u000002"]  # stored order kept


def test_bad_sources_and_targets_are_one_line_and_exit_2(tmp_path: Path, postgres_url: str) -> None:
    source = str(tmp_path / "small.db")
    synthetic_run(source, 3)
    cases = {
        (str(tmp_path / "missing.db"), postgres_url): "database not found",
        (source, source): "the target is the source",
        (source, f"sqlite:///{source}"): "the target is the source",
        (source, "postgresql://nobody@127.0.0.1:1/none"): "cannot connect to the database",
        (source, "mysql://host/db"): "unknown database URL scheme 'mysql'",
        (source, str(tmp_path / "no-such-folder" / "x.db")): "does not exist",
    }
    for (src, dst), words in cases.items():
        done = bb("db", "copy", src, dst)
        assert done.returncode == 2, (src, dst, done.stdout + done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = bb("db", "copy", source, postgres_url, "--run", "nope")
    assert done.returncode == 2 and "no run 'nope'" in done.stderr
