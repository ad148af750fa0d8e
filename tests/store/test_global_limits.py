"""Run-wide limits on PostgreSQL: slots as advisory locks, shared by every worker, freed when a worker dies.

Against a real throw-away server (`postgres_url`): several processes, each with its own
database session and several tasks, hammer one limit; a counter in shared memory, outside
PostgreSQL, records how many were inside their slot at once. The peak must never pass
the limit, and must reach it (or the test would pass with a limit that serialises
everything). A holder killed with SIGKILL must free its slots at once, not after a lease.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest

from brie_bench.api import Limits
from brie_bench.global_limits import GlobalSlots, for_store, is_postgres_url, namespace
from brie_bench.limits import RateLimiter

RUN = "run-global-limits"


def _advisory_held(url: str, ns: int) -> int:
    """How many advisory locks of namespace `ns` are held in the server right now (pg_locks)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND granted "
                           "AND classid = %s AND objsubid = 2", (ns & 0xFFFFFFFF,)).fetchone()
    return int(row[0]) if row else 0


def _hammer(url: str, limit: int, tasks: int, calls: int, inside: Any, peak: Any, over: Any) -> None:
    """One worker process: `tasks` tasks each make `calls` calls under the run-wide limit."""

    async def main() -> None:
        slots = GlobalSlots(url, RUN, poll_s=0.002)
        limiter = slots.limit("judge", Limits(max_concurrency=limit))

        async def task() -> None:
            for _ in range(calls):
                async with limiter.slot():
                    with inside.get_lock():
                        inside.value += 1
                        peak.value = max(peak.value, inside.value)
                        if inside.value > limit:
                            over.value += 1
                    await asyncio.sleep(0.003)
                    with inside.get_lock():
                        inside.value -= 1

        try:
            await asyncio.gather(*(task() for _ in range(tasks)))
        finally:
            await slots.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("limit", [1, 3])
