"""A loopback HTTP server that speaks the OpenAI, Anthropic and Gemini wire protocols.

Why it exists: the provider backends must be tested through the *official SDKs
over real HTTP* (headers, retries, error bodies and timeouts are where provider
code breaks), but tests and benchmarks may not touch the network. This server
listens on 127.0.0.1 only, answers like the three providers do, and can be
scripted to misbehave the way real providers do (429 with retry-after, 5xx,
overload, slow answers, broken JSON, dropped connections, refusals, bad keys).

Usage::

    with LoopbackProvider(responder=lambda call: "hello", faults=["rate_limit"]) as srv:
        client = AsyncOpenAI(base_url=srv.openai_url, api_key="k", max_retries=0)
        ...
        assert srv.requests[0].headers["authorization"] == "Bearer k"

Endpoints:

* OpenAI: ``POST /v1/chat/completions`` (with ``logprobs``/``top_logprobs``),
  ``GET /v1/models`` (the served names, LoRA modules with their ``parent`` as vLLM lists them),
  batch: ``POST /v1/files``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
  ``GET /v1/files/{id}/content``.
* Anthropic: ``POST /v1/messages`` (text, and ``tool_use`` when a tool is forced),
  batch: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
  ``GET /v1/messages/batches/{id}/results``.
* Gemini: ``POST /v1beta/models/{model}:generateContent``,
  batch: ``POST /v1beta/models/{model}:batchGenerateContent`` (inline requests),
  ``GET /v1beta/batches/{id}`` (the batch as a long-running operation; its answers
  come back in ``metadata.output.inlinedResponses`` with each request's ``metadata``).

The server stops when the ``with`` block exits, and on its own after
``max_lifetime_s`` so a forgotten server never hangs CI. Handler threads are
daemons and slow answers wake up as soon as the server stops.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import itertools
import json
import math
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

Protocol = Literal["openai", "anthropic", "gemini"]

#: Faults that answer with an HTTP error status.
ERROR_FAULTS = ("rate_limit", "server", "overloaded", "auth", "forbidden", "not_found", "bad_request")
#: Faults that break the transport or the body instead of answering properly.
TRANSPORT_FAULTS = ("slow", "malformed", "truncated", "incomplete", "reset")
#: Faults that answer 200 with a content-policy refusal.
REFUSAL_FAULTS = ("refusal", "content_filter")
FAULT_KINDS = ERROR_FAULTS + TRANSPORT_FAULTS + REFUSAL_FAULTS


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to the next model call.

    kind:
      rate_limit   429, with ``retry_after`` seconds (a ``retry-after`` header for OpenAI and
                   Anthropic; a ``RetryInfo.retryDelay`` detail for Gemini, as Google sends it)
      server       500
      overloaded   Anthropic 529 ``overloaded_error``; 503 for the others
      auth         401 (Gemini: 400 ``API_KEY_INVALID``, as the real API answers a bad key)
      forbidden    403
      not_found    404 (unknown model)
      bad_request  400
      slow         sleep ``delay_s`` seconds, then answer normally
      malformed    200 whose body is not JSON
      truncated    200 whose JSON body is cut in half (the Content-Length matches the cut body)
      incomplete   the headers promise the full body, half is sent, then the connection closes
      reset        the connection is reset (TCP RST) without any answer
      refusal      a content-policy refusal (OpenAI ``refusal`` field, Anthropic
                   ``stop_reason: refusal``, Gemini ``finishReason: SAFETY``)
      content_filter  OpenAI ``finish_reason: content_filter``; Gemini ``promptFeedback.blockReason``;
                   Anthropic as ``refusal``
    """

    kind: str
    retry_after: float | None = 1.0
    delay_s: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULT_KINDS)}")

    @classmethod
    def parse(cls, spec: Fault | str) -> Fault:
        """A Fault from a Fault or a string such as ``"rate_limit"``, ``"rate_limit:3"``, ``"slow:0.5"``."""
        if isinstance(spec, Fault):
            return spec
        kind, _, arg = spec.partition(":")
        if not arg:
            return cls(kind)
        if kind == "slow":
            return cls(kind, delay_s=float(arg))
        if kind == "rate_limit":
            return cls(kind, retry_after=float(arg) if arg != "none" else None)
        raise ValueError(f"fault {kind!r} takes no argument (got {spec!r})")


