"""Judging runs a fixed pool of workers per judge, their starts paced (`brie_bench.engine`).

Pinned here: through the real engine, the `llm` judge and the `openai` backend over
loopback HTTP, the pool keeps the concurrency limit's C calls in flight at once and
calls every unit exactly once; a unit a peer process holds is set aside, so the worker
goes on with the others, and is judged (once) when the peer's lease lapses; and the
pacer's rules, with no clock asserted (no test here asserts a time).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from brie_bench.engine import Engine, Pacer
from brie_bench.plan import build_plan
from brie_bench.plugin_manager import load_plugins
from brie_bench.runtime import build_runtime
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import Call, LoopbackProvider
from helpers import FIXTURE_PLUGINS, rows, run_suite, scripted_suite, write_yaml

SLOTS = 8


def _judge_answer(call: Call) -> str:
    time.sleep(0.25)  # long enough that all C calls overlap even on a busy machine
    return "Reasoning: fine.\nWinner: " + ("A" if len(call.prompt) % 2 else "B")


def test_the_pool_keeps_c_calls_in_flight_and_calls_each_unit_once(tmp_path: Path) -> None:
    with LoopbackProvider(_judge_answer) as server:
        judge = {"type": "llm", "backend": "openai", "model": "judge",
                 "backend_options": {"base_url": server.openai_url, "require_key": False},
                 "limits": {"max_concurrency": SLOTS}}
        suite = write_yaml(tmp_path / "suite.yaml", scripted_suite(judges={"judge": judge}, sections=[
            {"name": "s", "prompts": [f"Question {i} about dwelling" for i in range(12)], "orders": "both"}]))
        db = tmp_path / "pool.db"
        assert run_suite(suite, db) == 0
        calls = [c.prompt for c in server.calls if c.model == "judge"]
        max_in_flight = server.max_in_flight
    stored = rows(db, "SELECT unit_key FROM judgments")
    assert len(stored) == 24 and len(calls) == 24  # every unit judged, each called once
    assert len(set(calls)) == 24
    assert max_in_flight == SLOTS  # the pool filled every slot, and never more


def test_a_unit_a_peer_holds_is_set_aside_and_judged_once_its_lease_lapses(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "suite.yaml", scripted_suite(sections=[
        {"name": "s", "prompts": [f"What is being number {i}?" for i in range(5)]}]))
    suite = load_suite(path)
    runtime = build_runtime(suite, load_plugins(FIXTURE_PLUGINS))
    plan = build_plan(suite, runtime.contenders, runtime.judges, suite.spec.seed)
    first = plan.judgments[0]
    with Store(tmp_path / "held.db") as store:
        run_id = store.create_run(suite_name=suite.name, suite_path=str(path), fingerprint=suite.fingerprint(),
                                  snapshot=suite.snapshot(), seed=suite.spec.seed, versions={})
        # A live peer on another host holds the first unit for a moment (its process is not ours to see).
        peer = "elsewhere:1:feedbeef"
        assert store.claim(peer, [f"j:{run_id}:{first.key}"], ttl_s=0.5, since=time.time()) == "claimed"
        engine = Engine(store, run_id, runtime, run_seed=suite.spec.seed, concurrency=1)
        stats = asyncio.run(engine.run(plan))
        order = [r["unit_key"] for r in store.conn.execute(
            "SELECT unit_key FROM judgments WHERE run_id=? ORDER BY rowid", (run_id,))]
        errors = store.errors(run_id)
    assert stats.failed == 0 and stats.judgments_done == len(plan.judgments)
    assert sorted(order) == sorted(u.key for u in plan.judgments)  # every unit once, the held one too
    # One worker: had it waited on the held unit, that unit would have been stored first.
    assert order[-1] == first.key and order[0] != first.key
    assert errors == []


def test_the_pacer_ramps_at_its_widest_gap_and_narrows_to_what_the_units_take() -> None:
    pacer = Pacer(16, max_gap_s=0.004)
    assert pacer.gap_s == 0.004  # nothing seen yet: the first C starts are spread at the widest gap
    pacer.observe(0.2)
    assert pacer.gap_s == 0.004  # 0.2 s over 2 x 16 slots is wider than the cap
    fast = Pacer(16, max_gap_s=0.004)
    for _ in range(50):
        fast.observe(0.001)
    assert fast.gap_s <= 0.001 / 32 + 1e-12  # instant units are never held back to the ramp's gap


def test_the_pacer_does_not_yield_when_a_start_is_due_and_waits_when_it_is_not() -> None:
    async def main() -> tuple[bool, bool]:
        pacer = Pacer(4, max_gap_s=0.05)
        others_ran = False

        def other() -> None:
            nonlocal others_ran
            others_ran = True

        asyncio.get_running_loop().call_soon(other)
        await pacer.wait()  # the first start is due at once: no trip through the event loop
        first = others_ran
        await pacer.wait()  # the second comes a gap later: it waits, and the loop runs meanwhile
        return first, others_ran

    first, second = asyncio.run(main())
    assert first is False and second is True
