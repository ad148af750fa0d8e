"""The gemini backend through the real google-genai SDK over real HTTP, against the loopback server."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import pytest

from brie_bench.api import (
    BackendContext,
    GenerationRequest,
    InputError,
    Message,
    MissingKeyError,
    PermanentError,
    SamplingParams,
    TransientError,
)
from brie_bench.plugins.gemini_backend import GeminiBackend, GeminiOptions, register_backends
from brie_bench.testing.loopback import Answer, LoopbackProvider
from helpers import run_backend as run

KEY = "AIza-test-gemini-5ecret-key"
SCHEMA = {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
          "required": ["winner"]}


def request(*msgs: tuple[str, str], **params: Any) -> GenerationRequest:
    return GenerationRequest(messages=tuple(Message(r, t) for r, t in msgs) or (Message("user", "hi"),),
                             params=SamplingParams(**params))


@pytest.fixture
def make(server: LoopbackProvider, monkeypatch: pytest.MonkeyPatch) -> Callable[..., GeminiBackend]:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)

    def _make(model: str = "gemini-test", **opts: Any) -> GeminiBackend:
        opts.setdefault("base_url", server.gemini_url)
        return GeminiBackend(model, GeminiOptions(**opts), BackendContext("judge", "gemini"))

    return _make


def test_text_system_instruction_roles_sampling_and_usage(server, make) -> None:
    server.responder = lambda call: Answer(text="Being is said in many ways", input_tokens=40, output_tokens=6)
    req = request(("system", "Be Aristotle."), ("user", "What is being?"), ("assistant", "Hm."),
                  ("user", "Go on."), temperature=0.2, top_p=0.8, max_tokens=99, seed=5)
    result = run(make(), lambda b: b.generate(req))
    assert result.text == "Being is said in many ways"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (40, 6)
    assert result.finish_reason == "STOP" and result.model == "gemini-test"
    logged = server.requests[-1]
    assert logged.path == "/v1beta/models/gemini-test:generateContent"
    body = logged.json()
    assert body["systemInstruction"]["parts"] == [{"text": "Be Aristotle."}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Hm."}]
    cfg = body["generationConfig"]
    assert (cfg["temperature"], cfg["topP"], cfg["maxOutputTokens"], cfg["seed"]) == (0.2, 0.8, 99, 5)
    assert server.calls[-1].system == "Be Aristotle."


def test_structured_verdict_uses_json_mode(server, make) -> None:
    server.responder = lambda call: {"winner": "tie"}
    req = GenerationRequest(messages=(Message("user", "judge"),), response_schema=SCHEMA)
    result = run(make(), lambda b: b.generate(req))
    assert result.structured == {"winner": "tie"}
    cfg = server.requests[-1].json()["generationConfig"]
    assert cfg["responseMimeType"] == "application/json" and cfg["responseJsonSchema"] == SCHEMA


def test_openapi_schema_field_and_extra_config(server, make) -> None:
    backend = make(schema_field="response_schema", omit_params=["seed"],
                   extra_config={"thinking_config": {"thinking_budget": 0}})
    backend.check_ready()
    req = GenerationRequest(messages=(Message("user", "judge"),), response_schema=SCHEMA)
    run(backend, lambda b: b.generate(req))
    cfg = server.requests[-1].json()["generationConfig"]
    assert "responseSchema" in cfg and "responseJsonSchema" not in cfg
    # protobuf JSON accepts either spelling; this SDK version sends the nested field in snake_case
    assert cfg["thinkingConfig"] in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    assert "seed" not in cfg


def test_invalid_extra_config_is_an_input_error(make) -> None:
    with pytest.raises(InputError, match="extra_config"):
        make(extra_config={"no_such_field": 1}).check_ready()


def test_max_tokens_finish_reason(server, make) -> None:
    server.responder = lambda call: "a b c d e"
    result = run(make(), lambda b: b.generate(request(max_tokens=2)))
    assert result.text == "a b" and result.finish_reason == "MAX_TOKENS"


def test_blocked_prompt_and_safety_stop_are_refusals(server, make) -> None:
    server.add_faults("content_filter", "refusal")
    for expected in ("prompt blocked", "SAFETY"):
        with pytest.raises(PermanentError) as info:
            run(make(), lambda b: b.generate(request()))
        assert info.value.kind == "refusal" and expected in str(info.value)


def test_bad_key_400_api_key_invalid_is_auth(server, make, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-wrong-wrong-wrong")
    with pytest.raises(PermanentError) as info:
        run(make(), lambda b: b.generate(request()))
    assert info.value.kind == "auth" and info.value.status == 400
    assert "AIza-wrong-wrong-wrong" not in str(info.value)


def test_rate_limit_reads_retry_info_detail(server, make) -> None:
    server.add_faults("rate_limit:17")
    with pytest.raises(TransientError) as info:
        run(make(), lambda b: b.generate(request()))
    assert info.value.kind == "rate_limit" and info.value.retry_after == 17.0


def test_key_only_in_the_goog_api_key_header(server, make) -> None:
    run(make(), lambda b: b.generate(request(("system", "s"), ("user", "u"))))
    (logged,) = server.requests
    assert logged.headers["x-goog-api-key"] == KEY
    assert [k for k, v in logged.headers.items() if KEY in v] == ["x-goog-api-key"]
    assert KEY not in logged.path and KEY.encode() not in logged.body


def test_google_api_key_fallback_and_missing_key(monkeypatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    backend = GeminiBackend("gemini-test", GeminiOptions(), BackendContext("judge", "gem"))
    with pytest.raises(MissingKeyError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        backend.check_ready()
    monkeypatch.setenv("GOOGLE_API_KEY", "g")
    backend.check_ready()
    assert backend.api_key() == "g"


def test_identity_and_registration(make) -> None:
    assert make(timeout_s=1).identity() == make(timeout_s=100).identity()
    assert make().identity() != make(model="gemini-other").identity()
    registered: list[type] = []
    register_backends(registered.append)
    assert registered == [GeminiBackend]
    assert GeminiBackend.default_key_envs == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
