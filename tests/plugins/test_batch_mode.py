"""`batch: true` judges through the provider's batch API: submit once, record at once, poll, resume without resubmitting."""

from __future__ import annotations

import asyncio
import json

import pytest

from brie_bench.api import BackendContext, GenerationRequest, Message, PermanentError, TransientError
from brie_bench.engine import Engine
from brie_bench.plan import build_plan
from brie_bench.plugin_manager import load_plugins
from brie_bench.plugins.gemini_backend import GeminiBackend, GeminiOptions
from brie_bench.runtime import build_runtime
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import Answer, LoopbackProvider
from helpers import FIXTURE_PLUGINS, rows, run_suite, scripted_suite, write_yaml


MODELS = {"openai": "gpt-4o", "anthropic": "claude-x", "gemini": "gemini-test"}
#: The one POST that submits a batch, per provider.
BATCH_PATHS = {"openai": "/v1/batches", "anthropic": "/v1/messages/batches",
               "gemini": "/v1beta/models/gemini-test:batchGenerateContent"}
#: Endpoints of direct (non-batch) model calls: batch mode must never use them.
DIRECT_CALLS = ("/chat/completions", "/v1/messages", ":generateContent")


def _suite(tmp_path, server: LoopbackProvider, backend: str, poll_s: float):
    url = server.url(backend)
    judge = {"type": "llm", "backend": backend, "model": MODELS[backend],
             "backend_options": {"base_url": url, "api_key_env": "BRIE_TEST_BATCH_KEY"},
             "batch": True, "batch_poll_s": poll_s}
    data = scripted_suite(judges={"batched": judge}, sections=[
        {"name": "s", "prompts": [f"Question {i} about dwelling" for i in range(5)], "orders": "both"}])
    return write_yaml(tmp_path / "suite.yaml", data)


def _posts(server: LoopbackProvider, path: str) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path == path)


