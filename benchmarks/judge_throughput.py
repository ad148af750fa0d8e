"""Judging throughput: concurrent calls through the engine against one after another.

A judging phase of N calls goes through the real engine (plan, rate limiter, retries,
blinding, the `llm` judge with its template and parser, the `openai` backend and the
official SDK over HTTP, one SQLite commit per verdict) to a loopback provider that
answers every judging call after a fixed latency L. The contenders are served by the
same loopback with no latency, so generation is cheap and stored before timing starts.

Measured side by side in one process, so the ratios hold on a noisy machine:

* concurrent: the judging phase at concurrency C;
* sequential: the same N calls one after another (concurrency 1, what the original
  scripts did), in a new run over the same stored answers;
* issue 3's case: a phase of M calls at concurrency C, against the time the
  sequential phase took for its first M calls.

* the run as a person starts it (issue 17): `python -m brie_bench run SUITE --new` in a
  fresh process, answers already stored (so nothing imports the provider SDK before
  judging unless the backend's `prepare` does), and its efficiency read from the run's
  own stored timestamps: the physical limit ceil(N/C)*L over the time from the start of
  the first judgment (its `created_at` less its `latency_s`) to the end of the last.
  A judgment's latency runs from the moment its call starts (before the template is
  rendered and the request built), so the window opens before the first request is sent.
  `--runs` such processes are timed (their median is `run_efficiency`, each is printed),
  and the server's own log shows when the first request arrived and how far past L its
  responder woke (the HTTP handling around it is not in that figure): the server shares
  the two cores with the client, so a starved server would show here. The load average
  before and after is printed with the figures.

Figures: achieved calls/s, the ideal C/L, efficiency = achieved/ideal (target >= 0.85
at C=16, L=200 ms, N=320), speedup over sequential, the M-call ratio concurrent /
sequential (target < 0.25 at M=160), and the run's own efficiency (target >= 0.92).
The last line is machine-readable:

    RESULT judge_efficiency=<e> achieved_cps=<a> ideal_cps=<i> speedup=<s> issue3_ratio=<r>
           run_efficiency=<f> run_efficiency_all=<f1,f2,f3> ... target=0.85 run_target=0.92
           load_before=<l> load_after=<l>

Run: python benchmarks/judge_throughput.py [--calls 320] [--concurrency 16] [--latency 0.2]
     [--issue3-calls 160] [--sequential-calls N]   (fewer sequential calls: extrapolated, and said so)
     [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:
    from brie_bench.plugin_manager import load_plugins
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from brie_bench.plugin_manager import load_plugins
from brie_bench.engine import Engine
from brie_bench.plan import build_plan
from brie_bench.runtime import build_runtime, versions
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import Call, LoopbackProvider

TARGET_EFFICIENCY = 0.85
TARGET_ISSUE3_RATIO = 0.25
TARGET_RUN_EFFICIENCY = 0.92


def responder(latency_s: float, log: list[tuple[float, float]] | None = None) -> Any:
    """Contenders answer at once; a judging call (the template's fenced answers) waits `latency_s`.

    With `log`, every judging call appends (arrival, answer) wall-clock times, so the
    benchmark can show the server kept to L (it shares the two cores with the client).
    """

    def respond(call: Call) -> str:
        if "<response_a>" in call.prompt:
            arrived = time.time()
            time.sleep(latency_s)
            if log is not None:
                log.append((arrived, time.time()))
            return "Reasoning: both are fine.\nWinner: " + ("A" if len(call.prompt) % 2 else "B")
        return f"{call.model} on {call.prompt[:40]}"

    return respond


def suite_file(folder: Path, srv: LoopbackProvider, calls: int, concurrency: int, name: str) -> Path:
    """One section of `calls` prompts, two contenders and one llm judge, all on the loopback."""
    limits = {"max_concurrency": concurrency, "max_attempts": 3}

    def contender(model: str) -> dict[str, Any]:
        return {"backend": "openai", "model": model, "limits": limits,
                "options": {"base_url": srv.openai_url, "require_key": False}}

    data = {
        "name": name, "seed": 1, "baseline": "baseline",
        "contenders": {"baseline": contender("base"), "brie": contender("brie")},
        "judges": {"judge": {"type": "llm", "backend": "openai", "model": "judge", "limits": limits,
                             "backend_options": {"base_url": srv.openai_url, "require_key": False}}},
        "defaults": {"max_tokens": 64},
        "sections": [{"name": "s", "prompts": [f"Prompt {i}: say something about {i}." for i in range(calls)]}],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Clock:
    """A reporter that timestamps every finished judgment."""

    def __init__(self) -> None:
        self.done: list[float] = []
        self.failed = 0

    def phase(self, name: str, total: int, done: int) -> None:
        pass

    def advance(self, name: str, ok: bool) -> None:
        if name == "judging":
            self.done.append(time.perf_counter())
            self.failed += 0 if ok else 1

    def finish(self, name: str) -> None:
        pass


def judging_phase(path: Path, db: Path, concurrency: int, limit: int | None = None) -> tuple[float, Clock, Any]:
    """Store the answers, then time the judging phase alone. Returns (seconds, clock, engine stats)."""
    suite = load_suite(path).limited(limit)
    runtime = build_runtime(suite, load_plugins(None))
    plan = build_plan(suite, runtime.contenders, runtime.judges, suite.spec.seed)
    clock = Clock()
    with Store(db) as store:
        run_id = store.create_run(suite_name=suite.name, suite_path=suite.path, fingerprint=suite.fingerprint(),
                                  snapshot=suite.snapshot(), seed=suite.spec.seed, versions=versions())
        engine = Engine(store, run_id, runtime, run_seed=suite.spec.seed, reporter=clock, concurrency=concurrency)

        async def go() -> float:
            try:
                await engine.run_generations(plan)
                started = time.perf_counter()
                clock.done.clear()
                clock.start = started  # type: ignore[attr-defined]
                await engine.run_judgments(plan)
                return time.perf_counter() - started
            finally:
                await runtime.aclose()

        seconds = asyncio.run(go())
    stats = engine.stats
    if stats.judgments_failed or stats.retries or stats.judgments_done != len(plan.judgments):
        raise SystemExit(f"the judging phase was not clean: {stats}")
    return seconds, clock, stats


#: The same CLI with the openai backend's `prepare` undone: the SDK is then imported, and the
#: client built, by the first judging call inside the event loop (as before issue 17).
UNPREPARED = ("import sys; from brie_bench.api import ModelBackend; "
              "import brie_bench.plugins.openai_backend as m; m.OpenAIBackend.prepare = ModelBackend.prepare; "
              "from brie_bench.cli import main; main(sys.argv[1:])")


@dataclass
class RunTiming:
    """One `brie-bench run --new` process: its efficiency, and what the server saw meanwhile."""

    efficiency: float
    span_s: float
    first_request_ms: float  # the first judging request reached the server this long after the window opened
    server_over_ms: float  # mean time the responder took beyond L per call (its sleep's overshoot)
    server_over_max_ms: float


def cli_run_efficiency(path: Path, db: Path, calls: int, concurrency: int, latency_s: float,
                       prepared: bool = True, log: list[tuple[float, float]] | None = None) -> RunTiming:
    """Judge `path` again in a fresh `brie-bench run --new` process; its efficiency from its own timestamps.

    The answers are already stored, so the process makes judging calls only. The span
    runs from the start of the first judgment (created_at - latency_s) to the stored end
    of the last; the physical limit is ceil(N/C) * L. `log` (the responder's) says when
    the first request reached the server, and how far past L the server answered.
    """
    seen = len(log) if log is not None else 0
    start = [sys.executable, "-m", "brie_bench"] if prepared else [sys.executable, "-c", UNPREPARED]
    argv = [*start, "--db", str(db), "run", str(path), "--new", "--concurrency", str(concurrency)]
    done = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    if done.returncode != 0:
        raise SystemExit(f"brie-bench run failed ({done.returncode}): {done.stderr[-2000:]}")
    with Store(db, readonly=True) as store:
        run_id = store.run().id
        first, last, n = store.conn.execute(
            "SELECT MIN(created_at - latency_s), MAX(created_at), COUNT(*) FROM judgments WHERE run_id=?",
            (run_id,)).fetchone()
    if n != calls:
        raise SystemExit(f"the run stored {n} judgments, expected {calls}")
    span = last - first
    served = log[seen:] if log is not None else []
    over = [(answered - arrived - latency_s) * 1000 for arrived, answered in served] or [0.0]
    first_ms = (min(a for a, _ in served) - first) * 1000 if served else float("nan")
    return RunTiming(-(-calls // concurrency) * latency_s / span, span, first_ms, statistics.fmean(over), max(over))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=320, help="judging calls in the main phase (N)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent judging calls (C)")
    parser.add_argument("--latency", type=float, default=0.2, help="simulated judge latency in seconds (L)")
    parser.add_argument("--issue3-calls", type=int, default=160, help="calls in issue 3's comparison (M)")
    parser.add_argument("--sequential-calls", type=int, default=None,
                        help="calls to time one after another (default: N; fewer are extrapolated)")
    parser.add_argument("--runs", type=int, default=3,
                        help="fresh `brie-bench run` processes to time (run_efficiency is their median; all are "
                             "printed)")
    args = parser.parse_args(argv)
    n, c, lat, m = args.calls, args.concurrency, args.latency, args.issue3_calls
    seq_n = min(args.sequential_calls or n, n)
    if seq_n < m:
        parser.error("--sequential-calls must be at least --issue3-calls")
    os.environ.setdefault("BRIE_BENCH_RETRY_BASE_S", "0.05")
    load_before = os.getloadavg()[0]
    served: list[tuple[float, float]] = []

    with tempfile.TemporaryDirectory(prefix="brie-judge-bench-") as tmp, \
            LoopbackProvider(responder(lat, served), max_lifetime_s=3600) as srv:
        folder = Path(tmp)
        db = folder / "bench.db"
        main_suite = suite_file(folder, srv, n, c, "throughput")
        issue3_suite = suite_file(folder, srv, m, c, "issue3")

        conc_s, _, _ = judging_phase(main_suite, db, c)
        seq_s, seq_clock, _ = judging_phase(main_suite, db, 1, limit=seq_n)
        seq_m_s = seq_clock.done[m - 1] - seq_clock.start  # type: ignore[attr-defined]
        conc_m_s, _, _ = judging_phase(issue3_suite, db, c)
        max_in_flight = srv.max_in_flight
        runs = [cli_run_efficiency(main_suite, db, n, c, lat, log=served) for _ in range(max(1, args.runs))]
        cold = cli_run_efficiency(main_suite, db, n, c, lat, prepared=False)
    load_after = os.getloadavg()[0]
    run = sorted(runs, key=lambda r: r.efficiency)[len(runs) // 2]  # the median run
    run_eff, run_span, cold_eff, cold_span = run.efficiency, run.span_s, cold.efficiency, cold.span_s

    seq_full_s = seq_s * n / seq_n
    achieved = n / conc_s
    ideal = c / lat
    efficiency = achieved / ideal
    speedup = seq_full_s / conc_s
    ratio = conc_m_s / seq_m_s
    print(f"judging phase: N={n} calls, concurrency C={c}, simulated latency L={lat * 1000:.0f} ms")
    print(f"  concurrent : {conc_s:7.2f} s  = {achieved:6.1f} calls/s (ideal C/L = {ideal:.1f} calls/s; "
          f"lower bound ceil(N/C)*L = {-(-n // c) * lat:.2f} s)")
    note = "" if seq_n == n else f" (timed {seq_n} calls, extrapolated to {n})"
    print(f"  sequential : {seq_full_s:7.2f} s  = {n / seq_full_s:6.1f} calls/s{note}")
    print(f"  efficiency : {efficiency:.3f} (target >= {TARGET_EFFICIENCY})")
    print(f"  speedup    : {speedup:.1f}x over sequential")
    print(f"  server saw at most {max_in_flight} calls in flight at once")
    print(f"issue 3: {m} judging calls at concurrency {c}: {conc_m_s:.2f} s vs {seq_m_s:.2f} s one after another "
          f"= {ratio:.3f} of the sequential time (target < {TARGET_ISSUE3_RATIO})")
    print(f"the run as started from the shell (fresh process, answers stored), median of {len(runs)}: "
          f"first-to-last judgment {run_span:.2f} s against the limit ceil(N/C)*L = {-(-n // c) * lat:.2f} s: "
          f"efficiency {run_eff:.3f} (target >= {TARGET_RUN_EFFICIENCY}); each run: "
          + ", ".join(f"{r.efficiency:.3f}" for r in runs))
    print("  the server, in the median run: first request "
          f"{run.first_request_ms:.1f} ms after the window opened; its responder woke {run.server_over_ms:.2f} ms "
          f"past L on average (at most {run.server_over_max_ms:.1f} ms)")
    print(f"  the same without the backend's prepare (SDK imported in the first call): {cold_span:.2f} s, "
          f"efficiency {cold_eff:.3f}")
    ok = efficiency >= TARGET_EFFICIENCY and ratio < TARGET_ISSUE3_RATIO and run_eff >= TARGET_RUN_EFFICIENCY
    print("targets " + ("met" if ok else "NOT met"))
    print(f"RESULT judge_efficiency={efficiency:.3f} achieved_cps={achieved:.1f} ideal_cps={ideal:.1f} "
          f"speedup={speedup:.2f} issue3_ratio={ratio:.3f} run_efficiency={run_eff:.3f} "
          f"run_efficiency_all={','.join(f'{r.efficiency:.3f}' for r in runs)} "
          f"run_efficiency_unprepared={cold_eff:.3f} calls={n} "
          f"concurrency={c} latency_s={lat:g} target={TARGET_EFFICIENCY} run_target={TARGET_RUN_EFFICIENCY} "
          f"load_before={load_before:.2f} load_after={load_after:.2f}")


if __name__ == "__main__":
    main()
