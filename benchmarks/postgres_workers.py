"""Many workers on one run: throughput against N, the cost of a lease, and the global limit at the server.

N = 1, 2, 4 and 8 worker processes (`python -m brie_bench --db URL run SUITE --concurrency C`,
each in its own folder with its own copy of the suite and its own caches, as separate
machines would run them) share one run on a throw-away PostgreSQL server
(`brie_bench.testing.pg_server.LocalPostgres`, 127.0.0.1). Every model call goes to one
loopback provider (`brie_bench.testing.loopback.LoopbackProvider`) that answers after a
fixed latency L. The suite (P prompts, two contenders and one `llm` judge: 3P calls) sets
`max_concurrency: G` for each of them; each worker caps itself at C calls per model
(`--concurrency C`). On PostgreSQL G is global (`brie_bench.global_limits`), so a model
has min(N x C, G) calls in flight and the ideal throughput of a phase is its models x
min(N x C, G) / L. The same runs on one SQLite file, side by side, show the per-process
limits: there a model has N x C calls in flight, G or not.

Printed for each store and N:

* calls/s over the server's span (first request in to last answer out; worker start-up,
  which loads the package, is outside it) and over the wall time from the first spawn to
  the last exit; efficiency = achieved / ideal over the span; and calls/s while all N
  workers were calling (from the last worker's first request to the first one's last: on a
  2-core machine 8 workers take seconds to start one after another, which the span counts);
* the peak number of calls of one model in flight at the server, against G;
* every unit answered exactly once at the server (checked; a run that did not is an error).

And, in this process, side by side: the claim-and-release cost per unit, `Leases.claim`
(with the engine's "is it stored?" check inside the claim) then `Leases.done`, for K units
one after another on each store (on PostgreSQL two round trips for a new unit, the claim
and the stored check, and one for the release); and on PostgreSQL the cost of taking and
giving back a global slot per call (two round trips; the release carries the NOTIFY that
wakes the waiting workers, which this process's own listener also receives).

And the run-wide slots alone (`--handoff`, default N = 4 and 8), without the engine: N
processes of C tasks, each task holding a slot for L per call, 40 x G calls in all: calls/s
against min(N x C, G) / L, the workers' CPU per call (what waiting for and handing over slots
costs, measured whatever else the machine runs), and the peak number of holders at once.

The last line is machine-readable:

    RESULT pg_cps_n1=<c> pg_cps_n2=<c> pg_cps_n4=<c> pg_cps_n8=<c> sqlite_cps_n1=... pg_peak_max=<p>
           global_limit=<G> sqlite_peak_max=<p> claim_ms_pg=<m> claim_ms_sqlite=<m> slot_ms_pg=<m>
           latency_s=<L> prompts=<P> per_process=<C> load_before=<l> load_after=<l>

Run: python benchmarks/postgres_workers.py [--workers 1,2,4,8] [--prompts 64] [--latency 0.1]
     [--limit 8] [--per-process 2] [--claims 2000] [--stores postgresql,sqlite] [--handoff 4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
try:
    import brie_bench  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from brie_bench.api import Limits
from brie_bench.global_limits import GlobalSlots
from brie_bench.leases import Leases
from brie_bench.store_api import Store
from brie_bench.testing.loopback import Call, LoopbackProvider
from brie_bench.testing.pg_server import LocalPostgres

MODELS = ("base", "brie", "judge")


def responder(call: Call) -> str:
    if "<response_a>" in call.prompt:
        return "Reasoning: both are fine.\nWinner: " + ("A" if len(call.prompt) % 2 else "B")
    return f"{call.model} on {call.prompt[:40]}"


class TimedLoopback(LoopbackProvider):
    """The loopback, noting when each worker's model requests arrive (workers tag them with OPENAI_ORG_ID)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str]] = []

    def _record(self, req: Any) -> None:
        super()._record(req)
        if req.method == "POST":
            self.arrivals.append((time.time(), req.headers.get("openai-organization", "?")))


def steady_cps(arrivals: list[tuple[float, str]], answers: list[tuple[float, float]]) -> tuple[float, float]:
    """Calls/s while every worker was calling: from the last worker's first request to the first one's last.

    Start-up (importing the package, ~1.5 s of CPU a process) staggers the workers on a small
    machine; this window leaves it out. Returns (calls/s, window seconds); nan when under 0.5 s.
    """
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for t, who in arrivals:
        first.setdefault(who, t)
        last[who] = t
    start, end = max(first.values()), min(last.values())
    if end - start < 0.5:
        return float("nan"), max(0.0, end - start)
    done = sum(1 for _, answered in answers if start <= answered <= end)
    return done / (end - start), end - start


def suite_data(srv: LoopbackProvider, prompts: int, limit: int, name: str) -> dict[str, Any]:
    limits = {"max_concurrency": limit, "max_attempts": 3}

    def contender(model: str) -> dict[str, Any]:
        return {"backend": "openai", "model": model, "limits": limits,
                "options": {"base_url": srv.openai_url, "require_key": False}}

    return {
        "name": name, "seed": 1, "baseline": "baseline",
        "contenders": {"baseline": contender("base"), "brie": contender("brie")},
        "judges": {"judge": {"type": "llm", "backend": "openai", "model": "judge", "limits": limits,
                             "backend_options": {"base_url": srv.openai_url, "require_key": False}}},
        "defaults": {"max_tokens": 64},
        "sections": [{"name": "s", "prompts": [f"Prompt {i}: say something about {i}." for i in range(prompts)]}],
    }