@dataclass(frozen=True)
class Answer:
    """What a responder may return instead of a bare string or dict.

    ``top_logprobs`` gives the alternatives (token -> logprob) reported for the
    first output token when OpenAI logprobs are asked for.
    """

    text: str | None = None
    structured: Mapping[str, Any] | None = None
    top_logprobs: Mapping[str, float] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Call:
    """A model call as the responder sees it, the same shape for every protocol."""

    protocol: Protocol
    model: str
    system: str | None
    messages: tuple[tuple[str, str], ...]  # (role, text), role is "user" or "assistant"
    schema: Mapping[str, Any] | None
    body: Mapping[str, Any]

    @property
    def prompt(self) -> str:
        """The text of the last user message."""
        for role, text in reversed(self.messages):
            if role == "user":
                return text
        return ""


@dataclass(frozen=True)
class LoggedRequest:
    """One HTTP request as received: for checking what the SDKs really sent."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Responder = Callable[[Call], str | Mapping[str, Any] | Answer]


def tokens(text: str) -> list[str]:
    """The loopback's toy tokenizer: each token is a word with its leading whitespace."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def example_from_schema(schema: Mapping[str, Any]) -> Any:
    """A small value that satisfies a JSON schema (objects, enums, strings, numbers, arrays)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_from_schema(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub) for name, sub in props.items()}
    if kind == "array":
        item = schema.get("items") or {"type": "string"}
        return [example_from_schema(item) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * int(schema.get("minLength", 1))


def default_responder(call: Call) -> str | Mapping[str, Any]:
    """Echo the prompt, or a minimal valid object when a schema is asked for."""
    if call.schema:
        example: Mapping[str, Any] = example_from_schema(call.schema)  # an object schema gives an object
        return example
    return f"echo: {call.prompt}"


@dataclass
class _Reply:
    status: int
    payload: Any  # dict (sent as JSON) or bytes
    headers: dict[str, str] = field(default_factory=dict)
    transport: Fault | None = None


_OPENAI_ERROR = {
    "rate_limit": (429, "rate_limit_exceeded", "Rate limit reached"),
    "server": (500, "server_error", "The server had an error"),
    "overloaded": (503, "server_error", "The engine is currently overloaded"),
    "auth": (401, "invalid_api_key", "Incorrect API key provided"),
    "forbidden": (403, "permission_denied", "You are not allowed to use this model"),
    "not_found": (404, "model_not_found", "The model does not exist"),
    "bad_request": (400, "invalid_request_error", "Invalid request"),
}
_ANTHROPIC_ERROR = {
    "rate_limit": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "server": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "forbidden": (403, "permission_error", "Your API key does not have permission"),
    "not_found": (404, "not_found_error", "model: not found"),
    "bad_request": (400, "invalid_request_error", "Invalid request"),
}
_GEMINI_ERROR = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server": (500, "INTERNAL", "An internal error has occurred."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "auth": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "forbidden": (403, "PERMISSION_DENIED", "Permission denied."),
    "not_found": (404, "NOT_FOUND", "models/unknown is not found for API version v1beta"),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
}


def _error_reply(protocol: Protocol, fault: Fault) -> _Reply:
    """An error answer shaped like the provider's own."""
    headers: dict[str, str] = {}
    if protocol == "openai":
        status, code, msg = _OPENAI_ERROR[fault.kind]
        payload: dict[str, Any] = {"error": {"message": msg, "type": code, "param": None, "code": code}}
    elif protocol == "anthropic":
        status, etype, msg = _ANTHROPIC_ERROR[fault.kind]
        payload = {"type": "error", "error": {"type": etype, "message": msg}}
    else:
        status, gstatus, msg = _GEMINI_ERROR[fault.kind]
        err: dict[str, Any] = {"code": status, "message": msg, "status": gstatus}
        if fault.kind == "auth":
            err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                               "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
        if fault.kind == "rate_limit" and fault.retry_after is not None:
            err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                               "retryDelay": f"{fault.retry_after:g}s"}]
        payload = {"error": err}
    if fault.kind == "rate_limit" and fault.retry_after is not None and protocol != "gemini":
        headers["retry-after"] = f"{fault.retry_after:g}"
    return _Reply(status, payload, headers)


