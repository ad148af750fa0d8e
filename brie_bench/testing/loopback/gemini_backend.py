"""The Gemini side of the loopback: ``generateContent`` and inline batches as long-running operations.

Why it exists: `plugins/gemini_backend.py` (named alike so one finds the other) talks to
this through the official ``google-genai`` SDK. This module knows only Gemini's wire
format: the request paths, how a ``GenerateContentRequest`` reads, how an answer, a
safety block and an error look (a bad key is a 400 ``API_KEY_INVALID``; a rate limit
carries ``RetryInfo.retryDelay``), and the batch flow
(``POST models/{model}:batchGenerateContent`` with inline requests, then
``GET batches/{id}``, whose answers come back in ``metadata.output.inlinedResponses``
with each request's ``metadata``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from brie_bench.testing.loopback.base import (ERROR_ANSWERS, Answer, Call, Dialect, Fault, LoopbackState, Reply,
                                              answer_text, cut, usage_counts)

GENERATE_PATH = re.compile(r"^/v1(?:beta|alpha)?\d*/models/(?P<model>[^:]+):generateContent$")
BATCH_PATH = re.compile(r"^/v1(?:beta|alpha)?\d*/models/(?P<model>[^:]+):batchGenerateContent$")
BATCH_GET_PATH = re.compile(r"^/v1(?:beta|alpha)?\d*/(?P<name>batches/[^/:]+)$")

#: google.rpc.Code numbers of the status names in Gemini error bodies (batch items carry a
#: google.rpc.Status, whose `code` is the gRPC code, not the HTTP status).
_GRPC_CODE = {"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
              "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "INTERNAL": 13,
              "UNAVAILABLE": 14, "UNAUTHENTICATED": 16}
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def key_ok(api_key: str, headers: Mapping[str, str]) -> bool:
    """The SDK sends the key in x-goog-api-key."""
    return headers.get("x-goog-api-key") == api_key


def error_reply(fault: Fault) -> Reply:
    """An error answer shaped like Google's: ``ErrorInfo`` for a bad key, ``RetryInfo`` for a rate limit."""
    status, gstatus, msg = ERROR_ANSWERS[fault.kind]["gemini"]
    err: dict[str, Any] = {"code": status, "message": msg, "status": gstatus}
    if fault.kind == "auth":
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
    if fault.kind == "rate_limit" and fault.retry_after is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": f"{fault.retry_after:g}s"}]
    return Reply(status, {"error": err})


def parse_call(model: str, body: Mapping[str, Any]) -> Call:
    """A GenerateContentRequest as a Call (role ``model`` is the assistant)."""
    system_parts: list[str] = []
    messages: list[tuple[str, str]] = []
    si = body.get("systemInstruction") or body.get("system_instruction")
    if si:
        system_parts.append("".join(p.get("text", "") for p in si.get("parts", [])))
    for c in body.get("contents", []):
        role = "assistant" if c.get("role") == "model" else "user"
        messages.append((role, "".join(p.get("text", "") for p in c.get("parts", []))))
    cfg = body.get("generationConfig") or {}
    schema: Mapping[str, Any] | None = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
    return Call("gemini", model, "\n\n".join(system_parts) or None, tuple(messages), schema, body)


def render(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    """A GenerateContentResponse, cut at ``maxOutputTokens``."""
    limit = (call.body.get("generationConfig") or {}).get("maxOutputTokens")
    text, was_cut = cut(answer_text(answer), limit)
    inp, out = usage_counts(call, answer, text)
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "MAX_TOKENS" if was_cut else "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": inp, "candidatesTokenCount": out,
                              "totalTokenCount": inp + out},
            "modelVersion": call.model, "responseId": f"resp-{n}"}


def render_refusal(call: Call, kind: str, n: int) -> dict[str, Any]:
    """A blocked prompt (``content_filter``) or a candidate stopped for SAFETY (``refusal``)."""
    if kind == "content_filter":
        return {"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
    return {"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "index": 0,
                            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                               "probability": "HIGH", "blocked": True}]}],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}


DIALECT = Dialect(key_ok=key_ok, error=error_reply, parse=parse_call, render=render, refusal=render_refusal)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GeminiEndpoints(LoopbackState):
    """The batch endpoints (``generateContent`` itself takes the shared `model_call` path)."""

    def gemini_batch_create(self, model: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        """POST models/{model}:batchGenerateContent with inline requests: answer them all now.

        Each inline request is ``{"request": GenerateContentRequest, "metadata": {...}}``; its
        answer keeps the metadata, as the real API documents.
        """
        if not self._key_ok("gemini", headers):
            return error_reply(Fault("auth"))
        batch_in = body.get("batch") or {}
        items = ((batch_in.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(items, list) or not items:
            return Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
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
        batch = {"id": batch_id, "protocol": "gemini", "polls": 0, "model": f"models/{model}",
                 "displayName": batch_in.get("displayName", ""), "createTime": _now(),
                 "responses": responses, "ok": ok}
        self._store_batch(batch)
        return Reply(200, self._gemini_batch_view(batch, poll=False))

    def _gemini_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        """The batch as the long-running Operation the API returns."""
        done = self._polled(batch, poll)
        total = len(batch["responses"])
        meta: dict[str, Any] = {"@type": _BATCH_TYPE, "model": batch["model"],
                                "displayName": batch["displayName"], "createTime": batch["createTime"],
                                "updateTime": _now()}
        op: dict[str, Any] = {"name": batch["id"], "metadata": meta}
        if done:
            output = {"inlinedResponses": {"inlinedResponses": batch["responses"]}}
            meta.update(state="BATCH_STATE_SUCCEEDED", endTime=meta["updateTime"], output=output,
                        batchStats={"requestCount": str(total), "successfulRequestCount": str(batch["ok"]),
                                    "failedRequestCount": str(total - batch["ok"])})
            op.update(done=True, response={"@type": _OUTPUT_TYPE, **output})
        else:
            meta.update(state="BATCH_STATE_RUNNING" if poll else "BATCH_STATE_PENDING",
                        batchStats={"requestCount": str(total), "pendingRequestCount": str(total)})
        return op

    def is_gemini_batch(self, name: str) -> bool:
        """Whether ``batches/{id}`` names a stored Gemini batch (OpenAI's ``/v1/batches/{id}`` looks alike)."""
        return name in self._batches and self._batches[name].get("protocol") == "gemini"

    def gemini_batch_get(self, batch_id: str, headers: Mapping[str, str]) -> Reply:
        """GET batches/{id}: running for ``batch_polls`` polls, then done with the answers."""
        if not self._key_ok("gemini", headers):
            return error_reply(Fault("auth"))
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or batch.get("protocol") != "gemini":
                return Reply(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                             "message": f"Batch {batch_id} not found."}})
            return Reply(200, self._gemini_batch_view(batch))
