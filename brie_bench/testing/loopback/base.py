"""What the three provider fakes share: the scripted faults, the call and answer records, and the server's state.

Why it exists: the OpenAI, Anthropic and Gemini modules of this package each know one
wire format, and nothing else. Everything that is the same for all three (which fault
comes next, which key and model names are accepted, how a responder's answer is
normalised, the log of requests, the ids and the stored batches) lives here once, so a
provider module only parses its own request bodies and renders its own answers.
Nothing here touches HTTP; `server.py` does.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar, Literal

Protocol = Literal["openai", "anthropic", "gemini"]

#: Faults that answer with an HTTP error status.
ERROR_FAULTS = ("rate_limit", "server", "overloaded", "auth", "forbidden", "not_found", "bad_request")
#: Faults that break the transport or the body instead of answering properly.
TRANSPORT_FAULTS = ("slow", "malformed", "truncated", "incomplete", "reset")
#: Faults that answer 200 with a content-policy refusal.
REFUSAL_FAULTS = ("refusal", "content_filter")
FAULT_KINDS = ERROR_FAULTS + TRANSPORT_FAULTS + REFUSAL_FAULTS

#: Each error fault as each provider answers it: (HTTP status, the provider's error type or
#: status name, its message). One table, so a new fault kind is added for all three at once.
ERROR_ANSWERS: dict[str, dict[Protocol, tuple[int, str, str]]] = {
    "rate_limit": {"openai": (429, "rate_limit_exceeded", "Rate limit reached"),
                   "anthropic": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
                   "gemini": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")},
    "server": {"openai": (500, "server_error", "The server had an error"),
               "anthropic": (500, "api_error", "Internal server error"),
               "gemini": (500, "INTERNAL", "An internal error has occurred.")},
    "overloaded": {"openai": (503, "server_error", "The engine is currently overloaded"),
                   "anthropic": (529, "overloaded_error", "Overloaded"),
                   "gemini": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.")},
    "auth": {"openai": (401, "invalid_api_key", "Incorrect API key provided"),
             "anthropic": (401, "authentication_error", "invalid x-api-key"),
             "gemini": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")},
    "forbidden": {"openai": (403, "permission_denied", "You are not allowed to use this model"),
                  "anthropic": (403, "permission_error", "Your API key does not have permission"),
                  "gemini": (403, "PERMISSION_DENIED", "Permission denied.")},
    "not_found": {"openai": (404, "model_not_found", "The model does not exist"),
                  "anthropic": (404, "not_found_error", "model: not found"),
                  "gemini": (404, "NOT_FOUND", "models/unknown is not found for API version v1beta")},
    "bad_request": {"openai": (400, "invalid_request_error", "Invalid request"),
                    "anthropic": (400, "invalid_request_error", "Invalid request"),
                    "gemini": (400, "INVALID_ARGUMENT", "Request contains an invalid argument.")},
}


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
class Reply:
    """One answer before it is written: status, a dict (sent as JSON) or bytes, and a transport fault."""

    status: int
    payload: Any  # dict (sent as JSON) or bytes
    headers: dict[str, str] = field(default_factory=dict)
    transport: Fault | None = None


def retry_after_headers(fault: Fault) -> dict[str, str]:
    """The ``retry-after`` header a rate-limit fault carries (OpenAI and Anthropic send one)."""
    if fault.kind == "rate_limit" and fault.retry_after is not None:
        return {"retry-after": f"{fault.retry_after:g}"}
    return {}


def text_of(content: Any) -> str:
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


def normalise_answer(value: Any) -> Answer:
    """A responder's return value as an `Answer`."""
    if isinstance(value, Answer):
        return value
    if isinstance(value, str):
        return Answer(text=value)
    if isinstance(value, Mapping):
        return Answer(structured=value)
    raise TypeError(f"responder must return str, dict or Answer, not {type(value).__name__}")


def answer_text(answer: Answer) -> str:
    """The answer as text: its text, else its structured value as JSON."""
    if answer.text is not None:
        return answer.text
    return json.dumps(answer.structured) if answer.structured is not None else ""


def cut(text: str, limit: Any) -> tuple[str, bool]:
    """Cut text to `limit` toy tokens; True when it was cut."""
    toks = tokens(text)
    if isinstance(limit, int) and 0 < limit < len(toks):
        return "".join(toks[:limit]), True
    return text, False


def usage_counts(call: Call, answer: Answer, out_text: str) -> tuple[int, int]:
    """(input, output) token counts: the answer's own, else the toy tokenizer's."""
    prompt_text = " ".join([call.system or ""] + [t for _, t in call.messages])
    inp = answer.input_tokens if answer.input_tokens is not None else len(tokens(prompt_text))
    out = answer.output_tokens if answer.output_tokens is not None else len(tokens(out_text))
    return inp, out


