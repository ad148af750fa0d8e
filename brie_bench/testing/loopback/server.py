"""The HTTP plumbing of the loopback: one server on 127.0.0.1, one router, and `LoopbackProvider` itself.

Why it exists: the three provider modules know their wire formats but not HTTP. This
module puts them together into the one class tests use, listens on an ephemeral port,
sends each request to its provider's endpoint, and writes the answers, including the
scripted transport faults (slow, malformed, truncated, incomplete, reset) that only a
real socket can show. It also holds the command line (`python -m brie_bench.testing.loopback`).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from brie_bench.testing.loopback import anthropic_backend, gemini_backend, openai_backend
from brie_bench.testing.loopback.anthropic_backend import AnthropicEndpoints
from brie_bench.testing.loopback.base import Dialect, Fault, LoggedRequest, Protocol, Reply
from brie_bench.testing.loopback.gemini_backend import GeminiEndpoints
from brie_bench.testing.loopback.openai_backend import OpenAIEndpoints


class _Server(ThreadingHTTPServer):
    """A listen backlog deep enough for a concurrent run.

    With socketserver's default of 5, 16 or more simultaneous connects overflow the
    accept queue and clients see connection resets nobody injected.
    """

    request_queue_size = 128
    daemon_threads = True


class LoopbackProvider(OpenAIEndpoints, AnthropicEndpoints, GeminiEndpoints):
    """A scriptable fake of the three provider APIs, on 127.0.0.1 and an ephemeral port.

    Parameters:
      responder: Call -> answer text, structured dict, or `Answer`. Default: echo / schema example.
      faults: faults applied to the next model calls, in order (Fault or "kind[:arg]").
      fault_rate, fault_kinds, seed: once the queue is empty, each model call fails with
        probability ``fault_rate`` with a kind drawn from ``fault_kinds`` (seeded, repeatable).
      latency_s: sleep before every model answer (threads answer concurrently).
      api_key: when set, a request carrying another key gets the provider's auth error.
      models: when set, other model names get the provider's 404.
      lora_modules: adapter name -> base model name, as ``vllm serve BASE --enable-lora
        --lora-modules brie=PATH`` serves them: both names are served (and listed by
        ``GET /v1/models``, the adapter with ``parent: BASE``).
      routes: model name -> responder, to answer each served model with its own responder
        (a base model and its adapter behave differently); other names use ``responder``.
      batch_polls: how many batch status polls answer "in progress" before "ended".
      max_lifetime_s: the server stops itself after this long.

    Inspection: `calls`, `requests`; `max_in_flight` (HTTP requests being handled at once) and
    `max_in_flight_by_model` (model calls per model name); `hold_when` freezes chosen calls.
    """

    dialects: ClassVar[Mapping[Protocol, Dialect]] = {
        "openai": openai_backend.DIALECT, "anthropic": anthropic_backend.DIALECT, "gemini": gemini_backend.DIALECT}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LoopbackProvider:
        """Start serving (once: `with LoopbackProvider(...).start()` does not start a second server)."""
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"provider": self})
        server = _Server(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-provider", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes up slow answers. Safe to call twice."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()

    def __enter__(self) -> LoopbackProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------
    @property
    def openai_url(self) -> str:
        """base_url for the OpenAI SDK (includes /v1)."""
        return f"{self.base}/v1"

    @property
    def anthropic_url(self) -> str:
        """base_url for the Anthropic SDK (the SDK adds /v1)."""
        return self.base

    @property
    def gemini_url(self) -> str:
        """base_url for google-genai's HttpOptions (with api_version="v1beta")."""
        return self.base

    def url(self, protocol: Protocol) -> str:
        return {"openai": self.openai_url, "anthropic": self.anthropic_url, "gemini": self.gemini_url}[protocol]