def _text_of(content: Any) -> str:
    """Text from an OpenAI/Anthropic content field (a string or a list of blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, Mapping) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def _parse_call(protocol: Protocol, model: str, body: Mapping[str, Any]) -> Call:
    """Normalise a provider request body into a Call."""
    system_parts: list[str] = []
    messages: list[tuple[str, str]] = []
    schema: Mapping[str, Any] | None = None
    if protocol == "openai":
        for m in body.get("messages", []):
            role = m.get("role")
            if role in ("system", "developer"):
                system_parts.append(_text_of(m.get("content")))
            else:
                messages.append((role, _text_of(m.get("content"))))
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
    elif protocol == "anthropic":
        system = body.get("system")
        if system:
            system_parts.append(_text_of(system))
        for m in body.get("messages", []):
            messages.append((m.get("role"), _text_of(m.get("content"))))
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            for tool in body.get("tools", []):
                if tool.get("name") == choice.get("name"):
                    schema = tool.get("input_schema") or {}
    else:
        si = body.get("systemInstruction") or body.get("system_instruction")
        if si:
            system_parts.append("".join(p.get("text", "") for p in si.get("parts", [])))
        for c in body.get("contents", []):
            role = "assistant" if c.get("role") == "model" else "user"
            messages.append((role, "".join(p.get("text", "") for p in c.get("parts", []))))
        cfg = body.get("generationConfig") or {}
        schema = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
    return Call(protocol, model, "\n\n".join(system_parts) or None, tuple(messages), schema, body)


#: google.rpc.Code numbers of the status names in Gemini error bodies (batch items carry a
#: google.rpc.Status, whose `code` is the gRPC code, not the HTTP status).
_GRPC_CODE = {"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
              "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "INTERNAL": 13,
              "UNAVAILABLE": 14, "UNAUTHENTICATED": 16}
_GEMINI_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_GEMINI_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def _normalise_answer(value: Any) -> Answer:
    if isinstance(value, Answer):
        return value
    if isinstance(value, str):
        return Answer(text=value)
    if isinstance(value, Mapping):
        return Answer(structured=value)
    raise TypeError(f"responder must return str, dict or Answer, not {type(value).__name__}")


class _Server(ThreadingHTTPServer):
    """A listen backlog deep enough for a concurrent run.

    With socketserver's default of 5, 16 or more simultaneous connects overflow the
    accept queue and clients see connection resets nobody injected.
    """

    request_queue_size = 128
    daemon_threads = True


class LoopbackProvider:
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
    """

    def __init__(self, responder: Responder | None = None, *, faults: Iterable[Fault | str] = (),
                 fault_rate: float = 0.0, fault_kinds: Sequence[Fault | str] = ("server",),
                 seed: int = 0, latency_s: float = 0.0, api_key: str | None = None,
                 models: Iterable[str] | None = None, batch_polls: int = 1,
                 max_lifetime_s: float = 300.0, lora_modules: Mapping[str, str] | None = None,
                 routes: Mapping[str, Responder] | None = None) -> None:
        self.responder: Responder = responder or default_responder
        self.latency_s = latency_s
        self.api_key = api_key
        self.lora_modules = dict(lora_modules or {})
        self.routes = dict(routes or {})
        self.models = set(models) if models is not None else None
        if self.models is not None or self.lora_modules:
            self.models = (self.models or set()) | set(self.lora_modules) | set(self.lora_modules.values())
        self.batch_polls = batch_polls
        self.max_lifetime_s = max_lifetime_s
        self._faults: collections.deque[Fault] = collections.deque(Fault.parse(f) for f in faults)
        self._fault_rate = fault_rate
        self._fault_kinds = [Fault.parse(f) for f in fault_kinds]
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._calls: list[Call] = []
        self._ids = itertools.count(1)
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.in_flight = 0
        self.max_in_flight = 0

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
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("loopback server is not running")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    # -- scripting and inspection ------------------------------------------------------
    def add_faults(self, *faults: Fault | str) -> None:
        with self._lock:
            self._faults.extend(Fault.parse(f) for f in faults)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def calls(self) -> list[Call]:
        """Model calls that reached the responder."""
        with self._lock:
            return list(self._calls)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._calls.clear()

    # -- internals used by the handler -------------------------------------------------
    def _record(self, req: LoggedRequest) -> None:
        with self._lock:
            self._log.append(req)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self._fault_rate > 0 and self._rng.random() < self._fault_rate:
                return self._rng.choice(self._fault_kinds)
        return None

    def sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _key_ok(self, protocol: Protocol, headers: Mapping[str, str]) -> bool:
        if self.api_key is None:
            return True
        if protocol == "openai":
            return headers.get("authorization") == f"Bearer {self.api_key}"
        if protocol == "anthropic":  # older SDKs send x-api-key, newer ones a bearer token
            return (headers.get("x-api-key") == self.api_key
                    or headers.get("authorization") == f"Bearer {self.api_key}")
        return headers.get("x-goog-api-key") == self.api_key

    def model_call(self, protocol: Protocol, model: str, body: Mapping[str, Any],
                   headers: Mapping[str, str], *, in_batch: bool = False) -> _Reply:
        """Answer one model call: auth, model check, faults, responder, rendering."""
        if not in_batch:
            self.sleep(self.latency_s)
        if not self._key_ok(protocol, headers):
            return _error_reply(protocol, Fault("auth"))
        if self.models is not None and model not in self.models:
            return _error_reply(protocol, Fault("not_found"))
        if protocol == "anthropic" and headers.get("anthropic-version", "") >= "2026-10-21":
            removed = [k for k in ("temperature", "top_p", "top_k") if k in body]
            if removed:  # API 2026-10-21 removed sampling parameters, even at their defaults
                return _Reply(400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": f"{removed[0]}: Extra inputs are not permitted"}})
        fault = self._next_fault()
        if fault is not None and in_batch and fault.kind in TRANSPORT_FAULTS:
            fault = Fault("server")  # a batch line cannot drop a connection
        if fault is not None and fault.kind in ERROR_FAULTS:
            return _error_reply(protocol, fault)
        call = _parse_call(protocol, model, body)
        with self._lock:
            self._calls.append(call)
        if fault is not None and fault.kind in REFUSAL_FAULTS:
            return _Reply(200, _render_refusal(protocol, call, fault.kind, self._next_id()))
        answer = _normalise_answer(self.routes.get(call.model, self.responder)(call))
        renderer = {"openai": _render_openai, "anthropic": _render_anthropic, "gemini": _render_gemini}
        payload = renderer[protocol](call, answer, self._next_id())
        return _Reply(200, payload, transport=fault)

    def openai_models(self, headers: Mapping[str, str]) -> _Reply:
        """GET /v1/models: every served name; a LoRA module names its base as ``parent`` (vLLM's shape)."""
        if not self._key_ok("openai", headers):
            return _error_reply("openai", Fault("auth"))
        names = sorted(self.models if self.models is not None else set(self.routes))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "loopback",
                 "root": name, "parent": self.lora_modules.get(name)} for name in names]
        return _Reply(200, {"object": "list", "data": data})

    # -- batches -----------------------------------------------------------------------
    def openai_batch_create(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> _Reply:
        data = self._files.get(body.get("input_file_id", ""))
        if data is None:
            return _Reply(404, {"error": {"message": "No such file", "type": "invalid_request_error",
                                          "code": "not_found", "param": None}})
        ok_lines: list[str] = []
        err_lines: list[str] = []
        for raw in data.decode("utf-8").splitlines():
            if not raw.strip():
                continue
            item = json.loads(raw)
            reply = self.model_call("openai", item["body"].get("model", ""), item["body"], headers,
                                    in_batch=True)
            line = {"id": f"batch_req_{self._next_id()}", "custom_id": item["custom_id"],
                    "response": {"status_code": reply.status, "request_id": f"req_{self._next_id()}",
                                 "body": reply.payload},
                    "error": None}
            (ok_lines if reply.status == 200 else err_lines).append(json.dumps(line))
        batch_id = f"batch_{self._next_id()}"
        out_id = err_id = None
        if ok_lines:
            out_id = f"file-{self._next_id()}"
            self._files[out_id] = ("\n".join(ok_lines) + "\n").encode()
        if err_lines:
            err_id = f"file-{self._next_id()}"
            self._files[err_id] = ("\n".join(err_lines) + "\n").encode()
        batch = {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                 "input_file_id": body.get("input_file_id"),
                 "completion_window": body.get("completion_window", "24h"),
                 "created_at": int(time.time()), "polls": 0,
                 "final": {"output_file_id": out_id, "error_file_id": err_id,
                           "request_counts": {"total": len(ok_lines) + len(err_lines),
                                              "completed": len(ok_lines), "failed": len(err_lines)}}}
        with self._lock:
            self._batches[batch_id] = batch
        return _Reply(200, self._openai_batch_view(batch, poll=False))

    def _openai_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in batch.items() if k not in ("final", "polls")}
        if poll:
            batch["polls"] += 1
        done = poll and batch["polls"] > self.batch_polls
        total = batch["final"]["request_counts"]["total"]
        if done:
            view.update(batch["final"], status="completed", completed_at=int(time.time()))
        else:
            view.update(status="in_progress" if poll else "validating", output_file_id=None,
                        error_file_id=None,
                        request_counts={"total": total, "completed": 0, "failed": 0})
        return view

    def openai_batch_get(self, batch_id: str) -> _Reply:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _Reply(404, {"error": {"message": "No such batch", "type": "invalid_request_error",
                                              "code": "not_found", "param": None}})
            return _Reply(200, self._openai_batch_view(batch))

    def anthropic_batch_create(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> _Reply:
        lines = []
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for item in body.get("requests", []):
            params = item.get("params", {})
            reply = self.model_call("anthropic", params.get("model", ""), params, headers, in_batch=True)
            if reply.status == 200:
                result: dict[str, Any] = {"type": "succeeded", "message": reply.payload}
                counts["succeeded"] += 1
            else:
                result = {"type": "errored", "error": reply.payload}
                counts["errored"] += 1
            lines.append(json.dumps({"custom_id": item.get("custom_id"), "result": result}))
        batch_id = f"msgbatch_{self._next_id()}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        batch = {"id": batch_id, "type": "message_batch", "created_at": now, "expires_at": now,
                 "archived_at": None, "cancel_initiated_at": None, "polls": 0, "counts": counts,
                 "results": ("\n".join(lines) + "\n").encode()}
        with self._lock:
            self._batches[batch_id] = batch
        return _Reply(200, self._anthropic_batch_view(batch, poll=False))

    def _anthropic_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in batch.items() if k not in ("polls", "counts", "results")}
        if poll:
            batch["polls"] += 1
        if poll and batch["polls"] > self.batch_polls:
            view.update(processing_status="ended", request_counts=batch["counts"], ended_at=view["created_at"],
                        results_url=f"{self.base}/v1/messages/batches/{batch['id']}/results")
        else:
            total = sum(batch["counts"].values())
            view.update(processing_status="in_progress", ended_at=None, results_url=None,
                        request_counts={"processing": total, "succeeded": 0, "errored": 0,
                                        "canceled": 0, "expired": 0})
        return view

    def gemini_batch_create(self, model: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> _Reply:
        """POST models/{model}:batchGenerateContent with inline requests: answer them all now.

        Each inline request is ``{"request": GenerateContentRequest, "metadata": {...}}``; its
        answer keeps the metadata, as the real API documents.
        """
        if not self._key_ok("gemini", headers):
            return _error_reply("gemini", Fault("auth"))
        batch_in = body.get("batch") or {}
        items = ((batch_in.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(items, list) or not items:
            return _Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                          "message": "batch.input_config.requests is required"}})
        responses, ok = [], 0
        for item in items:
            request = item.get("request") or {}
            reply = self.model_call("gemini", model, request, headers, in_batch=True)
            entry: dict[str, Any] = {}
            if reply.status == 200:
                entry["response"] = reply.payload
                ok += 1
            else:
                err = reply.payload.get("error", {})
                entry["error"] = {"code": _GRPC_CODE.get(err.get("status", ""), 2),
                                  "message": err.get("message", "")}
            if item.get("metadata") is not None:
                entry["metadata"] = item["metadata"]
            responses.append(entry)
        batch_id = f"batches/gem{self._next_id()}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        batch = {"id": batch_id, "protocol": "gemini", "polls": 0, "model": f"models/{model}",
                 "displayName": batch_in.get("displayName", ""), "createTime": now,
                 "responses": responses, "ok": ok}
        with self._lock:
            self._batches[batch_id] = batch
        return _Reply(200, self._gemini_batch_view(batch, poll=False))

    def _gemini_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        """The batch as the long-running Operation the API returns."""
        if poll:
            batch["polls"] += 1
        done = poll and batch["polls"] > self.batch_polls
        total = len(batch["responses"])
        meta: dict[str, Any] = {"@type": _GEMINI_BATCH_TYPE, "model": batch["model"],
                                "displayName": batch["displayName"], "createTime": batch["createTime"],
                                "updateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        op: dict[str, Any] = {"name": batch["id"], "metadata": meta}
        if done:
            output = {"inlinedResponses": {"inlinedResponses": batch["responses"]}}
            meta.update(state="BATCH_STATE_SUCCEEDED", endTime=meta["updateTime"], output=output,
                        batchStats={"requestCount": str(total), "successfulRequestCount": str(batch["ok"]),
                                    "failedRequestCount": str(total - batch["ok"])})
            op.update(done=True, response={"@type": _GEMINI_OUTPUT_TYPE, **output})
        else:
            meta.update(state="BATCH_STATE_RUNNING" if poll else "BATCH_STATE_PENDING",
                        batchStats={"requestCount": str(total), "pendingRequestCount": str(total)})
        return op

    def gemini_batch_get(self, batch_id: str, headers: Mapping[str, str]) -> _Reply:
        if not self._key_ok("gemini", headers):
            return _error_reply("gemini", Fault("auth"))
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or batch.get("protocol") != "gemini":
                return _Reply(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                              "message": f"Batch {batch_id} not found."}})
            return _Reply(200, self._gemini_batch_view(batch))

    def anthropic_batch_get(self, batch_id: str, *, results: bool) -> _Reply:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _Reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                               "message": "batch not found"}})
            if results:
                return _Reply(200, batch["results"], {"content-type": "application/binary"})
            return _Reply(200, self._anthropic_batch_view(batch))


