"""Two `brie-bench run` processes writing one database file at the same time.

SQLite (WAL, a busy timeout, one transaction per unit) must keep the file whole and
each run's units its own: every run ends exactly as it would have alone. The shared store is
each kind in turn (`store_target`): a SQLite file, then a PostgreSQL database (row locks,
one transaction per unit); the runs alone, for comparison, use SQLite.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from hostile.kit import integrity, llm_judge, loopback, loopback_suite, query, summary, write_suite


def run_alone(suite: Path, db: Path) -> None:
    assert execute_run(load_suite(suite), load_plugins(None), db=str(db), console=Console(file=io.StringIO())) == 0


def start(db: Path | str, suite: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))


def run_digest(db: Path | str, run_id: str) -> dict[str, Any]:
    """One run's judgments and links, without ids and timestamps."""
    judg = query(db, "SELECT unit_key, section, prompt_id, judge, presentation_order, label_a, label_b, gen_key_a, "
                     "gen_key_b, verdict, winner FROM judgments WHERE run_id=? ORDER BY unit_key", run_id)
    links = query(db, "SELECT section, prompt_id, sample_index, contender, gen_key FROM run_generations "
                      "WHERE run_id=? ORDER BY section, prompt_id, contender", run_id)
    return {"judgments": judg, "links": links}


def only_run(db: Path) -> str:
    runs = query(db, "SELECT id FROM runs")
    assert len(runs) == 1
    return runs[0]["id"]


def test_two_processes_two_suites_one_database(tmp_path: Path, store_target: str) -> None:
    with loopback(latency_s=0.03, max_lifetime_s=180) as srv:
        text = loopback_suite(srv, prompts=12, sections=2, both=True, name="text-judge",
                              limits={"max_concurrency": 4})
        # The same contenders and prompts (so both processes race to store the same generations),
        # judged differently (so the two runs have different units and assignments).
        json_ = copy.deepcopy(text)
        json_["name"] = "json-judge"
        json_["judges"] = {"judge": llm_judge(srv, verdict="json", limits={"max_concurrency": 4})}
        suites = {"text-judge": write_suite(tmp_path / "text.yaml", text),
                  "json-judge": write_suite(tmp_path / "json.yaml", json_)}
        alone = {}
        for name, path in suites.items():
            run_alone(path, tmp_path / f"{name}.db")
            alone[name] = run_digest(tmp_path / f"{name}.db", only_run(tmp_path / f"{name}.db"))

        shared = store_target
        procs = [start(shared, path) for path in suites.values()]
        outputs = [p.communicate(timeout=180) for p in procs]
        for p, (out, err) in zip(procs, outputs):
            assert p.returncode == 0, out + err
            assert not err.strip(), err

        assert integrity(shared) == "ok"
        runs = query(shared, "SELECT id, suite_name, status, started_at, finished_at FROM runs")
        assert sorted(r["suite_name"] for r in runs) == ["json-judge", "text-judge"]
        assert all(r["status"] == "complete" for r in runs)
        a, b = runs
        assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"], "the runs did not overlap"
        for r in runs:
            assert run_digest(shared, r["id"]) == alone[r["suite_name"]], f"run {r['suite_name']} differs"
        # The generations both runs use are stored once.
        assert query(shared, "SELECT COUNT(*) AS n FROM generations")[0]["n"] == 2 * 2 * 12
        assert query(shared, "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id || unit_key) AS d FROM judgments")[0] == \
            {"n": 2 * 36, "d": 2 * 36}


def test_two_processes_same_suite_one_database(tmp_path: Path, store_target: str) -> None:
    with loopback(latency_s=0.02, max_lifetime_s=180) as srv:
        data = loopback_suite(srv, prompts=10, limits={"max_concurrency": 4})
        suite = write_suite(tmp_path / "suite.yaml", data)
        run_alone(suite, tmp_path / "alone.db")
        want = run_digest(tmp_path / "alone.db", only_run(tmp_path / "alone.db"))

        shared = store_target
        procs = [start(shared, suite) for _ in range(2)]
        outputs = [p.communicate(timeout=180) for p in procs]
        for p, (out, err) in zip(procs, outputs):
            assert p.returncode == 0, out + err
        assert integrity(shared) == "ok"
        # Whether the second process started its own run or resumed the first one's, every run is
        # complete and exactly what one process alone makes, with no unit twice.
        runs = query(shared, "SELECT id, status FROM runs")
        assert 1 <= len(runs) <= 2 and all(r["status"] == "complete" for r in runs)
        for r in runs:
            assert run_digest(shared, r["id"]) == want
        # A rerun afterwards finds everything stored.
        again = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(shared), "run", str(suite)],
                               capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="200"))
        assert again.returncode == 0 and summary(again.stdout)["calls"] == 0


_OPEN_AT = """
import sys, time
from brie_bench.store import Store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time() - 0.01))
while time.time() < start:
    pass
Store(sys.argv[1]).close()
"""


def test_processes_opening_a_new_database_at_the_same_moment_all_succeed(tmp_path: Path, store_target: str) -> None:
    # Each opener switches the new file to WAL and creates the schema; the losers of that race
    # used to get "database is locked" at once (SQLite skips the busy timeout there). On
    # PostgreSQL the openers of one new database create the schema under an advisory lock.
    failures = []
    targets = [store_target] if store_target.startswith("postgres") else \
        [tmp_path / f"new-{round_}.db" for round_ in range(6)]
    for db in targets:
        start = time.time() + 0.5
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(db), repr(start)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        for p in procs:
            err = p.communicate(timeout=60)[1]
            if p.returncode:
                failures.append(err.strip().splitlines()[-1])
        assert integrity(db) == "ok"
    assert failures == []
