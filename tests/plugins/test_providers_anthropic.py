"""The anthropic backend through the real anthropic SDK over real HTTP, against the loopback server."""

from __future__ import annotations

import asyncio
from typing import Any
from collections.abc import Callable

import pytest

from brie_bench.api import (
    BackendContext,
    GenerationRequest,
    Message,
    MissingKeyError,
    PermanentError,
    TransientError,
)
from brie_bench.plugins.anthropic_backend import (
    AnthropicBackend,
    AnthropicOptions,
    BatchPoll,
    register_backends,
)
from brie_bench.testing.loopback import Answer, LoopbackProvider
from helpers import run_backend as run, chat_request as request

KEY = "sk-ant-test-5ecret-key-0001"
SCHEMA = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]},
                                           "scores": {"type": "object"}},
          "required": ["winner"]}


@pytest.fixture
def make(server: LoopbackProvider, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AnthropicBackend]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def _make(model: str = "claude-test", **opts: Any) -> AnthropicBackend:
        opts.setdefault("base_url", server.anthropic_url)
        return AnthropicBackend(model, AnthropicOptions(**opts), BackendContext("judge", "claude"))

    return _make


def test_plain_text_system_prompt_and_usage(server, make) -> None:
    server.responder = lambda call: Answer(text="A quiet pond", input_tokens=123, output_tokens=4)
    result = run(make(), lambda b: b.generate(request("Write a koan.", system="You are a monk.", max_tokens=77)))
    assert result.text == "A quiet pond"
    assert result.finish_reason == "end_turn" and result.structured is None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (123, 4)
    body = server.requests[-1].json()
    assert body["system"] == "You are a monk."
    assert body["messages"] == [{"role": "user", "content": "Write a koan."}]
    assert body["max_tokens"] == 77 and body["model"] == "claude-test"
    # API 2026-10-21 (the SDK's default) rejects sampling parameters: none are sent by default
    assert not {"temperature", "top_p", "top_k"} & set(body)
    assert server.requests[-1].headers["anthropic-version"] >= "2026-10-21"


def test_sampling_parameters_with_the_older_api_version(server, make) -> None:
    backend = make(api_version="2023-06-01", send_params=["temperature"], extra_body={"top_k": 5})
    run(backend, lambda b: b.generate(request(temperature=0.4)))
    logged = server.requests[-1]
    assert logged.headers["anthropic-version"] == "2023-06-01"
    body = logged.json()
    assert body["temperature"] == 0.4 and body["top_k"] == 5 and "top_p" not in body


def test_new_api_version_rejects_sampling_parameters_as_bad_request(server, make) -> None:
    with pytest.raises(PermanentError) as info:
        run(make(send_params=["temperature"]), lambda b: b.generate(request()))
    assert info.value.kind == "bad_request" and "temperature" in str(info.value)


def test_temperature_out_of_range_fails_before_any_request(server, make) -> None:
    backend = make(api_version="2023-06-01", send_params=["temperature"])
    with pytest.raises(PermanentError) as info:
        run(backend, lambda b: b.generate(request(temperature=1.4)))
    assert info.value.kind == "bad_request" and server.requests == []


def test_assistant_prefill_is_sent_as_the_last_message(server, make) -> None:
    req = GenerationRequest(messages=(Message("user", "Pick A or B."), Message("assistant", "Verdict:")))
    run(make(), lambda b: b.generate(req))
    assert server.requests[-1].json()["messages"][-1] == {"role": "assistant", "content": "Verdict:"}


def test_structured_verdict_through_a_forced_tool(server, make) -> None:
    server.responder = lambda call: {"winner": "A", "scores": {"A": {"depth": 4}}}
    req = GenerationRequest(messages=(Message("user", "judge"),), response_schema=SCHEMA, schema_name="verdict")
    result = run(make(), lambda b: b.generate(req))
    assert result.structured == {"winner": "A", "scores": {"A": {"depth": 4}}}
    assert result.finish_reason == "tool_use"
    assert result.text == '{"winner": "A", "scores": {"A": {"depth": 4}}}'
    body = server.requests[-1].json()
    assert body["tool_choice"] == {"type": "tool", "name": "verdict"}
    assert body["tools"][0]["name"] == "verdict" and body["tools"][0]["input_schema"] == SCHEMA


