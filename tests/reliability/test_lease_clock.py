"""Leases and time.

With the wall clock jumped forward 120 s, a process saw a live peer's leases as expired
and paid for six units of 36 twice. Now a lease of a live process on this host is never
taken over (its pid is asked), and a process reads lease times from a monotonic clock,
so a jump of its own wall clock moves nothing. Across hosts expiry still decides.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from brie_bench.leases import Leases
from brie_bench.store import Store
from hostile.kit import loopback, loopback_suite, model_calls, query, write_suite

#: `brie-bench run` in a process whose wall clock is 120 s ahead (time.time patched before anything imports it).
JUMPED = ("import sys, time\n"
          "_real = time.time\n"
          "time.time = lambda: _real() + 120.0\n"
          "from brie_bench.cli import main\n"
          "main(sys.argv[1:])\n")


def start(db: Path, suite: Path, *, jumped: bool = False) -> subprocess.Popen:
    head = ["-c", JUMPED] if jumped else ["-m", "brie_bench"]
    return subprocess.Popen([sys.executable, *head, "--db", str(db), "run", str(suite)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))


@pytest.mark.timeout(240)
def test_a_process_whose_clock_jumped_120_s_ahead_pays_no_unit_twice(tmp_path: Path) -> None:
    prompts = 8
    # About 8 s of calls (four waves of generations, four of verdicts): the second process is up
    # (2-3 s of imports) while the first still holds leases.
    with loopback(latency_s=0.8, max_lifetime_s=230) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=prompts,
                                                                    limits={"max_concurrency": 2}))
        db = tmp_path / "shared.db"
        first = start(db, suite)
        deadline = time.monotonic() + 120
        while len(model_calls(srv)) < 4 and time.monotonic() < deadline:  # some stored, more in flight
            time.sleep(0.02)
        assert query(db, "SELECT * FROM leases WHERE state='held'"), "the first process held no leases"
        jumped = start(db, suite, jumped=True)  # sees every lease of the first as expired by its clock
        outputs = [p.communicate(timeout=200) for p in (first, jumped)]
        calls = Counter(model_calls(srv))
    for p, (out, err) in zip((first, jumped), outputs):
        assert p.returncode == 0, out + err
    assert calls == {"base-model": prompts, "brie-model": prompts, "judge-model": prompts}, calls
    assert query(db, "SELECT COUNT(*) AS n FROM judgments")[0]["n"] == prompts


def held_by(store: Store, owner: str, expires_at: float) -> None:
    with store.conn:
        store.conn.execute("INSERT INTO leases(key, owner, state, expires_at, updated_at) VALUES "
                           "('g:unit', ?, 'held', ?, 0)", (owner, expires_at))


def test_a_live_process_on_this_host_keeps_its_lease_past_its_expiry(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        held_by(store, f"{socket.gethostname()}:{os.getppid()}:feedbeef", expires_at=0.0)  # expired long ago
        leases = Leases(store, ttl_s=60)
        try:
            assert leases.claim(["g:unit"]) == "held"
        finally:
            leases.close()


def test_a_dead_process_on_this_host_loses_its_lease_before_its_expiry(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(tmp_path / "db.sqlite") as store:
        held_by(store, f"{socket.gethostname()}:{dead.pid}:feedbeef", expires_at=time.time() + 3600)
        leases = Leases(store, ttl_s=60)
        try:
            assert leases.claim(["g:unit"]) == "claimed"
        finally:
            leases.close()


def test_lease_times_follow_the_monotonic_clock_when_the_wall_clock_jumps(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    with Store(tmp_path / "db.sqlite") as store:
        held_by(store, "elsewhere.example:1:feedbeef", expires_at=real() + 60)  # another host, live for a minute
        leases = Leases(store, ttl_s=60)
        try:
            monkeypatch.setattr(time, "time", lambda: real() + 120.0)  # the wall clock jumps
            assert abs(leases.now() - real()) < 5
            assert leases.claim(["g:unit"]) == "held"  # by the jumped wall clock it had expired
            assert leases.claim(["g:mine"]) == "claimed"
            mine = query(tmp_path / "db.sqlite", "SELECT expires_at FROM leases WHERE key='g:mine'")[0]
            assert abs(mine["expires_at"] - (real() + 60)) < 5  # written on the same clock, not 120 s ahead
        finally:
            monkeypatch.setattr(time, "time", real)
            leases.close()
