"""Every failure kind, for each provider backend, through the real SDKs over real HTTP.

The loopback server plays the provider's own error bodies and broken
transports; each backend must turn them into the right TransientError /
PermanentError kind, make exactly one HTTP request (SDK retries are off: the
engine retries), and never put the API key into the message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from brie_bench.api import BackendContext, CallError, GenerationRequest, Message, PermanentError, TransientError
from brie_bench.plugins.anthropic_backend import AnthropicBackend, AnthropicOptions
from brie_bench.plugins.gemini_backend import GeminiBackend, GeminiOptions
from brie_bench.plugins.openai_backend import OpenAIBackend, OpenAIOptions
from brie_bench.testing.loopback import LoopbackProvider

KEY = "test-KEY-that-must-never-leak-42"

PROVIDERS: dict[str, tuple[type, type, str]] = {
    "openai": (OpenAIBackend, OpenAIOptions, "OPENAI_API_KEY"),
    "anthropic": (AnthropicBackend, AnthropicOptions, "ANTHROPIC_API_KEY"),
    "gemini": (GeminiBackend, GeminiOptions, "GEMINI_API_KEY"),
}

# fault -> (error type, kind, HTTP status or None when there is none / it differs by provider)
CASES: list[tuple[str, type[CallError], str, int | None]] = [
    ("rate_limit:2.5", TransientError, "rate_limit", 429),
    ("server", TransientError, "server", 500),
    ("overloaded", TransientError, "server", None),
    ("malformed", TransientError, "malformed", None),
    ("truncated", TransientError, "malformed", None),
    ("incomplete", TransientError, "connection", None),
    ("reset", TransientError, "connection", None),
    ("auth", PermanentError, "auth", None),
    ("forbidden", PermanentError, "auth", 403),
    ("not_found", PermanentError, "model", 404),
    ("bad_request", PermanentError, "bad_request", 400),
    ("refusal", PermanentError, "refusal", None),
    ("content_filter", PermanentError, "refusal", None),
]


def make(provider: str, server: LoopbackProvider, **opts: Any) -> Any:
    cls, options, _ = PROVIDERS[provider]
    return cls(f"{provider}-model", options(base_url=server.url(provider), **opts),
               BackendContext("judge", f"{provider}_judge"))


def call(backend: Any, prompt: str = "Compare these.") -> Any:
    async def main() -> Any:
        try:
            return await backend.generate(GenerationRequest(messages=(Message("user", prompt),)))
        finally:
            await backend.aclose()

    return asyncio.run(main())


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for _, _, env in PROVIDERS.values():
        monkeypatch.setenv(env, KEY)
    with LoopbackProvider(api_key=KEY, max_lifetime_s=60) as srv:
        yield srv


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("fault,etype,kind,status", CASES, ids=[c[0] for c in CASES])
def test_fault_maps_to_error_kind(server, provider, fault, etype, kind, status) -> None:
    server.add_faults(fault)
    with pytest.raises(CallError) as info:
        call(make(provider, server))
    err = info.value
    assert type(err) is etype, f"{provider} {fault}: {type(err).__name__}({err.kind}): {err}"
    assert err.kind == kind, f"{provider} {fault}: {err}"
    if status is not None:
        assert err.status == status
    if fault.startswith("rate_limit"):
        assert err.retry_after == 2.5  # a header for OpenAI/Anthropic, RetryInfo for Gemini
    if fault == "overloaded" and provider == "anthropic":
        assert err.status == 529
    assert KEY not in str(err) and KEY not in repr(err.args)
    assert len(server.requests) == 1, "the SDK retried on its own; the engine must own retries"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_slow_answer_is_a_timeout(server, provider) -> None:
    server.add_faults("slow:5")
    start = time.perf_counter()
    with pytest.raises(TransientError) as info:
        call(make(provider, server, timeout_s=0.4))
    assert info.value.kind == "timeout"
    assert time.perf_counter() - start < 4
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_wrong_key_is_auth_and_the_key_is_not_echoed(server, provider, monkeypatch) -> None:
    wrong = "wrong-key-value-abcdef123456"
    monkeypatch.setenv(PROVIDERS[provider][2], wrong)
    with pytest.raises(PermanentError) as info:
        call(make(provider, server))
    assert info.value.kind == "auth"
    assert wrong not in str(info.value)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_unknown_model_is_a_model_error(server, provider) -> None:
    server.models = {"some-other-model"}
    with pytest.raises(PermanentError) as info:
        call(make(provider, server))
    assert info.value.kind == "model" and info.value.status == 404


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_connection_refused_fails_fast_naming_the_url(provider, monkeypatch) -> None:
    """Nothing listens there: retrying cannot help, so it is permanent, and the message names the URL."""
    monkeypatch.setenv(PROVIDERS[provider][2], KEY)
    with LoopbackProvider() as srv:
        url = srv.url(provider)
    cls, options, _ = PROVIDERS[provider]  # the server is gone: nothing listens on that port now
    backend = cls("m", options(base_url=url, timeout_s=5), BackendContext("judge", "j"))
    with pytest.raises(PermanentError) as info:
        call(backend)
    assert info.value.kind == "refused"
    assert url in str(info.value)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_recovers_after_transient_faults(server, provider) -> None:
    server.add_faults("rate_limit", "reset")
    backend = make(provider, server)

    async def three() -> list[Any]:
        out: list[Any] = []
        try:
            for _ in range(3):
                try:
                    out.append(await backend.generate(GenerationRequest(messages=(Message("user", "hi"),))))
                except TransientError as exc:
                    out.append(exc.kind)
        finally:
            await backend.aclose()
        return out

    first, second, third = asyncio.run(three())
    assert (first, second) == ("rate_limit", "connection")
    assert third.text == "echo: hi"


def test_the_plugin_manager_registers_all_three_backends() -> None:
    from brie_bench.plugin_manager import load_plugins

    registry = load_plugins(entry_points=False)
    assert registry.backends["openai"] is OpenAIBackend
    assert registry.backends["anthropic"] is AnthropicBackend
    assert registry.backends["gemini"] is GeminiBackend
    assert not [f for f in registry.failures if "_backend" in f[0]]
