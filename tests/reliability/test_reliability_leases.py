"""Several processes on one database share a run through unit leases.

* Three `brie-bench run` processes started at once on one new database, against the
  loopback server, make exactly one model call per unit in total; each summary's counts
  add up to what the store holds, and the work was shared (no process did it all).
* A process killed with SIGKILL leaves its leases behind. The next process on the same
  host sees that its pid is gone and takes its units over at once; leases of a process on
  another host (simulated by rewriting the owner) are taken over once they expire.

Both run on each store (`store_target`): a SQLite file and a real PostgreSQL database, where
the killed process's session ends with it and its units are free at once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from brie_bench.store import Store
from hostile.kit import integrity, loopback, loopback_suite, model_calls, query, summary, write_suite


def start(db: Path | str, suite: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200", **env))


@pytest.mark.timeout(300)
def test_three_processes_on_one_new_database_call_each_unit_once(tmp_path: Path, store_target: str) -> None:
    prompts = 30
    # Calls slow enough (about 8 s of work) that all three processes are up before it is done.
    with loopback(latency_s=0.15, max_lifetime_s=280) as srv:
        data = loopback_suite(srv, prompts=prompts, sections=2, both=True, limits={"max_concurrency": 4})
        suite = write_suite(tmp_path / "suite.yaml", data)
        db = store_target
        procs = [start(db, suite) for _ in range(3)]
        outputs = [p.communicate(timeout=240) for p in procs]
        calls = model_calls(srv)
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out + err
        assert not err.strip(), err
    assert integrity(db) == "ok"
    runs = query(db, "SELECT id, status FROM runs")
    assert len(runs) == 1 and runs[0]["status"] == "complete", runs  # all three joined one run
    run_id = runs[0]["id"]
    n_gens = 2 * 2 * prompts                  # two contenders, two sections (distinct prompts)
    n_judgments = prompts * 2 + prompts       # section 0 judged in both orders
    assert query(db, "SELECT COUNT(*) AS n FROM generations")[0]["n"] == n_gens
    assert query(db, "SELECT COUNT(*) AS n FROM judgments WHERE run_id=?", run_id)[0]["n"] == n_judgments
    # Exactly one call per unit, over the three processes together.
    per_model = Counter(calls)
    assert per_model == {"base-model": n_gens // 2, "brie-model": n_gens // 2, "judge-model": n_judgments}, per_model
    counts = [summary(out) for out, _ in outputs]
    assert sum(c["calls"] for c in counts) == len(calls)
    for c in counts:  # each process's summary adds up to the store
        assert c["gen_new"] + c["gen_cached"] == n_gens and c["gen_failed"] == 0, c
        assert c["judg_new"] + c["judg_stored"] == n_judgments and c["judg_failed"] == c["judg_waiting"] == 0, c
    assert sum(c["gen_new"] for c in counts) == n_gens
    assert sum(c["judg_new"] for c in counts) == n_judgments
    assert sum(1 for c in counts if c["gen_new"] + c["judg_new"] > 0) >= 2, "one process did all the work"
    assert query(db, "SELECT COUNT(*) AS n FROM leases")[0]["n"] == 0, "leases left behind"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("where", ["same-host", "other-host"])
def test_a_killed_process_leaves_its_units_to_the_next_one(tmp_path: Path, where: str, store_target: str) -> None:
    with loopback(latency_s=0.5, max_lifetime_s=280) as srv:
        data = loopback_suite(srv, prompts=6, limits={"max_concurrency": 3})
        suite = write_suite(tmp_path / "suite.yaml", data)
        db = store_target
        env = {"BRIE_BENCH_LEASE_S": "3"}
        victim = start(db, suite, **env)
        deadline = time.monotonic() + 120
        while len(model_calls(srv)) < 4 and time.monotonic() < deadline:  # some stored, three in flight
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        held = query(db, "SELECT key, owner FROM leases WHERE state='held'")
        assert held, "the killed process held no leases"
        if where == "other-host":  # nobody here can tell whether it is alive: wait for the expiry
            rewrite_owners(db)
        heir = start(db, suite, **env)
        out, err = heir.communicate(timeout=240)
    assert heir.returncode == 0, out + err
    assert query(db, "SELECT status FROM runs")[0]["status"] == "complete"
    assert query(db, "SELECT COUNT(*) AS n FROM generations")[0]["n"] == 12
    assert query(db, "SELECT COUNT(*) AS n FROM judgments")[0]["n"] == 6
    assert not query(db, "SELECT * FROM leases"), "the dead process's leases were not taken over"
    c = summary(out)
    assert c["gen_new"] + c["gen_cached"] == 12 and c["judg_new"] + c["judg_stored"] == 6


def rewrite_owners(db: str) -> None:
    """Make every lease look owned by a process on another host."""
    if db.startswith("postgres"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            pg.execute("UPDATE leases SET owner = 'elsewhere.example:1:' || owner")
        return
    conn = sqlite3.connect(db)
    conn.execute("UPDATE leases SET owner = 'elsewhere.example:1:' || owner")
    conn.commit()
    conn.close()


def test_claims_respect_other_owners_until_the_lease_expires(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        since = time.time() - 1
        assert store.claim("p1", ["g:a", "g:b"], ttl_s=60, since=since) == "claimed"
        assert store.claim("p2", ["g:b"], ttl_s=60, since=since) == "held"
        assert store.lease_state("p2", ["g:a"], since=since) == "held"
        assert store.claim("p1", ["g:a"], ttl_s=60, since=since) == "claimed"  # an owner may renew its own
        assert store.claim("p2", ["g:c"], ttl_s=60, since=since, stored=lambda: True) == "stored"
        store.release("p1", ["g:a"], failed=True)
        assert store.claim("p2", ["g:a"], ttl_s=60, since=since) == "failed"  # a peer gave up on it: not again
        assert store.claim("p3", ["g:a"], ttl_s=60, since=time.time() + 1) == "claimed"  # a later rerun retries
        store.conn.execute("UPDATE leases SET expires_at=0 WHERE key='g:b'")
        store.conn.commit()
        assert store.claim("p2", ["g:b"], ttl_s=60, since=since) == "claimed"  # expired: taken over
        assert store.renew("p2", 60) == 1
        store.release_all("p2")
        assert {r["key"] for r in store.conn.execute("SELECT key FROM leases")} == {"g:a"}
