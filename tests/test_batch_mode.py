"""`batch: true` judges through the provider's batch API: submit once, record at once, poll, resume without resubmitting."""

from __future__ import annotations

import asyncio

import pytest

from brie_bench.engine import Engine
from brie_bench.plan import build_plan
from brie_bench.plugin_manager import load_plugins
from brie_bench.runtime import build_runtime
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import LoopbackProvider
from helpers import FIXTURE_PLUGINS, rows, run_suite, scripted_suite, write_yaml


def _suite(tmp_path, server: LoopbackProvider, backend: str, poll_s: float):
    url = server.openai_url if backend == "openai" else server.anthropic_url
    judge = {"type": "llm", "backend": backend, "model": "gpt-4o" if backend == "openai" else "claude-x",
             "backend_options": {"base_url": url, "api_key_env": "BRIE_TEST_BATCH_KEY"},
             "batch": True, "batch_poll_s": poll_s}
    data = scripted_suite(judges={"batched": judge}, sections=[
        {"name": "s", "prompts": [f"Question {i} about dwelling" for i in range(5)], "orders": "both"}])
    return write_yaml(tmp_path / "suite.yaml", data)


def _posts(server: LoopbackProvider, path: str) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path == path)


@pytest.mark.parametrize("backend,batch_path", [("openai", "/v1/batches"), ("anthropic", "/v1/messages/batches")])
def test_batch_judge_submits_once_and_stores_every_verdict(tmp_path, monkeypatch, backend, batch_path):
    monkeypatch.setenv("BRIE_TEST_BATCH_KEY", "sk-batch-test")
    with LoopbackProvider(lambda call: "depth: A=4, B=3\nWinner: A", batch_polls=2) as server:
        path = _suite(tmp_path, server, backend, poll_s=0.05)
        db = tmp_path / "b.db"
        assert run_suite(path, db) == 0
        assert _posts(server, batch_path) == 1
        assert not any(r.path.endswith(("/chat/completions", "/v1/messages")) and r.method == "POST"
                       for r in server.requests)
    judged = rows(db, "SELECT * FROM judgments")
    assert len(judged) == 10 and all(j["verdict"] == "A" for j in judged)
    assert {j["winner"] for j in judged} == {"baseline", "brie"}  # label A went to both contenders
    assert rows(db, "SELECT status FROM batches")[0]["status"] != "open"


def test_batch_resumes_after_a_crash_without_resubmitting(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIE_TEST_BATCH_KEY", "sk-batch-test")
    with LoopbackProvider(lambda call: "Winner: B", batch_polls=3) as server:
        path = _suite(tmp_path, server, "openai", poll_s=30.0)
        db = tmp_path / "b.db"
        registry = load_plugins(FIXTURE_PLUGINS)
        suite = load_suite(path)

        def engine_for(store: Store, run_id: str | None) -> tuple[Engine, object]:
            runtime = build_runtime(suite, registry)
            plan = build_plan(suite, runtime.contenders, runtime.judges, suite.spec.seed)
            if run_id is None:
                run_id = store.create_run(suite_name=suite.name, suite_path=str(path), fingerprint=suite.fingerprint(),
                                          snapshot=suite.snapshot(), seed=suite.spec.seed, versions={})
            return Engine(store, run_id, runtime, run_seed=suite.spec.seed), plan

        with Store(db) as store:
            engine, plan = engine_for(store, None)
            # "Crash" while waiting for the batch: the long poll interval is cut short by a timeout.
            with pytest.raises(asyncio.TimeoutError):
                asyncio.run(asyncio.wait_for(engine.run(plan), timeout=3.0))
            run_id = engine.run_id
            assert len(store.open_batches(run_id, "batched")) == 1
            assert store.stored_judgment_keys(run_id) == set()
        assert _posts(server, "/v1/batches") == 1
        with Store(db) as store:
            engine, plan = engine_for(store, run_id)
            engine.runtime.batch["batched"] = 0.05
            stats = asyncio.run(engine.run(plan))
            assert stats.judgments_done == 10 and stats.failed == 0
        assert _posts(server, "/v1/batches") == 1  # polled the recorded batch, never submitted again
    assert {j["verdict"] for j in rows(db, "SELECT verdict FROM judgments")} == {"B"}