@pytest.mark.parametrize("backend", ["openai", "anthropic", "gemini"])
def test_batch_judge_submits_once_and_stores_every_verdict(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("BRIE_TEST_BATCH_KEY", "sk-batch-test")
    with LoopbackProvider(lambda call: "depth: A=4, B=3\nWinner: A", batch_polls=2) as server:
        path = _suite(tmp_path, server, backend, poll_s=0.05)
        db = tmp_path / "b.db"
        assert run_suite(path, db) == 0
        assert _posts(server, BATCH_PATHS[backend]) == 1
        assert not any(r.path.endswith(DIRECT_CALLS) and r.method == "POST" for r in server.requests)
        assert len(server.calls) == 10  # every judgment was answered inside the one batch
    judged = rows(db, "SELECT * FROM judgments")
    assert len(judged) == 10 and all(j["verdict"] == "A" for j in judged)
    assert {j["winner"] for j in judged} == {"baseline", "brie"}  # label A went to both contenders
    assert rows(db, "SELECT status FROM batches")[0]["status"] != "open"


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_batch_resumes_after_a_crash_without_resubmitting(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("BRIE_TEST_BATCH_KEY", "sk-batch-test")
    with LoopbackProvider(lambda call: "Winner: B", batch_polls=3) as server:
        path = _suite(tmp_path, server, backend, poll_s=30.0)
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
        assert _posts(server, BATCH_PATHS[backend]) == 1
        with Store(db) as store:
            engine, plan = engine_for(store, run_id)
            engine.runtime.batch["batched"] = 0.05
            stats = asyncio.run(engine.run(plan))
            assert stats.judgments_done == 10 and stats.failed == 0
        assert _posts(server, BATCH_PATHS[backend]) == 1  # polled the recorded batch, never submitted again
    assert {j["verdict"] for j in rows(db, "SELECT verdict FROM judgments")} == {"B"}


# -- the gemini backend's batch calls, through google-genai over HTTP ---------------------

GEMINI_KEY = "AIza-batch-test-5ecret"
VERDICT_SCHEMA = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
                  "required": ["winner"]}


def _gemini(server: LoopbackProvider, monkeypatch, **opts) -> GeminiBackend:
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    return GeminiBackend("gemini-test", GeminiOptions(base_url=server.gemini_url, **opts),
                         BackendContext("judge", "gem"))


def _ask(prompt: str, schema: dict | None = None) -> GenerationRequest:
    return GenerationRequest(messages=(Message("system", "Judge blind."), Message("user", prompt)),
                             response_schema=schema)


async def _poll_until_done(backend: GeminiBackend, batch_id: str):
    for _ in range(10):
        poll = await backend.poll_batch(batch_id)
        if poll.done:
            return poll
    raise AssertionError("batch never finished")


def _run(backend: GeminiBackend, body):
    """Run `body()` (a coroutine function) and close the backend's client afterwards."""
    async def main():
        try:
            return await body()
        finally:
            await backend.aclose()

    return asyncio.run(main())


def test_gemini_batch_carries_system_instruction_schema_and_maps_item_errors(monkeypatch):
    def responder(call):
        return {"winner": "B"} if call.schema else Answer(text=f"seen: {call.system}", output_tokens=3)

    with LoopbackProvider(responder, api_key=GEMINI_KEY, batch_polls=2) as server:
        server.add_faults("rate_limit", "refusal", "not_found")  # the first three items fail
        backend = _gemini(server, monkeypatch, extra_config={"thinking_config": {"thinking_budget": 0}})
        items = [(f"unit-{i}", _ask(f"pair {i}", VERDICT_SCHEMA if i == 4 else None)) for i in range(5)]

        async def body():
            batch_id = await backend.submit_batch(items)
            first = await backend.poll_batch(batch_id)
            return batch_id, first, await _poll_until_done(backend, batch_id)

        batch_id, first, poll = _run(backend, body)
        submitted = [r.json() for r in server.requests if r.method == "POST"]
    assert batch_id.startswith("batches/") and len(submitted) == 1
    assert not first.done and first.status == "JOB_STATE_RUNNING"
    inline = submitted[0]["batch"]["inputConfig"]["requests"]["requests"]
    assert [r["metadata"]["custom_id"] for r in inline] == [f"unit-{i}" for i in range(5)]
    assert all(r["request"]["systemInstruction"]["parts"] == [{"text": "Judge blind."}] for r in inline)
    cfg = inline[4]["request"]["generationConfig"]
    assert cfg["responseMimeType"] == "application/json" and cfg["responseJsonSchema"] == VERDICT_SCHEMA
    assert "thinkingConfig" in inline[0]["request"]["generationConfig"]
    assert "responseMimeType" not in inline[3]["request"]["generationConfig"]

    assert poll.done and poll.status == "JOB_STATE_SUCCEEDED"
    assert poll.counts == {"total": 5, "succeeded": 2, "failed": 3}
    r = poll.results
    assert isinstance(r["unit-0"], TransientError) and r["unit-0"].kind == "rate_limit"
    assert isinstance(r["unit-1"], PermanentError) and r["unit-1"].kind == "refusal"
    assert isinstance(r["unit-2"], PermanentError) and r["unit-2"].kind == "model"
    assert r["unit-3"].text == "seen: Judge blind." and r["unit-3"].structured is None
    assert r["unit-3"].usage.output_tokens == 3
    assert r["unit-4"].structured == {"winner": "B"}


def test_gemini_batch_matches_by_metadata_not_position_even_from_a_fresh_backend(monkeypatch):
    # Every answer is JSON text; only the request that asked for a schema may read as structured.
    with LoopbackProvider(lambda call: json.dumps({"to": call.prompt}), batch_polls=0) as server:
        submitter = _gemini(server, monkeypatch)
        items = [(f"unit-{i}", _ask(f"pair {i}", VERDICT_SCHEMA if i == 1 else None)) for i in range(4)]
        batch_id = _run(submitter, lambda: submitter.submit_batch(items))
        # Gemini does not keep request order, and some answers come back without their metadata.
        record = server._batches[batch_id]
        record["responses"].reverse()
        del record["responses"][0]["metadata"]  # the answer to unit-3 lost its custom id
        resumed = _gemini(server, monkeypatch)  # a new process: knows nothing about the batch
        poll = _run(resumed, lambda: _poll_until_done(resumed, batch_id))
    assert set(poll.results) == {"unit-0", "unit-1", "unit-2"}  # unit-3 is not guessed at
    assert json.loads(poll.results["unit-0"].text) == {"to": "pair 0"}
    assert json.loads(poll.results["unit-2"].text) == {"to": "pair 2"}
    # whether a JSON answer was asked for travels in the metadata too
    assert poll.results["unit-1"].structured == {"to": "pair 1"}
    assert poll.results["unit-0"].structured is None
    assert poll.counts["unmatched"] == 1


def test_gemini_batch_reports_requests_missing_from_the_answer_as_expired(monkeypatch):
    with LoopbackProvider(batch_polls=0) as server:
        backend = _gemini(server, monkeypatch)

        async def body():
            batch_id = await backend.submit_batch([("keep", _ask("a")), ("lost", _ask("b"))])
            server._batches[batch_id]["responses"].pop()  # the provider dropped the second answer
            return await _poll_until_done(backend, batch_id)

        poll = _run(backend, body)
    assert poll.results["keep"].text == "echo: a"
    lost = poll.results["lost"]
    assert isinstance(lost, TransientError) and lost.kind == "batch_expired"


def test_gemini_batch_bad_key_and_unknown_batch(monkeypatch):
    with LoopbackProvider(api_key="AIza-the-right-one") as server:
        backend = _gemini(server, monkeypatch)

        async def body():
            with pytest.raises(PermanentError) as bad_key:
                await backend.submit_batch([("x", _ask("a"))])
            server.api_key = None
            with pytest.raises(PermanentError) as unknown:
                await backend.poll_batch("batches/nope")
            return bad_key.value, unknown.value

        bad_key, unknown = _run(backend, body)
    assert bad_key.kind == "auth" and GEMINI_KEY not in str(bad_key)
    assert unknown.kind == "model" and unknown.status == 404