def test_structured_request_answered_in_text_leaves_structured_empty(server, make) -> None:
    server.responder = lambda call: "B is better"  # not JSON: the loopback answers with a text block
    req = GenerationRequest(messages=(Message("user", "judge"),), response_schema=SCHEMA)
    result = run(make(), lambda b: b.generate(req))
    assert result.structured is None and result.text == "B is better"


def test_max_tokens_stop_reason(server, make) -> None:
    server.responder = lambda call: "one two three four"
    result = run(make(), lambda b: b.generate(request(max_tokens=2)))
    assert result.text == "one two" and result.finish_reason == "max_tokens"


def test_overloaded_529_is_transient_server(server, make) -> None:
    server.add_faults("overloaded")
    with pytest.raises(TransientError) as info:
        run(make(), lambda b: b.generate(request()))
    assert (info.value.kind, info.value.status) == ("server", 529)


def test_key_only_in_the_auth_header(server, make) -> None:
    run(make(), lambda b: b.generate(request(system="s")))
    (logged,) = server.requests
    auth = {k: v for k, v in logged.headers.items() if KEY in v}
    assert set(auth) <= {"authorization", "x-api-key"} and auth
    assert KEY not in logged.path and KEY.encode() not in logged.body


def test_missing_key_fails_check_ready(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    backend = AnthropicBackend("claude", AnthropicOptions(), BackendContext("judge", "claude"))
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        backend.check_ready()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    backend.check_ready()


def test_no_logprobs() -> None:
    backend = AnthropicBackend("claude", AnthropicOptions(), BackendContext("judge", "claude"))
    assert not backend.supports_choice_logprobs
    with pytest.raises(PermanentError):
        asyncio.run(backend.choice_logprobs([Message("user", "x")], ["A", "B"]))


def test_batch_submit_and_poll(server, make) -> None:
    server.responder = lambda call: ({"winner": "B"} if call.schema else f"re: {call.prompt}")
    server.add_faults("overloaded", "bad_request")
    items = [("over", request("a")), ("bad", request("b")), ("ok", request("c")),
             ("tool", GenerationRequest(messages=(Message("user", "d"),), response_schema=SCHEMA))]

    async def flow(b: AnthropicBackend) -> tuple[BatchPoll, BatchPoll]:
        batch_id = await b.submit_batch(items)
        return await b.poll_batch(batch_id), await b.poll_batch(batch_id)

    first, second = run(make(), flow)
    assert not first.done and first.counts["processing"] == 4
    assert second.done and second.status == "ended"
    assert second.counts["succeeded"] == 2 and second.counts["errored"] == 2
    assert isinstance(second.results["over"], TransientError) and second.results["over"].kind == "server"
    assert isinstance(second.results["bad"], PermanentError) and second.results["bad"].kind == "bad_request"
    assert second.results["ok"].text == "re: c"
    assert second.results["tool"].structured == {"winner": "B"}
    sent = server.requests[0].json()["requests"]
    assert [r["custom_id"] for r in sent] == ["over", "bad", "ok", "tool"]
    assert sent[3]["params"]["tool_choice"] == {"type": "tool", "name": "verdict"}


def test_batch_rejects_custom_ids_the_api_would_refuse(make) -> None:
    with pytest.raises(ValueError, match="custom_id"):
        run(make(), lambda b: b.submit_batch([("has space", request())]))


def test_identity_and_registration(make) -> None:
    assert make(timeout_s=3).identity() == make(timeout_s=300).identity()
    assert make().identity() != make(send_params=["temperature"]).identity()
    registered: list[type] = []
    register_backends(registered.append)
    assert registered == [AnthropicBackend] and AnthropicBackend.name == "anthropic"