@dataclass
class Round:
    store: str
    workers: int
    calls: int
    span_s: float
    wall_s: float
    ideal_cps: float
    peak: int
    steady_cps: float
    window_s: float

    @property
    def cps(self) -> float:
        return self.calls / self.span_s

    @property
    def efficiency(self) -> float:
        return self.cps / self.ideal_cps


def one_round(store: str, db: str, workers: int, args: argparse.Namespace, folder: Path) -> Round:
    """N workers on one fresh database; timed at the server."""
    log: list[tuple[float, float]] = []

    def timed(call: Call) -> str:
        arrived = time.time() - args.latency  # the loopback slept L before the responder runs
        answer = responder(call)
        log.append((arrived, time.time()))
        return answer

    with TimedLoopback(timed, latency_s=args.latency, max_lifetime_s=900) as srv:
        data = suite_data(srv, args.prompts, args.limit, f"workers-{store}-{workers}")
        procs = []
        started = time.perf_counter()
        for i in range(workers):
            home = folder / f"{store}-{workers}-w{i}"
            home.mkdir(parents=True)
            suite = home / "suite.yaml"
            suite.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            env = dict(os.environ, HF_HOME=str(home / "hf"), XDG_CACHE_HOME=str(home / "cache"),
                       BRIE_BENCH_CACHE=str(home / "cache" / "brie-bench"), COLUMNS="200",
                       OPENAI_ORG_ID=f"w{i}")
            env.pop("BRIE_BENCH_DB", None)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "brie_bench", "--db", db, "run", str(suite),
                 "--concurrency", str(args.per_process)],
                cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=900)
            if p.returncode != 0:
                raise SystemExit(f"a worker failed ({p.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
        wall = time.perf_counter() - started
        answered = collections.Counter((c.model, c.messages) for c in srv.calls)
        planned = 3 * args.prompts
        if len(answered) != planned or max(answered.values()) != 1:
            raise SystemExit(f"{store} N={workers}: {len(answered)} units answered of {planned}, "
                             f"at most {max(answered.values())} times each")
        peak = max(srv.max_in_flight_by_model.values())
        assert isinstance(srv, TimedLoopback)
        steady, window = steady_cps(srv.arrivals, log)
    span = max(end for _, end in log) - min(start for start, _ in log)
    in_flight = min(workers * args.per_process, args.limit) if store == "postgresql" else workers * args.per_process
    # Generation: two models at once (2P calls); judging: one model (P calls); each at `in_flight`.
    ideal_span = (2 * args.prompts / (2 * in_flight) + args.prompts / in_flight) * args.latency
    return Round(store, workers, planned, span, wall, planned / ideal_span, peak, steady, window)


def claim_cost(db: str, units: int) -> float:
    """Milliseconds per unit to claim its lease (with the engine's stored check) and release it."""
    with Store(db) as store:
        run_id = "bench-claims"
        leases = Leases(store, ttl_s=60)
        try:
            keys = [f"j:{run_id}:unit-{i}" for i in range(units)]
            for key in keys[:50]:  # warm-up: statements prepared, pages cached
                leases.claim([key + "-warm"], lambda: store.judgment_stored(run_id, "x"))
                leases.done([key + "-warm"])
            started = time.perf_counter()
            for key in keys:
                status = leases.claim([key], functools.partial(store.judgment_stored, run_id, key))
                if status != "claimed":
                    raise SystemExit(f"claim answered {status!r}")
                leases.done([key])
            return (time.perf_counter() - started) * 1000 / units
        finally:
            leases.close()


def slot_cost(url: str, calls: int) -> float:
    """Milliseconds per call to take a free global slot and give it back."""

    async def main() -> float:
        slots = GlobalSlots(url, "bench-slots")
        limit = slots.limit("judge", Limits(max_concurrency=8))
        try:
            for _ in range(50):
                await limit.release(await limit.acquire())
            started = time.perf_counter()
            for _ in range(calls):
                await limit.release(await limit.acquire())
            return (time.perf_counter() - started) * 1000 / calls
        finally:
            await slots.aclose()

    return asyncio.run(main())


def _handoff_worker(url: str, run_id: str, tasks: int, calls: int, latency: float, limit: int,
                    inside: Any, peak: Any, go: Any) -> None:
    """One process of `handoff`: `tasks` tasks, each holding a run-wide slot for `latency` s per call."""

    async def main() -> None:
        slots = GlobalSlots(url, run_id)
        shared = slots.limit("judge", Limits(max_concurrency=limit))

        async def task() -> None:
            for _ in range(calls):
                async with shared.slot():
                    with inside.get_lock():
                        inside.value += 1
                        peak.value = max(peak.value, inside.value)
                    await asyncio.sleep(latency)
                    with inside.get_lock():
                        inside.value -= 1

        go.wait()
        try:
            await asyncio.gather(*(task() for _ in range(tasks)))
        finally:
            await slots.aclose()

    asyncio.run(main())


def handoff(url: str, workers: int, per_process: int, limit: int, latency: float, total: int) -> tuple[float, float, int]:
    """The run-wide slots alone, without the engine: (calls/s, client CPU ms per call, peak holders).

    `workers` processes with `per_process` tasks each; the ideal is min(workers x per_process,
    limit) / latency. The CPU is all the workers' (user + system), so it shows what waiting and
    handing slots over costs where the limit binds, whatever else the machine is doing.
    """
    import multiprocessing
    import resource

    ctx = multiprocessing.get_context("fork")
    inside, peak, go = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Event()
    calls = max(1, total // (workers * per_process))
    run_id = f"handoff-{workers}-{time.time()}"
    procs = [ctx.Process(target=_handoff_worker, args=(url, run_id, per_process, calls, latency, limit, inside, peak, go))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # imports done before the clock starts
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join(timeout=600)
        if proc.exitcode != 0:
            raise SystemExit(f"a hand-off worker failed ({proc.exitcode})")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = calls * workers * per_process
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return n / elapsed, cpu * 1000 / n, int(peak.value)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--limit", type=int, default=8, help="the suite's max_concurrency (global on PostgreSQL)")
    parser.add_argument("--per-process", type=int, default=2, help="--concurrency of each worker")
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--stores", default="postgresql,sqlite")
    parser.add_argument("--handoff", default="4,8",
                        help="worker counts for the slots-only hand-off measurement ('' to skip)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n]
    stores = [s for s in args.stores.split(",") if s]
    load_before = load()
    print(f"P={args.prompts} prompts ({3 * args.prompts} calls), L={args.latency:g} s, max_concurrency G={args.limit}, "
          f"--concurrency C={args.per_process} per worker; load {load_before}")
    rounds: list[Round] = []
    folder = Path(tempfile.mkdtemp(prefix="brie-bench-workers-"))
    try:
        with LocalPostgres() as pg:
            claim_pg = claim_cost(pg.new_database("claims"), args.claims)
            claim_sqlite = claim_cost(str(folder / "claims.db"), args.claims)
            slot_pg = slot_cost(pg.new_database("slots"), args.claims)
            print(f"claim + release per unit ({args.claims} units, one after another): "
                  f"PostgreSQL {claim_pg:.3f} ms, SQLite {claim_sqlite:.3f} ms; "
                  f"a global slot taken and given back: {slot_pg:.3f} ms")
            handoffs: list[str] = []
            for n in [int(w) for w in args.handoff.split(",") if w]:
                cps, cpu, peak = handoff(pg.new_database("handoff"), n, args.per_process, args.limit, args.latency,
                                         40 * args.limit)
                ideal = min(n * args.per_process, args.limit) / args.latency
                print(f"slots only, N={n} x {args.per_process} calls, limit {args.limit}: {cps:.1f} calls/s "
                      f"(ideal {ideal:.0f}), workers' CPU {cpu:.2f} ms a call, peak holders {peak}; load {load()}",
                      flush=True)
                handoffs.append(f"handoff_cps_n{n}={cps:.1f} handoff_cpu_ms_n{n}={cpu:.2f} handoff_peak_n{n}={peak}")
            for n in counts:
                for store in stores:
                    db = pg.new_database("workers") if store == "postgresql" else str(folder / f"w{n}.db")
                    r = one_round(store, db, n, args, folder)
                    rounds.append(r)
                    print(f"{store:10s} N={n}: {r.cps:6.1f} calls/s over the server's span {r.span_s:.2f} s "
                          f"(ideal {r.ideal_cps:.1f}, efficiency {r.efficiency:.2f}); wall {r.wall_s:.2f} s "
                          f"({r.calls / r.wall_s:.1f} calls/s with start-up); all {n} calling: "
                          f"{r.steady_cps:.1f} calls/s over {r.window_s:.2f} s; peak in flight of one model "
                          f"{r.peak} (limit {args.limit}{' per process' if store == 'sqlite' else ''}); load {load()}",
                          flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fields = [f"{'pg' if r.store == 'postgresql' else r.store}_cps_n{r.workers}={r.cps:.1f} "
              f"{'pg' if r.store == 'postgresql' else r.store}_steady_n{r.workers}={r.steady_cps:.1f}" for r in rounds]
    peaks = {s: max((r.peak for r in rounds if r.store == s), default=0) for s in stores}
    print("RESULT " + " ".join(fields + handoffs)
          + f" pg_peak_max={peaks.get('postgresql', 0)} sqlite_peak_max={peaks.get('sqlite', 0)}"
          + f" global_limit={args.limit} claim_ms_pg={claim_pg:.3f} claim_ms_sqlite={claim_sqlite:.3f}"
          + f" slot_ms_pg={slot_pg:.3f} latency_s={args.latency:g} prompts={args.prompts}"
          + f" per_process={args.per_process} load_before={load_before} load_after={load()}")


if __name__ == "__main__":
    main()