def test_processes_together_never_hold_more_slots_than_the_limit(postgres_url: str, limit: int) -> None:
    ctx = multiprocessing.get_context("fork")
    inside, peak, over = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    procs = [ctx.Process(target=_hammer, args=(postgres_url, limit, 3, 15, inside, peak, over)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert over.value == 0, f"{over.value} times more than {limit} calls held a slot at once"
    assert peak.value == limit, f"peak {peak.value}: the slots were never all used (limit {limit})"
    assert inside.value == 0
    assert _advisory_held(postgres_url, namespace(RUN, "judge")) == 0, "a slot was not given back"


def test_a_probe_takes_one_slot_and_pg_locks_shows_exactly_the_slots_in_use(postgres_url: str) -> None:
    async def main() -> None:
        a, b = GlobalSlots(postgres_url, RUN), GlobalSlots(postgres_url, RUN)
        la, lb = a.limit("judge", Limits(max_concurrency=5)), b.limit("judge", Limits(max_concurrency=5))
        try:
            taken = [await la.try_acquire() for _ in range(3)] + [await lb.try_acquire() for _ in range(2)]
            # A vanished machine's session (no FIN) must end in about a minute, not TCP's default two hours.
            assert (await a.execute("SHOW tcp_keepalives_idle", {}))[0] in ("30", "30s")
            assert sorted(t for t in taken if t is not None) == [0, 1, 2, 3, 4]
            assert _advisory_held(postgres_url, la.ns) == 5
            assert await la.try_acquire() is None and await lb.try_acquire() is None
            assert _advisory_held(postgres_url, la.ns) == 5  # a failed probe takes nothing
            slot = taken[0]
            assert slot is not None
            await la.release(slot)
            assert _advisory_held(postgres_url, la.ns) == 4
            assert await lb.try_acquire() == slot  # the freed slot, from the other session
            # Another name, or another run, has slots of its own.
            other = a.limit("baseline", Limits(max_concurrency=5))
            assert await other.try_acquire() is not None
            elsewhere = GlobalSlots(postgres_url, "another-run")
            try:
                assert await elsewhere.limit("judge", Limits(max_concurrency=5)).try_acquire() is not None
            finally:
                await elsewhere.aclose()
        finally:
            await a.aclose()
            await b.aclose()
        assert _advisory_held(postgres_url, namespace(RUN, "judge")) == 0  # closing a session frees its slots

    asyncio.run(main())


_HOLDER = """
import asyncio, sys, time
from brie_bench.api import Limits
from brie_bench.global_limits import GlobalSlots

async def main():
    slots = GlobalSlots(sys.argv[1], sys.argv[2])
    limit = slots.limit("judge", Limits(max_concurrency=int(sys.argv[3])))
    for _ in range(int(sys.argv[3])):
        assert await limit.try_acquire() is not None
    print("held", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_a_killed_holder_frees_its_slots_at_once(postgres_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, postgres_url, RUN, "2"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"

        async def main() -> float:
            slots = GlobalSlots(postgres_url, RUN)
            limit = slots.limit("judge", Limits(max_concurrency=2))
            try:
                assert await limit.try_acquire() is None  # the holder has both
                os.kill(proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                while await limit.try_acquire() is None:
                    assert time.monotonic() - killed < 5, "the dead worker's slots were not freed"
                    await asyncio.sleep(0.01)
                freed = time.monotonic() - killed
                assert await limit.try_acquire() is not None  # both of them
                return freed
            finally:
                await slots.aclose()

        freed = asyncio.run(main())
        assert freed < 2.0, f"the slots came free {freed:.2f} s after the kill"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_process_limit_and_the_global_limit_both_hold(postgres_url: str) -> None:
    """Two "workers" (two sessions) with 4 process slots each share 3 global slots: at most 3 calls at once."""

    async def main() -> tuple[int, list[int]]:
        sessions = [GlobalSlots(postgres_url, RUN, poll_s=0.002) for _ in range(2)]
        limits = Limits(max_concurrency=3)
        limiters = [RateLimiter(limits.model_copy(update={"max_concurrency": 4}), shared=s.limit("judge", limits))
                    for s in sessions]
        inside = 0
        peak = 0
        per_worker_peak = [0, 0]
        per_worker = [0, 0]

        async def call(i: int) -> None:
            nonlocal inside, peak
            async with limiters[i].slot(), limiters[i].global_slot():  # as the engine nests them
                inside += 1
                per_worker[i] += 1
                peak = max(peak, inside)
                per_worker_peak[i] = max(per_worker_peak[i], per_worker[i])
                await asyncio.sleep(0.01)
                inside -= 1
                per_worker[i] -= 1

        try:
            await asyncio.gather(*(call(i % 2) for i in range(60)))
        finally:
            for s in sessions:
                await s.aclose()
        return peak, per_worker_peak

    peak, per_worker_peak = asyncio.run(main())
    assert peak == 3
    assert max(per_worker_peak) <= 3


def test_requests_per_minute_spaces_calls_across_workers(postgres_url: str) -> None:
    """600 requests a minute is one every 0.1 s, whichever worker makes it."""

    async def main() -> list[float]:
        sessions = [GlobalSlots(postgres_url, RUN) for _ in range(3)]
        limits = Limits(max_concurrency=10, requests_per_minute=600)
        shared = [s.limit("judge", limits) for s in sessions]
        starts: list[float] = []

        async def call(i: int) -> None:
            async with shared[i % 3].slot():
                starts.append(time.monotonic())

        try:
            await asyncio.gather(*(call(i) for i in range(9)))
        finally:
            for s in sessions:
                await s.aclose()
        return sorted(starts)

    starts = asyncio.run(main())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) > 0.08, gaps  # 0.1 s apart, less the scheduling jitter of a busy machine
    assert starts[-1] - starts[0] >= 0.75


def test_only_a_postgresql_store_has_global_limits(tmp_path: Any) -> None:
    from brie_bench.store import Store

    assert is_postgres_url("postgresql://u@127.0.0.1/db") and is_postgres_url("POSTGRES://h/db")
    assert not is_postgres_url(str(tmp_path / "x.db")) and not is_postgres_url("sqlite:///x.db")
    with Store(str(tmp_path / "x.db")) as store:
        assert for_store(store, RUN) is None

    class PgLike:
        target = "postgresql://u@127.0.0.1/db"

    slots = for_store(PgLike(), RUN)
    assert slots is not None and slots.url == PgLike.target


def test_the_sqlite_path_never_imports_psycopg() -> None:
    code = ("import sys, brie_bench.engine, brie_bench.limits, brie_bench.global_limits; "
            "print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_backend_on_the_workers_own_hardware_keeps_its_limit_per_worker(postgres_url: str) -> None:
    """Four GPU boxes running an `hf` contender are four times one box: a local backend's
    `max_concurrency` is not shared across workers; a remote one's is."""
    import asyncio

    from brie_bench.api import BackendContext, BackendOptions, Limits, ModelBackend
    from brie_bench.engine import Engine
    from brie_bench.runtime import Runtime
    from brie_bench.store_api import open_store

    class OnThisMachine(ModelBackend):
        local = True

    class Elsewhere(ModelBackend):
        local = False

    context = BackendContext(role="contender", name="x")
    runtime = Runtime(contenders={"gpu": OnThisMachine("m", BackendOptions(), context),
                                  "api": Elsewhere("m", BackendOptions(), context)},
                      judges={}, limits={"gpu": Limits(max_concurrency=4), "api": Limits(max_concurrency=4)})
    with open_store(postgres_url) as store:
        run_id = store.create_run(suite_name="s", suite_path="s.yaml", fingerprint="fp", snapshot={}, seed=1,
                                  versions={}, metadata={})
        engine = Engine(store, run_id, runtime, run_seed=1)
        try:
            assert engine.limiters["gpu"].shared is None
            assert engine.limiters["api"].shared is not None
        finally:
            if engine.global_slots is not None:
                asyncio.run(engine.global_slots.aclose())


def test_the_sessions_that_say_a_worker_lives_end_soon_after_its_machine_vanishes(postgres_url: str) -> None:
    """The store's session and the lease keeper's hold the owner's liveness lock: both set TCP keepalive,
    so a machine gone without a FIN has its units taken over in about a minute, not TCP's two hours."""
    from brie_bench.leases import Leases
    from brie_bench.store_api import open_store

    with open_store(postgres_url) as store:
        leases = Leases(store, ttl_s=60)
        try:
            assert leases.claim(["g:one"]) == "claimed"  # the store's session now holds the liveness lock
            keeper: Any = leases._renewer
            for conn in (store.conn, keeper.conn):  # type: ignore[attr-defined]
                idle = conn.execute("SHOW tcp_keepalives_idle").fetchone()[0]
                count = conn.execute("SHOW tcp_keepalives_count").fetchone()[0]
                assert (idle, count) in (("30", "3"), ("30s", "3")), (idle, count)
        finally:
            leases.close()