# -- rendering ---------------------------------------------------------------------------

def _answer_text(answer: Answer) -> str:
    if answer.text is not None:
        return answer.text
    return json.dumps(answer.structured) if answer.structured is not None else ""


def _cut(text: str, limit: Any) -> tuple[str, bool]:
    """Cut text to `limit` toy tokens; True when it was cut."""
    toks = tokens(text)
    if isinstance(limit, int) and 0 < limit < len(toks):
        return "".join(toks[:limit]), True
    return text, False


def _usage_counts(call: Call, answer: Answer, out_text: str) -> tuple[int, int]:
    prompt_text = " ".join([call.system or ""] + [t for _, t in call.messages])
    inp = answer.input_tokens if answer.input_tokens is not None else len(tokens(prompt_text))
    out = answer.output_tokens if answer.output_tokens is not None else len(tokens(out_text))
    return inp, out


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _render_openai(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    body = call.body
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, cut = _cut(_answer_text(answer), limit)
    inp, out = _usage_counts(call, answer, text)
    logprobs = None
    if body.get("logprobs"):
        want = int(body.get("top_logprobs") or 0)
        content = []
        for i, tok in enumerate(tokens(text)):
            top = [_logprob_entry(tok, math.log(0.9))]
            if i == 0 and answer.top_logprobs is not None:
                top = [_logprob_entry(t, lp) for t, lp in
                       sorted(answer.top_logprobs.items(), key=lambda kv: -kv[1])]
            chosen = top[0] if i == 0 and top else _logprob_entry(tok, math.log(0.9))
            content.append({**chosen, "top_logprobs": top[:want]})
        logprobs = {"content": content, "refusal": None}
    return {
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
        "model": call.model, "system_fingerprint": "fp_loopback",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": logprobs, "finish_reason": "length" if cut else "stop"}],
        "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
    }


def _render_anthropic(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    structured = answer.structured
    if call.schema is not None and structured is None and answer.text is not None:
        try:
            parsed = json.loads(answer.text)
            structured = parsed if isinstance(parsed, dict) else None
        except ValueError:
            structured = None
    if call.schema is not None and structured is not None:
        tool_name = (call.body.get("tool_choice") or {}).get("name", "tool")
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": f"toolu_{n}", "name": tool_name,
                                          "input": dict(structured)}]
        inp, out = _usage_counts(call, answer, json.dumps(structured))
        stop = "tool_use"
    else:
        text, cut = _cut(_answer_text(answer), call.body.get("max_tokens"))
        content = [{"type": "text", "text": text}]
        inp, out = _usage_counts(call, answer, text)
        stop = "max_tokens" if cut else "end_turn"
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": call.model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": out}}


