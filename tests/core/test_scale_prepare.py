"""The provider backends import their SDK and build their client in `prepare()`.

`brie-bench run` calls `prepare()` in the main thread before the event loop starts, so
the first judging call no longer imports the SDK inside the loop (which held up every
call started with it). These tests pin that `prepare()` builds the client without
touching the network, and that the client built outside the loop then works inside a
later one, through the real SDK over loopback HTTP.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import pytest

from brie_bench.api import BackendContext, ModelBackend
from brie_bench.plugins.anthropic_backend import AnthropicBackend, AnthropicOptions
from brie_bench.plugins.gemini_backend import GeminiBackend, GeminiOptions
from brie_bench.plugins.openai_backend import OpenAIBackend, OpenAIOptions
from brie_bench.testing.loopback import LoopbackProvider
from helpers import chat_request, run_backend

KEY = "sk-test-PREPARE-key"

BACKENDS: dict[str, Callable[[str], ModelBackend]] = {
    "openai": lambda url: OpenAIBackend("gpt-test", OpenAIOptions(base_url=url), BackendContext("judge", "gpt")),
    "anthropic": lambda url: AnthropicBackend("claude-test", AnthropicOptions(base_url=url),
                                              BackendContext("judge", "claude")),
    "gemini": lambda url: GeminiBackend("gemini-test", GeminiOptions(base_url=url), BackendContext("judge", "gem")),
}


@pytest.mark.parametrize("protocol", sorted(BACKENDS))
def test_prepare_builds_the_client_before_the_loop_and_the_first_call_uses_it(
        protocol: str, server: LoopbackProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(env, KEY)
    backend: Any = BACKENDS[protocol](server.url(protocol))
    assert backend._client is None
    backend.prepare()
    client = backend._client
    assert client is not None, "prepare() must build the SDK client, not leave it to the first call"
    assert server.requests == []  # nothing was sent: prepare only imports and builds

    async def first_call(b: Any) -> Any:
        result = await b.generate(chat_request("Say something wise."))
        assert b._client is client  # the call went through the client prepare() built
        return result

    result = run_backend(backend, first_call)
    assert result.text and len(server.calls) == 1