def _no_precheck(body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply | None:
    return None


@dataclass(frozen=True)
class Dialect:
    """What answering one model call needs to know about one provider's wire format.

    key_ok(api_key, headers): the request carries the key the way this provider's SDK sends it.
    error(fault): an error answer shaped like the provider's own.
    parse(model, body): the request body as a `Call`.
    render(call, answer, n) and refusal(call, kind, n): the 200 bodies (``n`` numbers the ids).
    precheck(body, headers): an answer that rejects the request before any fault, or None.
    """

    key_ok: Callable[[str, Mapping[str, str]], bool]
    error: Callable[[Fault], Reply]
    parse: Callable[[str, Mapping[str, Any]], Call]
    render: Callable[[Call, Answer, int], dict[str, Any]]
    refusal: Callable[[Call, str, int], dict[str, Any]]
    precheck: Callable[[Mapping[str, Any], Mapping[str, str]], Reply | None] = _no_precheck


class LoopbackState:
    """The state every provider's endpoints share, and the one path a model call takes.

    The provider modules add their endpoints to this as mixins; `server.LoopbackProvider`
    puts them together, names the dialects, and serves them over HTTP.
    """

    #: Each protocol's wire format; set by the class that puts the providers together.
    dialects: ClassVar[Mapping[Protocol, Dialect]]

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
        #: Model calls being answered now, and the most at once, per model name (a suite's limits are
        #: per contender and judge, so a limit is checked against its own model's peak).
        self.in_flight_by_model: dict[str, int] = collections.Counter()
        self.max_in_flight_by_model: dict[str, int] = collections.Counter()
        #: When set, a model call whose request headers it accepts is held before it is answered, for as
        #: long as it keeps accepting them; one still held when the server stops is answered with a 503
        #: and never reaches the responder (`calls`). Tests use it to freeze one client's calls at the
        #: provider, as a real one is mid-answer when its client dies.
        self.hold_when: Callable[[Mapping[str, str]], bool] | None = None

    # -- addresses ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("loopback server is not running")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    # -- internals used by the handler and the provider endpoints ----------------------
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
        return self.dialects[protocol].key_ok(self.api_key, headers)

    def model_call(self, protocol: Protocol, model: str, body: Mapping[str, Any],
                   headers: Mapping[str, str], *, in_batch: bool = False) -> Reply:
        """Answer one model call: auth, model check, faults, responder, rendering."""
        if in_batch:
            return self._answer(protocol, model, body, headers, in_batch=True)
        with self._lock:
            self.in_flight_by_model[model] += 1
            self.max_in_flight_by_model[model] = max(self.max_in_flight_by_model[model],
                                                     self.in_flight_by_model[model])
        try:
            self.sleep(self.latency_s)
            while self.hold_when is not None and self.hold_when(headers):
                if self._stopping.wait(0.005):
                    return self.dialects[protocol].error(Fault("overloaded"))
            return self._answer(protocol, model, body, headers, in_batch=False)
        finally:
            with self._lock:
                self.in_flight_by_model[model] -= 1

    def _answer(self, protocol: Protocol, model: str, body: Mapping[str, Any],
                headers: Mapping[str, str], *, in_batch: bool) -> Reply:
        dialect = self.dialects[protocol]
        if not self._key_ok(protocol, headers):
            return dialect.error(Fault("auth"))
        if self.models is not None and model not in self.models:
            return dialect.error(Fault("not_found"))
        rejected = dialect.precheck(body, headers)
        if rejected is not None:
            return rejected
        fault = self._next_fault()
        if fault is not None and in_batch and fault.kind in TRANSPORT_FAULTS:
            fault = Fault("server")  # a batch line cannot drop a connection
        if fault is not None and fault.kind in ERROR_FAULTS:
            return dialect.error(fault)
        call = dialect.parse(model, body)
        with self._lock:
            self._calls.append(call)
        if fault is not None and fault.kind in REFUSAL_FAULTS:
            return Reply(200, dialect.refusal(call, fault.kind, self._next_id()))
        answer = normalise_answer(self.routes.get(call.model, self.responder)(call))
        return Reply(200, dialect.render(call, answer, self._next_id()), transport=fault)

    # -- stored batches ----------------------------------------------------------------
    def _store_batch(self, batch: dict[str, Any]) -> None:
        with self._lock:
            self._batches[batch["id"]] = batch

    def _polled(self, batch: dict[str, Any], poll: bool) -> bool:
        """Count a status poll; True once the batch has been polled past ``batch_polls``."""
        if poll:
            batch["polls"] += 1
        return poll and batch["polls"] > self.batch_polls
