"""Four `brie-bench run` processes, as four machines would run them, share one run on PostgreSQL.

Each worker is a separate process with its own working folder, its own caches (HF_HOME,
XDG_CACHE_HOME, BRIE_BENCH_CACHE) and its own copy of the suite file, as a separate
machine would have; they meet only in the database and at the provider (a loopback server
on 127.0.0.1 with a fixed latency, so the run lasts a few seconds). Each worker tags its
requests with its own `OPENAI_ORG_ID` (the OpenAI SDK sends it as a header), so the
server can tell them apart.

* Two of the four are killed with SIGKILL mid-run. The other two finish the run, and a
  rerun afterwards makes no call: every generation and every verdict was answered by the
  server exactly once, counted there by the request's content.
  A call that is being answered when its process dies is paid for again by whoever takes
  the unit over; no store can avoid that (the crash-resume test bounds it). So the victims
  are killed while their calls are held at the server (`LoopbackProvider.hold_when`), the
  moment a provider is mid-answer, and those calls are never answered.
* With `max_concurrency: 8` the server never has more than 8 calls of one model in
  flight, however many workers share the run; the same four workers on SQLite (limits per
  process) do exceed it, which shows the count would catch a broken global limit.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest

from brie_bench.testing.loopback import Call, LoopbackProvider
from hostile.kit import loopback, loopback_suite, summary, write_suite

ORG = "openai-organization"


def worker_env(home: Path, name: str) -> dict[str, str]:
    """The environment of one "machine": caches of its own, its requests tagged with its name."""
    env = dict(os.environ, COLUMNS="200", OPENAI_ORG_ID=name, HF_HOME=str(home / "hf"),
               XDG_CACHE_HOME=str(home / "cache"), BRIE_BENCH_CACHE=str(home / "cache" / "brie-bench"),
               BRIE_BENCH_LEASE_S="5")
    for key in ("BRIE_BENCH_DB", "OPENAI_BASE_URL"):
        env.pop(key, None)
    return env


def start_workers(tmp_path: Path, suite: Path, db: str, count: int) -> dict[str, subprocess.Popen[str]]:
    """`count` workers, each in its own folder with its own copy of the suite."""
    procs = {}
    for i in range(count):
        name = f"worker-{i}"
        home = tmp_path / name
        home.mkdir()
        copy = home / "suite.yaml"
        shutil.copyfile(suite, copy)
        procs[name] = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", db, "run", str(copy)],
                                       cwd=home, env=worker_env(home, name), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    return procs


def unit_of(call: Call) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What identifies a unit at the server: the model asked and the whole conversation sent."""
    return call.model, call.messages


def by_worker(srv: LoopbackProvider) -> Mapping[str, int]:
    """Model requests received per worker (held and unanswered ones included)."""
    return collections.Counter(r.headers.get(ORG, "?") for r in srv.requests
                               if r.method == "POST" and r.path.endswith("/chat/completions"))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stored_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        runs = conn.execute("SELECT id, status FROM runs").fetchall()
        assert len(runs) == 1, f"the workers did not share one run: {runs}"
        run_id = runs[0][0]
        return {"judgments": conn.execute("SELECT count(*) FROM judgments WHERE run_id=%s", (run_id,)).fetchone()[0],
                "generations": conn.execute("SELECT count(*) FROM generations").fetchone()[0],
                "complete": int(runs[0][1] == "complete")}


PROMPTS = 40


def test_four_workers_two_killed_every_unit_called_once(tmp_path: Path, postgres_url: str) -> None:
    frozen: set[str] = set()
    with loopback(latency_s=0.15, max_lifetime_s=240) as srv:
        srv.hold_when = lambda headers: headers.get(ORG) in frozen
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=PROMPTS,
                                                                    limits={"max_concurrency": 4}))
        planned = 2 * PROMPTS + PROMPTS  # two contenders' answers, one verdict per prompt
        procs = start_workers(tmp_path, suite, postgres_url, 4)
        victims = ["worker-1", "worker-2"]
        try:
            # Mid-run: a third of the calls answered, and both victims have called the server.
            wait_for(lambda: len(srv.calls) >= planned // 3 and all(by_worker(srv)[v] for v in victims),
                     "the run to be under way with every victim calling")
            frozen.update(victims)  # their calls now wait at the server, unanswered
            # The answers they already had are stored within milliseconds; give them a while.
            time.sleep(0.5)
            for v in victims:
                assert procs[v].poll() is None, f"{v} ended before the kill: {procs[v].communicate()}"
                procs[v].send_signal(signal.SIGKILL)
            for v in victims:
                procs[v].wait(timeout=30)
                assert procs[v].returncode == -signal.SIGKILL
            killed_at = len(srv.calls)
            assert killed_at < planned, "the run was over before the kill"
            for name, proc in procs.items():
                if name in victims:
                    continue
                out, err = proc.communicate(timeout=180)
                assert proc.returncode == 0, out + err
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=30)
        # A rerun from yet another "machine" finds the run complete: nothing left to call.
        home = tmp_path / "rerun"
        home.mkdir()
        shutil.copyfile(suite, home / "suite.yaml")
        rerun = subprocess.run([sys.executable, "-m", "brie_bench", "--db", postgres_url, "run",
                                str(home / "suite.yaml")], cwd=home, env=worker_env(home, "rerun"),
                               capture_output=True, text=True, timeout=180)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert summary(rerun.stdout)["calls"] == 0

        answered = collections.Counter(unit_of(c) for c in srv.calls)
        twice = {k: n for k, n in answered.items() if n > 1}
        assert not twice, f"units answered more than once: {twice}"
        assert len(answered) == planned, f"{len(answered)} units answered, {planned} planned"
        # The requests the server never answered are the victims' calls held when they died.
        unanswered = sum(by_worker(srv).values()) - len(srv.calls)
        assert 1 <= unanswered <= sum(by_worker(srv)[v] for v in victims), (unanswered, by_worker(srv))
        assert len(srv.calls) > killed_at, "the survivors took over nothing"

    counts = stored_counts(postgres_url)
    assert counts == {"judgments": PROMPTS, "generations": 2 * PROMPTS, "complete": 1}


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
def test_max_concurrency_holds_across_workers(tmp_path: Path, postgres_server: Any, store: str) -> None:
    """Four workers, `max_concurrency: 8`: at most 8 calls of a model in flight on PostgreSQL.

    On SQLite the same limit is per process, so the same four workers exceed 8, and the
    server's count is shown to catch it.
    """
    db = postgres_server.new_database() if store == "postgresql" else str(tmp_path / "shared.db")
    with loopback(latency_s=0.25, max_lifetime_s=240) as srv:
        prompts = 48
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=prompts,
                                                                    limits={"max_concurrency": 8}))
        procs = start_workers(tmp_path, suite, db, 4)
        for proc in procs.values():
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, out + err
        peaks = dict(srv.max_in_flight_by_model)
        answered = collections.Counter(unit_of(c) for c in srv.calls)
        assert len(answered) == 3 * prompts and max(answered.values()) == 1
        workers_calling = sum(1 for n in by_worker(srv).values() if n)
    print(store, "peak in flight by model", peaks, "workers that called:", workers_calling)
    assert workers_calling >= 2, "the run was not shared"
    if store == "postgresql":
        assert max(peaks.values()) <= 8, peaks
        assert max(peaks.values()) == 8, f"the limit was never reached: {peaks}"
    else:
        assert max(peaks.values()) > 8, f"per-process limits held 8 across processes on their own: {peaks}"
