"""The loopback provider server itself: scripting, concurrency, logging and shutdown (raw HTTP)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from brie_bench.testing.loopback import Fault, LoopbackProvider, example_from_schema


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def chat(srv: LoopbackProvider, text: str = "hi", **extra: Any) -> tuple[int, Any]:
    return post(f"{srv.openai_url}/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": text}], **extra})


def test_fault_specs() -> None:
    assert Fault.parse("rate_limit:3") == Fault("rate_limit", retry_after=3.0)
    assert Fault.parse("rate_limit:none").retry_after is None
    assert Fault.parse("slow:0.25").delay_s == 0.25
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("explode")
    with pytest.raises(ValueError, match="takes no argument"):
        Fault.parse("server:3")


def test_fault_queue_is_consumed_in_order_then_answers_normally() -> None:
    with LoopbackProvider(faults=["server", "rate_limit:4", "not_found"]) as srv:
        statuses = [chat(srv)[0] for _ in range(4)]
        assert statuses == [500, 429, 404, 200]
        srv.add_faults("bad_request")
        assert chat(srv)[0] == 400


def test_seeded_fault_rate_is_repeatable() -> None:
    def pattern(seed: int) -> list[int]:
        with LoopbackProvider(fault_rate=0.5, fault_kinds=["server", "rate_limit"], seed=seed) as srv:
            return [chat(srv)[0] for _ in range(16)]

    first, again, other = pattern(3), pattern(3), pattern(4)
    assert first == again
    assert first != other
    assert {500, 429, 200} <= set(first + other)


def test_responder_logprobs_and_request_log() -> None:
    seen: list[Any] = []

    def responder(call: Any) -> str:
        seen.append(call)
        return "Alpha beta"

    with LoopbackProvider(responder) as srv:
        status, body = chat(srv, "question?", logprobs=True, top_logprobs=2)
        assert status == 200
        choice = body["choices"][0]
        assert choice["message"]["content"] == "Alpha beta"
        assert [t["token"] for t in choice["logprobs"]["content"]] == ["Alpha", " beta"]
        assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        (logged,) = srv.requests
        assert (logged.method, logged.path) == ("POST", "/v1/chat/completions")
        assert logged.json()["messages"][0]["content"] == "question?"
        assert seen[0].protocol == "openai" and seen[0].prompt == "question?"


def test_schema_example_and_default_structured_answer() -> None:
    schema = {"type": "object", "properties": {
        "winner": {"enum": ["A", "B"]}, "n": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2}, "ok": {"type": "boolean"}}}
    assert example_from_schema(schema) == {"winner": "A", "n": 1, "tags": ["x", "x"], "ok": True}
    with LoopbackProvider() as srv:
        status, body = chat(srv, response_format={"type": "json_schema",
                                                  "json_schema": {"name": "v", "schema": schema}})
        assert status == 200
        assert json.loads(body["choices"][0]["message"]["content"])["winner"] == "A"


def test_concurrent_requests_overlap_under_latency() -> None:
    with LoopbackProvider(latency_s=0.4) as srv:
        chat(srv)  # warm up
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(chat(srv)[0])) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == [200] * 6
        assert srv.max_in_flight >= 3  # overlap, proven without timing the machine


def test_stop_wakes_slow_answers_and_refuses_new_connections() -> None:
    srv = LoopbackProvider(faults=["slow:30"]).start()
    url = srv.openai_url
    outcome: list[Any] = []

    def slow_call() -> None:
        try:
            outcome.append(chat(srv)[0])
        except Exception as exc:  # the connection may be cut while the answer is pending
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=slow_call)
    worker.start()
    time.sleep(0.3)
    start = time.perf_counter()
    srv.stop()
    worker.join(10)
    assert not worker.is_alive() and time.perf_counter() - start < 5
    assert outcome  # it ended one way or another, promptly
    with pytest.raises(OSError):
        post(f"{url}/chat/completions", {"model": "m", "messages": []}, timeout=2)


def test_server_stops_by_itself_after_its_lifetime() -> None:
    srv = LoopbackProvider(max_lifetime_s=0.3).start()
    port = srv.port
    time.sleep(1.0)
    with pytest.raises(RuntimeError):
        srv.port  # noqa: B018 - the server is gone
    with pytest.raises(OSError):
        post(f"http://127.0.0.1:{port}/v1/chat/completions", {"model": "m", "messages": []}, timeout=2)


def test_unknown_route_and_responder_bugs_are_loud() -> None:
    def broken(call: Any) -> str:
        raise RuntimeError("responder bug")

    with LoopbackProvider(broken) as srv:
        assert post(f"{srv.base}/v2/nothing", {})[0] == 404
        status, body = chat(srv)
        assert status == 500 and "responder bug" in body["error"]["message"]


def test_runs_as_a_subprocess_and_prints_its_url() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "brie_bench.testing.loopback", "--lifetime", "20",
                             "--fault", "rate_limit:3"], stdout=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        status, _ = post(f"{base}/v1/chat/completions", {"model": "m", "messages": []})
        assert status == 429
        status, body = post(f"{base}/v1/chat/completions",
                            {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert status == 200 and body["choices"][0]["message"]["content"] == "echo: x"
    finally:
        proc.terminate()
        proc.wait(10)
