"""kill -9 at random moments, resume each time: the store ends exactly as an uninterrupted run's.

`brie-bench run` runs in a subprocess against a loopback provider (in this process, with a
little latency so the run is spread out); it is SIGKILLed five times at seeded random
moments, during generation and during judging, and rerun after each kill. After every
kill the database must pass `PRAGMA integrity_check`; at the end it must hold the same
units, assignments and verdicts as an uninterrupted run of the same suite and seed, with
nothing duplicated or lost, and the kills may only have cost the calls in flight.
The killed run uses each store in turn (`store_target`): a SQLite file, then PostgreSQL.
"""

from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from hostile.kit import integrity, loopback, loopback_suite, model_calls, query, store_digest, summary, \
    write_suite

PROMPTS, CONCURRENCY = 10, 3
GENERATIONS = 2 * 2 * PROMPTS          # two contenders, two sections
JUDGMENTS = 2 * PROMPTS + PROMPTS      # section 0 in both orders, section 1 once
KILLS = 5


def stored_units(db: Path | str) -> int:
    """Generations plus judgments stored so far (0 while the file or its tables do not exist yet)."""
    if str(db).startswith("postgres"):
        try:
            return sum(query(db, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in ("generations", "judgments"))
        except Exception:  # the tables are not created yet
            return 0
    db = Path(db)
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("generations", "judgments"))
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def cli(db: Path | str, suite: Path) -> subprocess.Popen:
    env = dict(os.environ, COLUMNS="200", BRIE_BENCH_RETRY_BASE_S="0.01")
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path: Path, store_target: str) -> None:
    rng = random.Random(1234)
    with loopback(latency_s=0.04, max_lifetime_s=240) as srv:
        data = loopback_suite(srv, prompts=PROMPTS, sections=2, both=True,
                              limits={"max_concurrency": CONCURRENCY})
        suite = write_suite(tmp_path / "suite.yaml", data)

        reference = tmp_path / "reference.db"
        assert execute_run(load_suite(suite), load_plugins(None), db=str(reference),
                           console=Console(file=io.StringIO())) == 0
        assert stored_units(reference) == GENERATIONS + JUDGMENTS
        srv.clear_log()

        db = store_target
        kills_at: list[int] = []
        for kill in range(KILLS):
            before = stored_units(db)
            remaining = GENERATIONS + JUDGMENTS - before
            # Seeded kill point: after a random number of further units, plus a random few milliseconds.
            target = before + rng.randint(1, max(1, remaining // (KILLS - kill + 1)))
            delay = rng.uniform(0.0, 0.03)
            proc = cli(db, suite)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline and stored_units(db) < target:
                time.sleep(0.005)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            output = proc.communicate(timeout=60)[0]
            assert proc.returncode == -signal.SIGKILL, f"kill {kill}: the run ended before the kill:\n{output}"
            assert integrity(db) == "ok", f"database damaged by kill {kill}"
            kills_at.append(stored_units(db))
        print("kills at", kills_at)
        # The kills landed in both phases.
        assert min(kills_at) < GENERATIONS <= max(kills_at) < GENERATIONS + JUDGMENTS, kills_at

        final = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                               capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, COLUMNS="200"))
        assert final.returncode == 0, final.stdout + final.stderr
        counts = summary(final.stdout)
        assert counts["gen_new"] + counts["gen_cached"] == GENERATIONS
        assert counts["judg_new"] + counts["judg_stored"] == JUDGMENTS
        assert integrity(db) == "ok"

        # Same units, same assignments (labels), same verdicts as the uninterrupted run.
        got, want = store_digest(db), store_digest(reference)
        assert got["generations"] == want["generations"]
        assert got["links"] == want["links"]
        assert got["judgments"] == want["judgments"]
        # One run, resumed each time; no duplicates; nothing lost.
        runs = query(db, "SELECT id, status FROM runs")
        assert len(runs) == 1 and runs[0]["status"] == "complete"
        assert query(db, "SELECT COUNT(*) AS n, COUNT(DISTINCT unit_key) AS d FROM judgments")[0] == \
            {"n": JUDGMENTS, "d": JUDGMENTS}
        assert query(db, "SELECT COUNT(*) AS n FROM generations")[0]["n"] == GENERATIONS
        # A kill costs at most the calls in flight: each unit was asked for at most once more per kill.
        calls = Counter(model_calls(srv))
        assert GENERATIONS + JUDGMENTS <= sum(calls.values()) <= GENERATIONS + JUDGMENTS + KILLS * 3 * CONCURRENCY
        assert calls["judge-model"] <= JUDGMENTS + KILLS * CONCURRENCY
