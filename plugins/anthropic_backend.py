"""The `anthropic` backend: Claude models through Anthropic's Messages API.

Why it is written this way:

* System messages go to the top-level `system` field (the Messages API has no
  system role); a trailing assistant message is sent as-is, which Claude
  continues (prefill).
* Structured answers use a *forced tool*: one tool whose `input_schema` is the
  requested schema and `tool_choice` naming it, so the answer arrives as a
  parsed object (`GenerationResult.structured`), not as text to re-parse.
* No sampling parameters by default: API version 2026-10-21 (what the 2.x
  SDKs send) rejects `temperature`, `top_p` and `top_k`, even at their
  defaults, and the SDK no longer has arguments for them. With
  `api_version: "2023-06-01"` and `send_params: [temperature]` they are sent
  as extra body fields, for models that still take them. The sampling
  parameters stay part of the unit key either way, so nothing is conflated.
* SDK retries are off (`max_retries=0`); the engine retries and records each
  attempt. 529 "overloaded" is a transient server error.
* The SDK is imported lazily and the async client created on first use.
See docs/providers/anthropic.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from collections.abc import Mapping

from pydantic import Field

from brie_bench.api import (
    BackendContext,
    BackendOptions,
    CallError,
    GenerationRequest,
    GenerationResult,
    Limits,
    PermanentError,
    RemoteBackend,
    RemoteOptions,
    TransientError,
    Usage,
    hookimpl,
)
from brie_bench.batch_poll import BatchPoll
from brie_bench.http_helpers import redact, status_error, transport_error_kind

#: What Anthropic's statuses mean beyond the shared table: 402 is billing, where waiting does not help.
_STATUS_OVERRIDES = {402: ("quota", False)}

#: Request fields that AsyncMessages.create takes as arguments; the rest goes in extra_body.
_SDK_ARGS = frozenset({"model", "max_tokens", "messages", "system", "tools", "tool_choice"})
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Anthropic error types that retrying can fix (inside batch results and error bodies).
_TRANSIENT_TYPES = {"overloaded_error": "server", "api_error": "server", "rate_limit_error": "rate_limit",
                    "timeout_error": "timeout"}


class AnthropicOptions(RemoteOptions):
    """Options for the `anthropic` backend. The key comes from the environment, never from here."""

    base_url: str | None = Field(default=None, description="API endpoint; default https://api.anthropic.com")
    api_version: str | None = Field(
        default=None,
        description="anthropic-version header; default: the SDK's (2026-10-21 for SDK 2.x). "
                    "Set 2023-06-01 to send sampling parameters")
    send_params: list[Literal["temperature", "top_p"]] = Field(
        default_factory=list,
        description="sampling parameters to send; API 2026-10-21 rejects them all, so use only "
                    "with api_version 2023-06-01 (and not both with recent models)")
    tool_description: str = Field(
        default="Record your answer in this structured form.",
        description="description of the forced tool used for structured answers")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="extra JSON fields sent with every request (e.g. top_k)")


class AnthropicBackend(RemoteBackend):
    """Claude over the official async `anthropic` SDK."""

    name = "anthropic"
    description = "Anthropic Messages API (Claude); structured answers through a forced tool"
    Options = AnthropicOptions
    default_limits = Limits(max_concurrency=8, timeout_s=180.0)
    default_key_envs = ("ANTHROPIC_API_KEY",)
    key_hosts = ("api.anthropic.com",)
    default_endpoint = "https://api.anthropic.com"

    options: AnthropicOptions

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        super().__init__(model, options, context)
        #: Requests of batches submitted by this instance (a resumed run polls without them).
        self._batch_requests: dict[str, dict[str, GenerationRequest]] = {}

    def make_client(self) -> Any:
        import anthropic  # lazy: a missing SDK must not break other plugins

        return anthropic.AsyncAnthropic(
            # Never None: the SDK would then read ANTHROPIC_API_KEY itself, whatever base_url is.
            api_key=self.api_key() or "none",
            base_url=self.options.base_url,
            timeout=self.options.timeout_s,
            max_retries=0,  # the engine retries and records every attempt
            # The SDK's own client, but refusing a response that inflates past max_response_mb.
            http_client=anthropic.DefaultAsyncHttpxClient(timeout=self.options.timeout_s,
                                                          event_hooks=self.response_hooks),
            default_headers={"anthropic-version": self.options.api_version} if self.options.api_version else None,
        )

    def warm_client(self, client: Any) -> None:
        client.messages  # noqa: B018 - touching it imports the SDK's resource modules

    # -- requests ----------------------------------------------------------------------
    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The Messages API request body for one request (extra_body included)."""
        p = request.params
        if "temperature" in self.options.send_params and not 0.0 <= p.temperature <= 1.0:
            raise PermanentError(f"anthropic accepts temperature 0..1, got {p.temperature:g} "
                                 f"(model {self.model!r})", kind="bad_request")
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": p.max_tokens,
            "messages": [m.to_dict() for m in request.messages if m.role != "system"],
        }
        if system:
            body["system"] = system
        if "temperature" in self.options.send_params:
            body["temperature"] = p.temperature
        if "top_p" in self.options.send_params:
            body["top_p"] = p.top_p
        if request.response_schema is not None:
            body["tools"] = [{"name": request.schema_name, "description": self.options.tool_description,
                              "input_schema": dict(request.response_schema)}]
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
        body.update(self.options.extra_body)
        return body

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        body = self._params(request)
        # Fields the SDK has no argument for (sampling parameters, extra_body) travel as extra_body.
        known = {k: v for k, v in body.items() if k in _SDK_ARGS}
        extra = {k: v for k, v in body.items() if k not in _SDK_ARGS} or None
        client = self.client()
        try:
            response = await client.messages.create(**known, extra_body=extra)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self._result(response, request.schema_name if request.response_schema is not None else None)

    def _result(self, response: Any, tool_name: str | None) -> GenerationResult:
        """A GenerationResult from a Message; `tool_name` is the forced tool, if any."""
        content = getattr(response, "content", None)
        stop = getattr(response, "stop_reason", None)
        if stop == "refusal":
            raise PermanentError(f"anthropic: model {self.model!r} refused (stop_reason refusal)",
                                 kind="refusal")
        if not isinstance(content, list):
            raise TransientError(f"anthropic: answer without content from model {self.model!r}",
                                 kind="malformed")
        texts = [b.text for b in content if getattr(b, "type", None) == "text"]
        structured = None
        if tool_name is not None:
            for block in content:
                if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == tool_name:
                    structured = dict(block.input) if isinstance(block.input, Mapping) else None
                    break
        text = json.dumps(structured, ensure_ascii=False) if structured is not None else "".join(texts)
        usage = getattr(response, "usage", None)
        input_tokens = sum(getattr(usage, f, 0) or 0 for f in
                           ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        return GenerationResult(
            text=text,
            usage=Usage(input_tokens=input_tokens, output_tokens=getattr(usage, "output_tokens", 0) or 0),
            finish_reason=stop,
            structured=structured,
            model=getattr(response, "model", None),
        )

    # -- batch -------------------------------------------------------------------------
    async def submit_batch(self, items: list[tuple[str, GenerationRequest]]) -> str:
        """Start an Anthropic Message Batch; returns its id. Custom ids: 1-64 of [A-Za-z0-9_-]."""
        if not items:
            raise ValueError("submit_batch needs at least one request")
        requests = []
        for custom_id, request in items:
            if not _CUSTOM_ID.match(custom_id):
                raise ValueError(f"anthropic batch custom_id must match {_CUSTOM_ID.pattern}: {custom_id!r}")
            requests.append({"custom_id": custom_id,
                             "params": self._params(request)})
        client = self.client()
        try:
            batch = await client.messages.batches.create(requests=requests)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        self._batch_requests[batch.id] = dict(items)
        return str(batch.id)

    async def poll_batch(self, batch_id: str) -> BatchPoll:
        """The batch's state; when it has ended, every item's result or error."""
        client = self.client()
        results: dict[str, GenerationResult | CallError] = {}
        try:
            batch = await client.messages.batches.retrieve(batch_id)
            rc = batch.request_counts
            counts = {k: int(getattr(rc, k, 0) or 0)
                      for k in ("processing", "succeeded", "errored", "canceled", "expired")}
            if batch.processing_status != "ended":
                return BatchPoll(done=False, counts=counts, status=batch.processing_status)
            async for entry in await client.messages.batches.results(batch_id):
                results[entry.custom_id] = self._batch_entry(batch_id, entry)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        for custom_id in self._batch_requests.get(batch_id, {}):
            results.setdefault(custom_id, TransientError(
                f"anthropic batch {batch_id} ended without this request", kind="batch_expired"))
        return BatchPoll(done=True, results=results, counts=counts, status=batch.processing_status)

    def _batch_entry(self, batch_id: str, entry: Any) -> GenerationResult | CallError:
        result = entry.result
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            request = self._batch_requests.get(batch_id, {}).get(entry.custom_id)
            tool_name = None
            if request is None or request.response_schema is not None:
                tool_name = request.schema_name if request is not None else _forced_tool(result.message)
            try:
                return self._result(result.message, tool_name)
            except CallError as exc:
                return exc
        if kind == "errored":
            err = getattr(getattr(result, "error", None), "error", None)
            etype = getattr(err, "type", "api_error")
            message = self.error_text(f"anthropic batch item {etype}: {getattr(err, 'message', '')}")
            if etype in _TRANSIENT_TYPES:
                return TransientError(message, kind=_TRANSIENT_TYPES[etype])
            return PermanentError(message, kind={"authentication_error": "auth", "permission_error": "auth",
                                                 "not_found_error": "model"}.get(etype, "bad_request"))
        return TransientError(f"anthropic batch item {kind}", kind="batch_expired")

    # -- errors ------------------------------------------------------------------------
    def _map_error(self, exc: BaseException) -> CallError | None:
        """The CallError for an SDK or transport exception; None when it is not a call failure."""
        import anthropic

        below = self.transport_error(exc, anthropic)  # refused, too large, timeout, connection, schema
        if below is not None:
            return below
        if isinstance(exc, anthropic.APIStatusError):
            body = exc.body if isinstance(exc.body, Mapping) else {}
            err = body.get("error", {}) if isinstance(body, Mapping) else {}
            etype = err.get("type") if isinstance(err, Mapping) else None
            message = err.get("message") if isinstance(err, Mapping) else None
            return self._status_error(exc.status_code, str(message or exc.message), exc.response.headers, etype)
        kind = transport_error_kind(exc)
        if kind is not None:
            return TransientError(self.error_text(f"anthropic: {kind}: {type(exc).__name__}: {exc}", 300),
                                  kind=kind)
        return None

    def _status_error(self, status: int, detail: str, headers: Mapping[str, str] | None,
                      etype: str | None = None) -> CallError:
        """The shared status table (`status_error`), plus billing (402) and `overloaded_error` (529)."""
        msg = self.error_text(f"anthropic HTTP {status} for model {self.model!r}: {detail}")
        fallback = ("server", True) if etype == "overloaded_error" else ("bad_request", False)
        return status_error(msg, status, headers=headers, overrides=_STATUS_OVERRIDES, fallback=fallback)

    def _redact(self, text: str) -> str:
        return redact(text, self.api_key())


# -- small helpers --

def _forced_tool(message: Any) -> str | None:
    """The name of the first tool_use block (for batch results whose request is unknown)."""
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use":
            return getattr(block, "name", None)
    return None


@hookimpl
def register_backends(register: Any) -> None:
    register(AnthropicBackend)
