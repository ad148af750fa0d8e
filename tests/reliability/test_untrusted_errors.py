"""Provider error messages are redacted first, then cut to 400 characters.

Cutting first left the head of a key just before the cut (`... sk-test-SECRET12`),
where no whole-key match could find it, and it reached the `errors` table and
the terminal. A real HTTP server here answers every call with an error whose
message echoes the key many times, at offsets chosen so that under the old
order some cut lands inside a copy; each provider SDK really parses it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from collections.abc import Iterator

import pytest

from brie_bench.api import BackendContext, CallError, GenerationRequest, Message
from brie_bench.http_helpers import safe_message
from plugins.anthropic_backend import AnthropicBackend, AnthropicOptions
from plugins.gemini_backend import GeminiBackend, GeminiOptions
from plugins.openai_backend import OpenAIBackend, OpenAIOptions

KEY = "sk-test-SECRET1234567890abcdefXYZ"  # 33 characters
PROVIDERS = {
    "openai": (OpenAIBackend, OpenAIOptions, "/v1"),
    "anthropic": (AnthropicBackend, AnthropicOptions, ""),
    "gemini": (GeminiBackend, GeminiOptions, ""),
}


class _EchoKey(BaseHTTPRequestHandler):
    """Answers 400 with the provider's error shape; the message repeats the key after `pad` characters."""

    pad = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        message = "x" * self.pad + " ".join([KEY] * 30)
        if "generateContent" in self.path:
            body: dict[str, Any] = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        elif self.path.endswith("/messages"):
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        else:
            body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        data = json.dumps(body).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def echo_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _fragments(key: str, size: int = 10) -> list[str]:
    return [key[i:i + size] for i in range(len(key) - size + 1)]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_no_piece_of_the_key_survives_an_error_message(echo_server: ThreadingHTTPServer, provider: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cls, options, suffix = PROVIDERS[provider]
    monkeypatch.setenv("ECHO_KEY", KEY)
    url = f"http://127.0.0.1:{echo_server.server_address[1]}{suffix}"
    messages = []
    for pad in range(0, len(KEY) + 1, 4):  # some pad puts the 400-character cut inside a copy of the key
        _EchoKey.pad = pad
        backend = cls("m", options(base_url=url, api_key_env="ECHO_KEY", timeout_s=10),
                      BackendContext("judge", "j"))

        async def call(backend: Any = backend) -> None:
            try:
                await backend.generate(GenerationRequest(messages=(Message("user", "hi"),)))
            finally:
                await backend.aclose()

        with pytest.raises(CallError) as info:
            asyncio.run(call())
        messages.append(str(info.value))
    assert all(len(m) <= 400 for m in messages)
    assert all("***" in m for m in messages), messages[0]
    leaks = [(m, f) for m in messages for f in _fragments(KEY) if f in m]
    assert leaks == [], leaks[0]


def test_safe_message_redacts_before_it_cuts() -> None:
    text = "y" * 390 + KEY
    cut_first = text[:400]
    assert KEY[:10] in cut_first  # the old order kept the key's head
    out = safe_message(text, KEY)
    assert len(out) <= 400 and not any(f in out for f in _fragments(KEY))


@pytest.mark.parametrize("text", ["Authorization: Bearer abcdefghijklmnop", "https://u:p4ssw0rd@host/x",
                                  "GET /v1/models?key=AIzaSyA0123456789abcdef012", "sk-ant-api03-abcdefghijk"])
def test_safe_message_redacts_key_shaped_text_that_is_not_our_key(text: str) -> None:
    out = safe_message(text, None)
    assert "***" in out
    for secret in ("abcdefghijklmnop", "p4ssw0rd", "AIzaSyA0123456789abcdef012", "api03-abcdefghijk"):
        assert secret not in out