class _Handler(BaseHTTPRequestHandler):
    #: Headers and body are written separately; with Nagle's algorithm the body would wait
    #: for the client's delayed ACK, adding ~40 ms to every answer.
    disable_nagle_algorithm = True

    provider: LoopbackProvider  # set on the bound subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.provider._record(LoggedRequest(method, self.path, headers, raw))
        p = self.provider
        with p._lock:
            p.in_flight += 1
            p.max_in_flight = max(p.max_in_flight, p.in_flight)
        try:
            reply = self._route(method, urlsplit(self.path).path, raw, headers)
        except Exception as exc:  # a bug in the fake must show up as a loud 500, not a hang
            reply = Reply(500, {"error": {"message": f"loopback error: {exc!r}", "type": "loopback"}})
        finally:
            with p._lock:
                p.in_flight -= 1
        self._send(reply)

    def _route(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> Reply:
        p = self.provider

        def body() -> dict[str, Any]:
            parsed: dict[str, Any] = json.loads(raw or b"{}")
            return parsed

        if method == "POST" and path == "/v1/chat/completions":
            b = body()
            return p.model_call("openai", b.get("model", ""), b, headers)
        if method == "GET" and path == "/v1/models":
            return p.openai_models(headers)
        if method == "POST" and path == "/v1/messages":
            b = body()
            return p.model_call("anthropic", b.get("model", ""), b, headers)
        m = gemini_backend.GENERATE_PATH.match(path)
        if method == "POST" and m:
            return p.model_call("gemini", unquote(m.group("model")), body(), headers)
        m = gemini_backend.BATCH_PATH.match(path)
        if method == "POST" and m:
            return p.gemini_batch_create(unquote(m.group("model")), body(), headers)
        m = gemini_backend.BATCH_GET_PATH.match(path)
        # /v1/batches/{id} is OpenAI's too: Gemini batch ids ("batches/gem...") are told apart by their record.
        if method == "GET" and m and (not path.startswith("/v1/") or p.is_gemini_batch(unquote(m.group("name")))):
            return p.gemini_batch_get(unquote(m.group("name")), headers)
        batch_protocol: Protocol = "openai" if path.startswith(("/v1/files", "/v1/batches")) else "anthropic"
        if not p._key_ok(batch_protocol, headers):
            return p.dialects[batch_protocol].error(Fault("auth"))
        if method == "POST" and path == "/v1/files":
            return p.openai_upload(raw, headers)
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            return p.openai_file_content(path.split("/")[3])
        if method == "POST" and path == "/v1/batches":
            return p.openai_batch_create(body(), headers)
        if method == "GET" and path.startswith("/v1/batches/"):
            return p.openai_batch_get(path.split("/")[3])
        if method == "POST" and path == "/v1/messages/batches":
            return p.anthropic_batch_create(body(), headers)
        if method == "GET" and path.startswith("/v1/messages/batches/"):
            parts = path.split("/")
            return p.anthropic_batch_get(parts[4], results=len(parts) > 5 and parts[5] == "results")
        return Reply(404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def _send(self, reply: Reply) -> None:
        fault = reply.transport
        if fault is not None and fault.kind == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if fault is not None and fault.kind == "slow":
            self.provider.sleep(fault.delay_s)
        if isinstance(reply.payload, bytes):
            data = reply.payload
        else:
            data = json.dumps(reply.payload).encode("utf-8")
        declared = len(data)
        if fault is not None and fault.kind == "malformed":
            data = b'{"id": "x", "choices": this is not json}'
            declared = len(data)
        elif fault is not None and fault.kind == "truncated":
            data = data[: len(data) // 2]
            declared = len(data)
        elif fault is not None and fault.kind == "incomplete":
            data = data[: len(data) // 2]
            self.close_connection = True
        try:
            self.send_response(reply.status)
            self.send_header("content-type", reply.headers.pop("content-type", "application/json"))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(declared))
            if self.close_connection:
                self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away (it timed out); nothing to do


def main(argv: Sequence[str] | None = None) -> None:
    """Serve from the command line (for crash tests in a subprocess, or to try a suite by hand).

    Prints the base URL on the first line of stdout, then serves until killed or until
    ``--lifetime`` seconds have passed.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m brie_bench.testing.loopback", description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to sleep before each answer")
    parser.add_argument("--fault", action="append", default=[], help="a scripted fault, e.g. rate_limit:2")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a random fault")
    parser.add_argument("--fault-kind", action="append", default=[], help="kinds for random faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    args = parser.parse_args(argv)
    srv = LoopbackProvider(faults=args.fault, fault_rate=args.fault_rate,
                           fault_kinds=args.fault_kind or ["server"], seed=args.seed, latency_s=args.latency,
                           api_key=args.api_key, max_lifetime_s=args.lifetime).start()
    print(srv.base, flush=True)
    try:
        srv._stopping.wait(args.lifetime)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
