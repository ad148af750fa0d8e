"""The Anthropic side of the loopback: messages (text and forced ``tool_use``) and message batches.

Why it exists: `plugins/anthropic_backend.py` (named alike so one finds the other) talks
to this through the official ``anthropic`` SDK. This module knows only Anthropic's wire
format: how a ``POST /v1/messages`` body reads, how an answer, a refusal and an error look
(529 ``overloaded_error`` included), that API version 2026-10-21 refuses sampling
parameters, and the batch flow (``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from brie_bench.testing.loopback.base import (ERROR_ANSWERS, Answer, Call, Dialect, Fault, LoopbackState, Reply,
                                              answer_text, cut, retry_after_headers, text_of, usage_counts)


def key_ok(api_key: str, headers: Mapping[str, str]) -> bool:
    """Older SDKs send x-api-key, newer ones a bearer token."""
    return headers.get("x-api-key") == api_key or headers.get("authorization") == f"Bearer {api_key}"


def error_reply(fault: Fault) -> Reply:
    """An error answer shaped like Anthropic's own."""
    status, etype, msg = ERROR_ANSWERS[fault.kind]["anthropic"]
    payload: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": msg}}
    return Reply(status, payload, retry_after_headers(fault))


def precheck(body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply | None:
    """API 2026-10-21 removed sampling parameters, even at their defaults: a 400 for any of them."""
    if headers.get("anthropic-version", "") >= "2026-10-21":
        removed = [k for k in ("temperature", "top_p", "top_k") if k in body]
        if removed:
            return Reply(400, {"type": "error", "error": {
                "type": "invalid_request_error", "message": f"{removed[0]}: Extra inputs are not permitted"}})
    return None


def parse_call(model: str, body: Mapping[str, Any]) -> Call:
    """A messages body as a Call; a forced tool's input schema is the schema asked for."""
    system_parts: list[str] = []
    messages: list[tuple[str, str]] = []
    schema: Mapping[str, Any] | None = None
    system = body.get("system")
    if system:
        system_parts.append(text_of(system))
    for m in body.get("messages", []):
        messages.append((m.get("role"), text_of(m.get("content"))))
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        for tool in body.get("tools", []):
            if tool.get("name") == choice.get("name"):
                schema = tool.get("input_schema") or {}
    return Call("anthropic", model, "\n\n".join(system_parts) or None, tuple(messages), schema, body)


def render(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    """A message: a ``tool_use`` block when a tool was forced and the answer is an object, else text."""
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
        inp, out = usage_counts(call, answer, json.dumps(structured))
        stop = "tool_use"
    else:
        text, was_cut = cut(answer_text(answer), call.body.get("max_tokens"))
        content = [{"type": "text", "text": text}]
        inp, out = usage_counts(call, answer, text)
        stop = "max_tokens" if was_cut else "end_turn"
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": call.model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": out}}


def render_refusal(call: Call, kind: str, n: int) -> dict[str, Any]:
    """An empty message with ``stop_reason: refusal`` (for both refusal kinds)."""
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": call.model,
            "content": [], "stop_reason": "refusal", "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 0}}


DIALECT = Dialect(key_ok=key_ok, error=error_reply, parse=parse_call, render=render, refusal=render_refusal,
                  precheck=precheck)


class AnthropicEndpoints(LoopbackState):
    """The message-batch endpoints (messages themselves take the shared `model_call` path)."""

    def anthropic_batch_create(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        """POST /v1/messages/batches: answer every request now; polls reveal it later."""
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
        self._store_batch(batch)
        return Reply(200, self._anthropic_batch_view(batch, poll=False))

    def _anthropic_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in batch.items() if k not in ("polls", "counts", "results")}
        if self._polled(batch, poll):
            view.update(processing_status="ended", request_counts=batch["counts"], ended_at=view["created_at"],
                        results_url=f"{self.base}/v1/messages/batches/{batch['id']}/results")
        else:
            total = sum(batch["counts"].values())
            view.update(processing_status="in_progress", ended_at=None, results_url=None,
                        request_counts={"processing": total, "succeeded": 0, "errored": 0,
                                        "canceled": 0, "expired": 0})
        return view

    def anthropic_batch_get(self, batch_id: str, *, results: bool) -> Reply:
        """GET /v1/messages/batches/{id}[/results]: the batch, or its results as JSON lines."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return Reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                              "message": "batch not found"}})
            if results:
                return Reply(200, batch["results"], {"content-type": "application/binary"})
            return Reply(200, self._anthropic_batch_view(batch))
