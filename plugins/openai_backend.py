"""The `openai` backend: OpenAI's Chat Completions API, and any server that speaks it.

Point `base_url` at vLLM (`http://localhost:8000/v1`), Ollama
(`http://localhost:11434/v1`) or `transformers serve` to evaluate a local model
with the same code path. See docs/providers/openai.md.

Why it is written this way:

* The official *async* SDK client is created lazily (first call) so that a
  suite that never calls this backend needs neither the SDK nor a key.
* SDK retries are off (`max_retries=0`): the engine retries with backoff and
  records every failed attempt; SDK-internal retries would hide them.
* Every failure becomes a `TransientError` (worth retrying) or a
  `PermanentError` with a `kind` the store and report can count. Messages never
  contain the API key.
* Built-in plugins import only public modules (`brie_bench.api`, and
  `brie_bench.http_helpers` and `brie_bench.batch_poll` here), so this file is
  also an example of a complete third-party backend.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal
from collections.abc import Mapping, Sequence

from pydantic import Field

from brie_bench.api import (
    BackendContext,
    BackendOptions,
    CallError,
    ChoiceLogprobs,
    GenerationRequest,
    GenerationResult,
    Limits,
    Message,
    PermanentError,
    RemoteBackend,
    RemoteOptions,
    TransientError,
    Usage,
    hookimpl,
)
from brie_bench.batch_poll import BatchPoll
from brie_bench.http_helpers import json_object, redact, status_error, transport_error_kind

#: Error codes OpenAI (and Azure OpenAI) use for prompts its content policy rejects.
_POLICY_CODES = {"content_filter", "content_policy_violation", "moderation_blocked"}


class OpenAIOptions(RemoteOptions):
    """Options for the `openai` backend. The key comes from the environment, never from here."""

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM) or "
                    "http://localhost:11434/v1 (Ollama); default https://api.openai.com/v1")
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="request field for the token limit; OpenAI reasoning models need max_completion_tokens")
    omit_params: list[Literal["temperature", "top_p", "seed"]] = Field(
        default_factory=list,
        description="sampling parameters not to send (reasoning models reject temperature and top_p)")
    strict_schema: bool = Field(
        default=False,
        description="send structured-output schemas with strict=true (the schema must then list "
                    "every property as required and set additionalProperties: false)")
    require_key: bool = Field(
        default=True,
        description="set false for local servers (vLLM, Ollama) that need no API key")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="extra JSON fields sent with every request (e.g. top_k for vLLM)")


class OpenAIBackend(RemoteBackend):
    """Chat Completions over the official async `openai` SDK."""

    name = "openai"
    description = "OpenAI Chat Completions, or any OpenAI-compatible server via base_url (vLLM, Ollama)"
    Options = OpenAIOptions
    default_limits = Limits(max_concurrency=8, timeout_s=180.0)
    default_key_envs = ("OPENAI_API_KEY",)
    key_hosts = ("api.openai.com",)
    default_endpoint = "https://api.openai.com/v1"
    supports_choice_logprobs = True

    options: OpenAIOptions

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        super().__init__(model, options, context)
        #: Requests of batches submitted by this instance (a resumed run polls without them).
        self._batch_requests: dict[str, dict[str, GenerationRequest]] = {}

    def make_client(self) -> Any:
        import openai  # lazy: a missing SDK must not break other plugins

        return openai.AsyncOpenAI(
            api_key=self.api_key() or "EMPTY",  # local servers accept any key
            base_url=self.options.base_url,
            timeout=self.options.timeout_s,
            max_retries=0,  # the engine retries and records every attempt
            # The SDK's own client, but refusing a response that inflates past max_response_mb.
            http_client=openai.DefaultAsyncHttpxClient(timeout=self.options.timeout_s,
                                                       event_hooks=self.response_hooks),
        )

    def warm_client(self, client: Any) -> None:
        """Two more things than the SDK's modules the first answer would otherwise pay for inside the
        loop, while every concurrent call waits (about 30 ms): the async I/O backend the HTTP
        connection pool loads on its first request, and the models an answer is read into (the SDK
        builds their schemas on first use). No connection is made here.
        """
        client.chat.completions  # noqa: B018 - touching it imports the SDK's resource modules
        _warm_answer_types()

    # -- requests ----------------------------------------------------------------------
    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The Chat Completions request body (without extra_body) for one request."""
        p = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in request.messages],
            self.options.max_tokens_param: p.max_tokens,
        }
        sampling = {"temperature": p.temperature, "top_p": p.top_p, "seed": p.seed}
        for name, value in sampling.items():
            if name not in self.options.omit_params:
                body[name] = value
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": dict(request.response_schema),
                                "strict": self.options.strict_schema},
            }
        return body

    async def _create(self, body: dict[str, Any]) -> Any:
        client = self.client()
        extra = dict(self.options.extra_body) or None
        try:
            return await client.chat.completions.create(**body, extra_body=extra)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        response = await self._create(self._params(request))
        return self._result(response, request)

    def _result(self, response: Any, request: GenerationRequest | None, *,
                structured: bool | None = None) -> GenerationResult:
        """A GenerationResult from a ChatCompletion; refusals and empty answers raise.

        `structured` forces (or skips) parsing the text as a JSON object; by
        default it is parsed when the request asked for a schema.
        """
        choices = getattr(response, "choices", None)
        if not choices:
            raise TransientError(f"openai: answer without choices from model {self.model!r}",
                                 kind="malformed")
        choice = choices[0]
        message = getattr(choice, "message", None)
        refusal = getattr(message, "refusal", None)
        if choice.finish_reason == "content_filter" or refusal:
            why = f": {refusal[:200]}" if refusal else " (finish_reason content_filter)"
            raise PermanentError(f"openai: model {self.model!r} refused{why}", kind="refusal")
        text = getattr(message, "content", None) or ""
        if structured is None:
            structured = request is not None and request.response_schema is not None
        usage = getattr(response, "usage", None)
        return GenerationResult(
            text=text,
            usage=Usage(input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                        output_tokens=getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=choice.finish_reason,
            structured=json_object(text) if structured else None,
            model=getattr(response, "model", None),
        )

    # -- logprobs ----------------------------------------------------------------------
    async def choice_logprobs(self, messages: Sequence[Message], choices: Sequence[str],
                              assistant_prefix: str = "") -> dict[str, float | None]:
        """Log-probability of each choice as the first answer token.

        Chat Completions cannot prefill the assistant turn, so the prompt gets
        one more user message asking for exactly one of the choices (and, when
        given, the text that follows `assistant_prefix`). One token is
        generated with `top_logprobs=20`; a choice missing from that list maps
        to None. Tokens that differ only by surrounding whitespace (" A", "A")
        count as the same choice and their probabilities are added.
        """
        listed = ", ".join(choices)
        instruction = f"Answer with exactly one of: {listed}. Reply with that choice only, nothing else."
        if assistant_prefix:
            instruction += f" Your reply is the text that comes right after: {assistant_prefix!r}"
        prompt = [m.to_dict() for m in messages] + [{"role": "user", "content": instruction}]
        body: dict[str, Any] = {"model": self.model, "messages": prompt, self.options.max_tokens_param: 1,
                                "logprobs": True, "top_logprobs": 20}
        response = await self._create(body)
        choices_out = getattr(response, "choices", None)
        if not choices_out:
            raise TransientError("openai: logprob answer without choices", kind="malformed")
        logprobs = getattr(choices_out[0], "logprobs", None)
        content = getattr(logprobs, "content", None)
        if not content:
            raise PermanentError(f"openai: server returned no logprobs for model {self.model!r}",
                                 kind="unsupported")
        seen: dict[str, float] = {}
        for alt in content[0].top_logprobs or []:
            token = alt.token.strip()
            seen[token] = _logaddexp(seen[token], alt.logprob) if token in seen else alt.logprob
        usage = getattr(response, "usage", None)
        return ChoiceLogprobs({c: seen.get(c.strip()) for c in choices}, usage=Usage(
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0))

    # -- batch -------------------------------------------------------------------------
    async def submit_batch(self, items: list[tuple[str, GenerationRequest]]) -> str:
        """Upload the requests as a JSONL file and start an OpenAI Batch; returns the batch id.

        Batch jobs cost half as much and finish within 24 hours; the engine
        polls `poll_batch` until `done`.
        """
        if not items:
            raise ValueError("submit_batch needs at least one request")
        lines = []
        for custom_id, request in items:
            body = {**self._params(request), **self.options.extra_body}
            lines.append(json.dumps({"custom_id": custom_id, "method": "POST",
                                     "url": "/v1/chat/completions", "body": body}))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        client = self.client()
        try:
            uploaded = await client.files.create(file=("brie_bench_batch.jsonl", data, "application/jsonl"),
                                                 purpose="batch")
            batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                completion_window="24h")
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
        try:
            batch = await client.batches.retrieve(batch_id)
            counts = batch.request_counts
            count_map = ({"total": counts.total, "completed": counts.completed, "failed": counts.failed}
                         if counts else {})
            if batch.status not in ("completed", "failed", "expired", "cancelled"):
                return BatchPoll(done=False, counts=count_map, status=batch.status)
            results: dict[str, GenerationResult | CallError] = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    content = await client.files.content(file_id)
                    for line in content.text.splitlines():
                        if line.strip():
                            custom_id, outcome = self._batch_line(batch_id, json.loads(line))
                            results[custom_id] = outcome
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if batch.status == "failed" and batch.errors and batch.errors.data:
            detail = "; ".join(str(e.message) for e in batch.errors.data[:3])
            for custom_id in self._batch_requests.get(batch_id, {}):
                results.setdefault(custom_id, PermanentError(self.error_text(f"openai batch failed: {detail}"),
                                                             kind="bad_request"))
        for custom_id in self._batch_requests.get(batch_id, {}):
            results.setdefault(custom_id, TransientError(
                f"openai batch {batch_id} ended ({batch.status}) without this request", kind="batch_expired"))
        return BatchPoll(done=True, results=results, counts=count_map, status=batch.status)

    def _batch_line(self, batch_id: str, line: Mapping[str, Any]) -> tuple[str, GenerationResult | CallError]:
        """One output/error file line -> (custom id, result or error)."""
        import openai.types.chat as chat_types

        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        status = int(response.get("status_code") or 0)
        body = response.get("body") or {}
        if line.get("error") and not status:
            err = line["error"]
            return custom_id, PermanentError(self.error_text(f"openai batch item: {err.get('message', err)}"),
                                             kind="bad_request")
        if status != 200:
            err = body.get("error") if isinstance(body, Mapping) else None
            err = err if isinstance(err, Mapping) else {}
            return custom_id, self._status_error(status, str(err.get("message", body)), None,
                                                 err.get("code"))
        request = self._batch_requests.get(batch_id, {}).get(custom_id)
        try:
            completion = chat_types.ChatCompletion.construct(**body)
            # After a restart the request is unknown: then any JSON-object answer counts as structured.
            return custom_id, self._result(completion, request, structured=None if request else True)
        except CallError as exc:
            return custom_id, exc

    # -- errors ------------------------------------------------------------------------
    def _map_error(self, exc: BaseException) -> CallError | None:
        """The CallError for an SDK or transport exception; None when it is not a call failure."""
        import openai

        below = self.transport_error(exc, openai)  # refused, too large, timeout, connection, schema
        if below is not None:
            return below
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, Mapping) else {}
            err = body.get("error", body) if isinstance(body, Mapping) else {}
            code = err.get("code") if isinstance(err, Mapping) else None
            message = err.get("message") if isinstance(err, Mapping) else None
            return self._status_error(exc.status_code, str(message or exc.message), exc.response.headers, code)
        kind = transport_error_kind(exc)
        if kind is not None:
            return TransientError(self.error_text(f"openai: {kind}: {type(exc).__name__}: {exc}", 300), kind=kind)
        return None

    def _status_error(self, status: int, detail: str, headers: Mapping[str, str] | None,
                      code: Any = None) -> CallError:
        """The shared status table (`status_error`), plus what OpenAI's error codes add."""
        msg = self.error_text(f"openai HTTP {status} for model {self.model!r}: {detail}")
        overrides = {429: ("quota", False)} if code == "insufficient_quota" else None  # out of credit: no waiting
        fallback = ("refusal", False) if code in _POLICY_CODES else ("bad_request", False)
        return status_error(msg, status, headers=headers, overrides=overrides, fallback=fallback)

    def _redact(self, text: str) -> str:
        return redact(text, self.api_key())


# -- small helpers --

#: An answer of the shape every Chat Completion has: reading it once builds what reading one needs.
_SAMPLE_COMPLETION: dict[str, Any] = {
    "id": "warm-up", "object": "chat.completion", "created": 0, "model": "warm-up",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "", "refusal": None}}],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
}


def _warm_answer_types() -> None:
    """Load, outside the event loop, what the first answer would load inside it (see `prepare`).

    Only a warm-up: should any of it be missing in another SDK version, the first call
    loads it as before.
    """
    try:
        import anyio._backends._asyncio  # noqa: F401 - the pool's first request imports it otherwise
    except ImportError:
        pass
    try:
        from openai.types.chat import ChatCompletion

        ChatCompletion.construct(**_SAMPLE_COMPLETION)
    except Exception:  # noqa: BLE001 - a warm-up must never stop a run
        pass


def _logaddexp(a: float, b: float) -> float:
    hi = max(a, b)
    return hi + math.log(math.exp(a - hi) + math.exp(b - hi))


@hookimpl
def register_backends(register: Any) -> None:
    register(OpenAIBackend)