def _render_gemini(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    limit = (call.body.get("generationConfig") or {}).get("maxOutputTokens")
    text, cut = _cut(_answer_text(answer), limit)
    inp, out = _usage_counts(call, answer, text)
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "MAX_TOKENS" if cut else "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": inp, "candidatesTokenCount": out,
                              "totalTokenCount": inp + out},
            "modelVersion": call.model, "responseId": f"resp-{n}"}


def _render_refusal(protocol: Protocol, call: Call, kind: str, n: int) -> dict[str, Any]:
    if protocol == "openai":
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "content_filter"
        if kind == "refusal":
            message["refusal"] = "I'm sorry, I can't help with that."
            finish = "stop"
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": call.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}}
    if protocol == "anthropic":
        return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": call.model,
                "content": [], "stop_reason": "refusal", "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 0}}
    if kind == "content_filter":
        return {"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
    return {"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "index": 0,
                            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                               "probability": "HIGH", "blocked": True}]}],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}


# -- HTTP handler ------------------------------------------------------------------------

_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?\d*/models/(?P<model>[^:]+):generateContent$")
_GEMINI_BATCH_PATH = re.compile(r"^/v1(?:beta|alpha)?\d*/models/(?P<model>[^:]+):batchGenerateContent$")
_GEMINI_BATCH_GET = re.compile(r"^/v1(?:beta|alpha)?\d*/(?P<name>batches/[^/:]+)$")


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
            reply = _Reply(500, {"error": {"message": f"loopback error: {exc!r}", "type": "loopback"}})
        finally:
            with p._lock:
                p.in_flight -= 1
        self._send(reply)

    def _route(self, method: str, path: str, raw: bytes, headers: Mapping[str, str]) -> _Reply:
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
        m = _GEMINI_PATH.match(path)
        if method == "POST" and m:
            return p.model_call("gemini", unquote(m.group("model")), body(), headers)
        m = _GEMINI_BATCH_PATH.match(path)
        if method == "POST" and m:
            return p.gemini_batch_create(unquote(m.group("model")), body(), headers)
        m = _GEMINI_BATCH_GET.match(path)
        # /v1/batches/{id} is OpenAI's too: Gemini batch ids ("batches/gem...") are told apart by their record.
        if method == "GET" and m and (not path.startswith("/v1/") or unquote(m.group("name")) in p._batches
                                      and p._batches[unquote(m.group("name"))].get("protocol") == "gemini"):
            return p.gemini_batch_get(unquote(m.group("name")), headers)
        batch_protocol: Protocol = "openai" if path.startswith(("/v1/files", "/v1/batches")) else "anthropic"
        if not p._key_ok(batch_protocol, headers):
            return _error_reply(batch_protocol, Fault("auth"))
        if method == "POST" and path == "/v1/files":
            return self._upload(raw, headers)
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            data = p._files.get(path.split("/")[3])
            return _Reply(200, data, {"content-type": "application/octet-stream"}) if data is not None \
                else _Reply(404, {"error": {"message": "No such file", "type": "invalid_request_error"}})
        if method == "POST" and path == "/v1/batches":
            return p.openai_batch_create(body(), headers)
        if method == "GET" and path.startswith("/v1/batches/"):
            return p.openai_batch_get(path.split("/")[3])
        if method == "POST" and path == "/v1/messages/batches":
            return p.anthropic_batch_create(body(), headers)
        if method == "GET" and path.startswith("/v1/messages/batches/"):
            parts = path.split("/")
            return p.anthropic_batch_get(parts[4], results=len(parts) > 5 and parts[5] == "results")
        return _Reply(404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})

    def _upload(self, raw: bytes, headers: Mapping[str, str]) -> _Reply:
        """POST /v1/files: parse the multipart form and keep the file in memory."""
        head = f"Content-Type: {headers.get('content-type', '')}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, Any] = {}
        filename = "upload.jsonl"
        for part in msg.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            fields[name] = part.get_payload(decode=True)
            filename = part.get_filename() or filename
        data = fields.get("file") or b""
        file_id = f"file-{self.provider._next_id()}"
        with self.provider._lock:
            self.provider._files[file_id] = data
        purpose = (fields.get("purpose") or b"batch").decode()
        return _Reply(200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                            "filename": filename, "purpose": purpose, "status": "processed"})

    def _send(self, reply: _Reply) -> None:
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


if __name__ == "__main__":
    main()
