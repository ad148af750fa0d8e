"""The OpenAI side of the loopback: chat completions, the model list, files and batches.

Why it exists: `plugins/openai_backend.py` (named alike so one finds the other) talks to
this through the official ``openai`` SDK, and so does a vLLM-served contender. This module
knows only the OpenAI-compatible wire format: how a chat-completions body reads, how an
answer, a refusal and an error look (with ``logprobs``/``top_logprobs`` and vLLM's LoRA
``parent`` in ``GET /v1/models``), and the batch flow (``POST /v1/files``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content``).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from brie_bench.testing.loopback.base import (ERROR_ANSWERS, Answer, Call, Dialect, Fault, LoopbackState, Reply,
                                              answer_text, cut, retry_after_headers, text_of, tokens,
                                              usage_counts)


def key_ok(api_key: str, headers: Mapping[str, str]) -> bool:
    """The SDK sends the key as a bearer token."""
    return headers.get("authorization") == f"Bearer {api_key}"


def error_reply(fault: Fault) -> Reply:
    """An error answer shaped like OpenAI's own."""
    status, code, msg = ERROR_ANSWERS[fault.kind]["openai"]
    payload: dict[str, Any] = {"error": {"message": msg, "type": code, "param": None, "code": code}}
    return Reply(status, payload, retry_after_headers(fault))


def parse_call(model: str, body: Mapping[str, Any]) -> Call:
    """A chat-completions body as a Call (system and developer messages make the system prompt)."""
    system_parts: list[str] = []
    messages: list[tuple[str, str]] = []
    schema: Mapping[str, Any] | None = None
    for m in body.get("messages", []):
        role = m.get("role")
        if role in ("system", "developer"):
            system_parts.append(text_of(m.get("content")))
        else:
            messages.append((role, text_of(m.get("content"))))
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
    return Call("openai", model, "\n\n".join(system_parts) or None, tuple(messages), schema, body)


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def render(call: Call, answer: Answer, n: int) -> dict[str, Any]:
    """A chat completion, cut at ``max_completion_tokens``/``max_tokens``, with logprobs when asked."""
    body = call.body
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text, was_cut = cut(answer_text(answer), limit)
    inp, out = usage_counts(call, answer, text)
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
                     "logprobs": logprobs, "finish_reason": "length" if was_cut else "stop"}],
        "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
    }


def render_refusal(call: Call, kind: str, n: int) -> dict[str, Any]:
    """A ``refusal`` message, or an empty answer with ``finish_reason: content_filter``."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish = "content_filter"
    if kind == "refusal":
        message["refusal"] = "I'm sorry, I can't help with that."
        finish = "stop"
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": call.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}}


DIALECT = Dialect(key_ok=key_ok, error=error_reply, parse=parse_call, render=render, refusal=render_refusal)


def _no_such(what: str, **extra: Any) -> Reply:
    return Reply(404, {"error": {"message": f"No such {what}", "type": "invalid_request_error", **extra}})


class OpenAIEndpoints(LoopbackState):
    """The OpenAI endpoints other than chat completions (which take the shared `model_call` path)."""

    def openai_models(self, headers: Mapping[str, str]) -> Reply:
        """GET /v1/models: every served name; a LoRA module names its base as ``parent`` (vLLM's shape)."""
        if not self._key_ok("openai", headers):
            return error_reply(Fault("auth"))
        names = sorted(self.models if self.models is not None else set(self.routes))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "loopback",
                 "root": name, "parent": self.lora_modules.get(name)} for name in names]
        return Reply(200, {"object": "list", "data": data})

    def openai_upload(self, raw: bytes, headers: Mapping[str, str]) -> Reply:
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
        file_id = f"file-{self._next_id()}"
        with self._lock:
            self._files[file_id] = data
        purpose = (fields.get("purpose") or b"batch").decode()
        return Reply(200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose, "status": "processed"})

    def openai_file_content(self, file_id: str) -> Reply:
        """GET /v1/files/{id}/content: the stored bytes."""
        data = self._files.get(file_id)
        if data is None:
            return _no_such("file")
        return Reply(200, data, {"content-type": "application/octet-stream"})

    def openai_batch_create(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        """POST /v1/batches: answer every line of the input file now; polls reveal it later."""
        data = self._files.get(body.get("input_file_id", ""))
        if data is None:
            return _no_such("file", code="not_found", param=None)
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
        self._store_batch(batch)
        return Reply(200, self._openai_batch_view(batch, poll=False))

    def _openai_batch_view(self, batch: dict[str, Any], *, poll: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in batch.items() if k not in ("final", "polls")}
        done = self._polled(batch, poll)
        total = batch["final"]["request_counts"]["total"]
        if done:
            view.update(batch["final"], status="completed", completed_at=int(time.time()))
        else:
            view.update(status="in_progress" if poll else "validating", output_file_id=None,
                        error_file_id=None,
                        request_counts={"total": total, "completed": 0, "failed": 0})
        return view

    def openai_batch_get(self, batch_id: str) -> Reply:
        """GET /v1/batches/{id}: in progress for ``batch_polls`` polls, then completed."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _no_such("batch", code="not_found", param=None)
            return Reply(200, self._openai_batch_view(batch))
