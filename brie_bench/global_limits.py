"""A suite's limits shared by every worker of a run on PostgreSQL: concurrency slots and request spacing.

Why it exists: each `brie-bench run` process applies the suite's `limits` on its own
(`brie_bench.limits.RateLimiter`), so four machines sharing one run would make
4 x `max_concurrency` calls at once and exceed a provider's quota or swamp a shared
vLLM server. On a PostgreSQL store the limits become global:

* **Concurrency.** A contender or judge with `max_concurrency: N` has N slots per run,
  PostgreSQL advisory locks ``(ns, 0) ... (ns, N-1)`` in the two-``int4`` key space, where
  ``ns`` is a hash of the run id and the name. A call takes a free slot with
  ``pg_try_advisory_lock`` before it starts and gives it back with ``pg_advisory_unlock``
  when it ends. Advisory locks belong to the database session that took them, so a worker
  that dies (``kill -9``, a lost machine, a dropped network) frees its slots the moment
  its session ends, without waiting for any lease to expire. One connection per process
  holds all of its slots (locks on different keys do not conflict within a session).
* **Requests per minute.** One row per (run, name) in the unlogged table
  ``brie_bench_rate`` holds the earliest start of the next call; each call moves it on by
  ``60 / requests_per_minute`` in one statement on the server's clock, so the spacing is
  global and no host's clock matters. Created on first use, only when a suite sets
  `requests_per_minute`.

A call still needs a slot of its own process first (the per-process semaphore, capped by
``--concurrency``); the engine then claims the unit's lease and only then takes a global
slot (`RateLimiter.global_slot`), so a process never holds more global slots than it can
use and a unit a peer holds never occupies one. `tokens_per_minute` stays per process.

**Hand-off.** A call that ends while another call of the same process waits for a slot of
the same name passes its slot straight on, with no round trip, at most `HANDOFF_STREAK`
times in a row (then the slot goes back to the run, so the other workers get their turn).
Otherwise the slot's release and a ``pg_notify`` on the run's channel go in one statement;
every process LISTENs on that channel on a session of its own (`GlobalSlots.listen`), and a
waiter probes again the moment a release of its name arrives. Polling every few
milliseconds instead spent the machine's CPU on probes, and waking every waiting process
on every release costs nearly as much (each one probes): the direct hand-off is what
makes a release cheap when the limit binds. A holder that dies sends no NOTIFY (its
session just ends), so a waiter also probes every `poll_s` (jittered) on its own: a killed
worker's slots are free at once and taken within that fallback. One probe at a time per
name and process, and a wake-up that a probe begun after it already answered is not
probed again.

Nothing here is imported on the SQLite path: the engine asks `for_store` only when its
store names a PostgreSQL URL, and psycopg is imported when the first slot is taken.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from brie_bench.api import Limits
from brie_bench.store_api import is_postgres_target

#: How long a waiter waits for a release's NOTIFY before it probes anyway (jittered x0.5-1.5): the
#: fallback that finds the slots of a holder that died (its session's end sends no NOTIFY).
DEFAULT_POLL_S = 0.2

#: How many calls of one process in a row may pass a slot straight on before it is released to the run.
HANDOFF_STREAK = 4

#: The slots session's TCP keepalive (seconds idle, seconds between probes, probes): a worker
#: whose machine vanished without closing its connection loses its slots after about 45 s.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 30, 5, 3

#: The statement that applies them to one session (server-side settings of that session only). The store's
#: sessions that hold an owner's liveness lock run it too (`brie_bench.store_pg`).
KEEPALIVE_SQL = (f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S}; SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S}; "
                 f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}")

_RATE_TABLE = """
CREATE UNLOGGED TABLE IF NOT EXISTS brie_bench_rate (
    key TEXT PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL
)"""

# The seconds this call waits: the row's next start moves on by one gap, from now at the earliest.
_RATE_STEP = """
INSERT INTO brie_bench_rate AS r (key, next_at) VALUES (%(key)s, extract(epoch FROM clock_timestamp()) + %(gap)s)
ON CONFLICT (key) DO UPDATE SET next_at = greatest(r.next_at, extract(epoch FROM clock_timestamp())) + %(gap)s
RETURNING next_at - %(gap)s - extract(epoch FROM clock_timestamp())"""

# The first free slot, starting at a random one. Advisory locks are re-entrant within a session, so
# the slots this session already holds (for other calls of this process) are skipped first: CASE fixes
# that order, where the planner may reorder the terms of an AND. A qualifier under LIMIT runs row by
# row until the limit is met, so at most one lock is taken (tested: `pg_locks` holds exactly the slots
# in use).
_TRY_SLOT = """
SELECT k FROM (SELECT (s + %(start)s) %% %(n)s AS k FROM generate_series(0, %(n)s - 1) AS s) AS slots
WHERE CASE WHEN k = ANY(%(mine)s::int[]) THEN false ELSE pg_try_advisory_lock(%(ns)s, k) END LIMIT 1"""

# A process with calls waiting for a slot of a name holds that name's marker, (ns, -1) in shared mode,
# taken after a probe found nothing and before the probe that follows. A release NOTIFYs only when
# another session holds a marker (the exclusive try fails), so that processes with nobody waiting
# are not woken on every call. No wake-up is lost: a waiter's marker is taken before its last probe,
# so a release either comes before that probe (which sees the slot) or sees the marker.
_MARK = "SELECT pg_advisory_lock_shared(%(ns)s, -1)"

# Give a slot back and tell the waiting processes, in one round trip (with `_UNMARK`, also drop this
# session's marker); the last column says whether it NOTIFYed. In autocommit the NOTIFY is sent when
# the statement commits, after the unlock: a woken waiter finds the slot free.
_RELEASE = ("SELECT pg_advisory_unlock(%(ns)s, %(k)s), CASE WHEN pg_try_advisory_xact_lock(%(ns)s, -1) THEN false "
            "ELSE pg_notify(%(channel)s, %(payload)s) IS NOT NULL END")
_RELEASE_UNMARK = ("SELECT pg_advisory_unlock(%(ns)s, %(k)s), pg_advisory_unlock_shared(%(ns)s, -1), "
                   "CASE WHEN pg_try_advisory_xact_lock(%(ns)s, -1) THEN false "
                   "ELSE pg_notify(%(channel)s, %(payload)s) IS NOT NULL END")


def is_postgres_url(url: str | None) -> bool:
    """Whether `url` names a PostgreSQL database (``postgresql://`` or ``postgres://``, as `store_api` reads it)."""
    return bool(url) and is_postgres_target(str(url))


def namespace(run_id: str, name: str) -> int:
    """The signed 32-bit first key of `name`'s slots in `run_id`: the same in every process and machine."""
    digest = hashlib.sha256(f"brie-bench slots\0{run_id}\0{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def channel(run_id: str) -> str:
    """The run's NOTIFY channel (lower-case, under 63 bytes): a release's payload names its namespace."""
    return "brie_bench_slots_" + hashlib.sha256(f"brie-bench slots\0{run_id}".encode()).hexdigest()[:16]


class _Waiting:
    """This process's calls waiting for a slot of one name, and the releases of that name it has seen."""

    def __init__(self) -> None:
        #: How many releases of this name (NOTIFYs) this process has seen.
        self.gen = 0
        #: The generation at the start of the latest probe that found no slot: a waiter woken at or
        #: before it needs no probe of its own (that probe already saw the release).
        self.failed_gen = -1
        #: One future per waiting call, oldest first: None wakes it to probe, a number hands it that slot.
        self.calls: collections.deque[asyncio.Future[int | None]] = collections.deque()

    def wake(self) -> None:
        """A slot of this name was released somewhere: every waiting call probes (one at a time)."""
        self.gen += 1
        for call in self.calls:
            if not call.done():
                call.set_result(None)

    def hand_over(self, slot: int) -> bool:
        """Give `slot`, held by this session, to the call that has waited longest here; False when none waits."""
        for call in self.calls:
            if not call.done():
                call.set_result(slot)
                return True
        return False


class GlobalSlots:
    """One process's share of a run's global limits: one database session holding this process's slots.

    The connection is opened on first use inside the running event loop and closed by
    `aclose` (the engine's `run` does so when it ends). Should the session be lost, every
    slot it held is free for the other workers at once; this process reconnects on its
    next call, and the calls already running finish without a slot (a brief overshoot of
    at most this process's calls in flight, never a failed unit).
    """

    def __init__(self, url: str, run_id: str, *, poll_s: float = DEFAULT_POLL_S,
                 rng: random.Random | None = None) -> None:
        self.url = url
        self.run_id = run_id
        self.poll_s = poll_s
        self.rng = rng or random.Random()
        self._conn: Any = None  # psycopg.AsyncConnection, imported lazily
        self._connecting: asyncio.Lock | None = None
        self._rate_ready = False
        #: The slots this session holds, by namespace: a session may take an advisory lock it holds again.
        self.held: dict[int, set[int]] = {}
        #: The namespaces whose waiting marker this session holds (`_MARK`).
        self.marked: set[int] = set()
        self.channel = channel(run_id)
        self.waiting: dict[int, _Waiting] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: Any = None
        self._listening: asyncio.Lock | None = None

    def limit(self, name: str, limits: Limits) -> GlobalLimit:
        """The global side of `name`'s limits (the suite's own values, not the per-process cap)."""
        return GlobalLimit(self, name, limits)

    async def connection(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None or self._conn.closed:
                import psycopg

                self.held.clear()
                self.marked.clear()  # a new session holds nothing

                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             application_name="brie-bench slots")
                # A machine that vanishes (power, network) sends no FIN: the server would keep its
                # session, and its slots, until TCP keepalive gives up (2 hours by default on Linux).
                # These server-side settings of this one session end it within about a minute.
                await conn.execute(KEEPALIVE_SQL)
                self._conn = conn
                self._rate_ready = False
            return self._conn

    async def execute(self, sql: str, params: dict[str, Any]) -> Any:
        """One statement on the slots session; the first row, or None."""
        import psycopg

        conn = await self.connection()
        try:
            cur = await conn.execute(sql, params)
            return await cur.fetchone() if cur.description else None
        except psycopg.OperationalError:
            await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.held.clear()
        self.marked.clear()
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - the session is gone either way
                pass

    async def ensure_rate_table(self) -> None:
        if self._rate_ready:
            return
        import psycopg

        try:
            await self.execute(_RATE_TABLE, {})
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
            # Another worker created it at the same moment: IF NOT EXISTS does not cover that race, and
            # PostgreSQL names it by the first catalog row that collides (the table's row type is one).
            pass
        self._rate_ready = True

    def waiting_for(self, ns: int) -> _Waiting:
        found = self.waiting.get(ns)
        if found is None:
            found = self.waiting[ns] = _Waiting()
        return found

    async def listen(self) -> None:
        """Make sure this process LISTENs on the run's channel (once; again after its session was lost).

        A session of its own: psycopg's `notifies` holds its connection while it waits. When it
        cannot be opened, waiters still find free slots by the fallback poll (and the slots
        session reports a database that is really gone).
        """
        if self._listener is not None and not self._listener.done():
            return
        if self._listening is None:
            self._listening = asyncio.Lock()
        async with self._listening:
            if self._listener is not None and not self._listener.done():
                return
            import psycopg
            from psycopg import sql

            await self._stop_listening()
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             application_name="brie-bench slots listener")
                # A listener that vanished without reading would hold back the server's NOTIFY queue.
                await conn.execute(KEEPALIVE_SQL)
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except psycopg.OperationalError:
                return
            self._listen_conn = conn
            self._listener = asyncio.create_task(self._pump(conn), name="brie-bench slots listener")

    async def _pump(self, conn: Any) -> None:
        """Wake this process's waiters of each name whose slot was released, for as long as the session lives."""
        import psycopg

        try:
            async for note in conn.notifies():
                try:
                    ns = int(note.payload)
                except ValueError:
                    continue
                waiting = self.waiting.get(ns)
                if waiting is not None:
                    waiting.wake()
        except (psycopg.OperationalError, OSError):
            pass  # the session is gone: waiters poll until `listen` opens another
        finally:
            for waiting in self.waiting.values():
                waiting.wake()  # probe once now rather than after a whole fallback interval

    async def _stop_listening(self) -> None:
        task, self._listener = self._listener, None
        conn, self._listen_conn = self._listen_conn, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping it either way
                pass
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - the session is gone either way
                pass

    async def aclose(self) -> None:
        """Close the sessions: every slot still held is released with them."""
        await self._stop_listening()
        await self._drop()


class GlobalLimit:
    """`max_concurrency` slots and `requests_per_minute` spacing of one contender or judge, across all workers."""

    def __init__(self, slots: GlobalSlots, name: str, limits: Limits) -> None:
        self.slots = slots
        self.name = name
        self.max_concurrency = limits.max_concurrency
        self.requests_per_minute = limits.requests_per_minute
        self.ns = namespace(slots.run_id, name)
        self.waiting = slots.waiting_for(self.ns)
        #: How many times running each slot went from one call of this process straight to the next.
        self._streak: dict[int, int] = {}
        self._giving_back: set[asyncio.Task[None]] = set()
        self._probe: asyncio.Lock | None = None

    @property
    def held(self) -> set[int]:
        """The slots of this name that this process holds now."""
        return self.slots.held.setdefault(self.ns, set())

    async def try_acquire(self) -> int | None:
        """Take a free slot now: its number, or None when all `max_concurrency` are held."""
        if len(self.held) >= self.max_concurrency:
            return None
        row = await self.slots.execute(_TRY_SLOT, {"ns": self.ns, "n": self.max_concurrency, "mine": sorted(self.held),
                                                   "start": self.slots.rng.randrange(self.max_concurrency)})
        if row is None:
            return None
        slot = int(row[0])
        self.held.add(slot)
        return slot

    async def acquire(self) -> int:
        """Wait for a free slot: probe; then wait for a slot handed over here, a release's NOTIFY, or the fallback poll."""
        if self._probe is None:
            self._probe = asyncio.Lock()
        await self.slots.listen()  # before the first probe: a release after it is not missed
        waiting = self.waiting
        while True:
            gen = waiting.gen
            async with self._probe:
                # Another call's probe that began after the latest wake-up and found nothing answers for this one.
                if waiting.failed_gen < waiting.gen:
                    started = waiting.gen
                    slot = await self.try_acquire()
                    if slot is None and self.ns not in self.slots.marked:
                        # From now on releases elsewhere NOTIFY this process; a release before this is
                        # seen by the probe that follows.
                        await self.slots.execute(_MARK, {"ns": self.ns})
                        self.slots.marked.add(self.ns)
                        slot = await self.try_acquire()
                    if slot is not None:
                        return slot
                    waiting.failed_gen = max(waiting.failed_gen, started)
            if waiting.gen != gen:
                continue  # a release arrived while this call probed or waited for the probe
            call: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            waiting.calls.append(call)
            timed_out = False
            try:
                async with asyncio.timeout(self.slots.poll_s * self.slots.rng.uniform(0.5, 1.5)):
                    await call
            except TimeoutError:
                timed_out = True
            except BaseException:
                handed = call.result() if call.done() and not call.cancelled() else None
                if handed is not None:  # cancelled the moment a slot was handed over: pass it on
                    self._pass_on(handed)
                raise
            finally:
                waiting.calls.remove(call)
            handed = call.result() if call.done() and not call.cancelled() else None
            if handed is not None:
                return handed  # straight from a call of this process that ended (even if it came as time ran out)
            if timed_out:
                waiting.failed_gen = -1  # the fallback: probe, whatever the last probe found
                await self.slots.listen()  # and listen again if that session was lost

    async def release(self, slot: int) -> None:
        """Give `slot` back: to a call of this process waiting for one (no round trip), or to the run.

        A slot goes from call to call inside one process at most `HANDOFF_STREAK` times in a
        row; then it is released (and NOTIFYed) so that the other workers get their turn.
        """
        streak = self._streak.get(slot, 0)
        if slot in self.held and streak < HANDOFF_STREAK and self.waiting.hand_over(slot):
            self._streak[slot] = streak + 1
            return
        self._streak.pop(slot, None)
        import psycopg

        if self._probe is None:
            self._probe = asyncio.Lock()
        # Between two probes, not during one: a call whose probe failed is already among the waiting
        # ones (it registers before it yields), so dropping the marker cannot strand it without a NOTIFY.
        async with self._probe:
            self.held.discard(slot)
            # A probe that found nothing before this release no longer speaks for the calls that come next.
            self.waiting.failed_gen = -1
            waiting_here = any(not call.done() for call in self.waiting.calls)
            unmark = self.ns in self.slots.marked and not waiting_here  # nobody here waits any more
            notified = False
            try:
                row = await self.slots.execute(_RELEASE_UNMARK if unmark else _RELEASE,
                                               {"ns": self.ns, "k": slot, "channel": self.slots.channel,
                                                "payload": str(self.ns)})
                notified = bool(row is not None and row[-1])
                if unmark:
                    self.slots.marked.discard(self.ns)
            except psycopg.OperationalError:
                pass  # the session is gone, and its locks with it
        if waiting_here and not notified:
            # Only this process waits (its own marker makes no NOTIFY): wake its calls here. When others
            # wait too, this process's calls hear the same NOTIFY as theirs, and the fastest probe wins.
            self.waiting.wake()

    def _pass_on(self, slot: int) -> None:
        """A slot handed to a call that was cancelled at that moment: to the next waiting call, or released."""
        if self.waiting.hand_over(slot):
            return
        task = asyncio.get_running_loop().create_task(self.release(slot))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def wait_rate(self) -> None:
        """Wait this call's turn under the run-wide `requests_per_minute` (nothing to do without one)."""
        rpm = self.requests_per_minute
        if not rpm:
            return
        await self.slots.ensure_rate_table()
        row = await self.slots.execute(_RATE_STEP, {"key": json.dumps([self.slots.run_id, self.name]), "gap": 60.0 / rpm})
        wait = float(row[0]) if row is not None else 0.0
        if wait > 0:
            await asyncio.sleep(wait)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one global slot (and this call's place in the request spacing) around a call."""
        taken = await self.acquire()
        try:
            await self.wait_rate()
            yield
        finally:
            # Shielded: a cancelled call must still give its slot back, or the others wait for this session to end.
            await asyncio.shield(self.release(taken))


def for_store(store: object, run_id: str) -> GlobalSlots | None:
    """The global limits of `run_id` when `store` is a PostgreSQL store, else None (SQLite: per process only).

    A store names its database by its `target` (`brie_bench.store_api`): only a ``postgresql://``
    one has global limits, and the slots open a session of their own to the same database.
    """
    target = getattr(store, "target", None)
    return GlobalSlots(target, run_id) if isinstance(target, str) and is_postgres_url(target) else None
