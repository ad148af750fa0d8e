"""The `gemini` backend: Google's Gemini models through the google-genai SDK.

Why it is written this way:

* System messages become `system_instruction`; assistant turns are sent with
  the role "model", as the API requires.
* Structured answers use JSON mode: `response_mime_type=application/json`
  plus the schema in `response_json_schema` (plain JSON Schema) or, with
  `schema_field: response_schema`, Google's OpenAPI-subset schema.
* google-genai does not retry unless given `retry_options`, and then ignores
  `retry-after`; the backend sets `attempts=1` explicitly (which also turns
  off an implicit retry on the aiohttp transport), and the engine retries.
  Gemini says how long to wait in a `RetryInfo.retryDelay` error detail, not
  a header; both are read.
* A bad key comes back as HTTP 400 `API_KEY_INVALID`, mapped to an auth error.
* Blocked prompts (`promptFeedback.blockReason`) and answers stopped for
  safety (`finishReason` SAFETY, PROHIBITED_CONTENT, ...) are refusals.
* Batch mode uses the SDK's own batch API with inline requests. Each request
  carries its custom id (and whether a JSON answer was asked for) in its
  `metadata`, which Gemini hands back with the response: results are matched by
  that alone, never by position (inline responses are not reliably in request
  order), so a resumed run can poll a batch it never submitted. A response
  without metadata is not guessed at.
See docs/providers/gemini.md.
"""

from __future__ import annotations

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
    InputError,
    Limits,
    PermanentError,
    RemoteBackend,
    RemoteOptions,
    TransientError,
    Usage,
    hookimpl,
)
from brie_bench.batch_poll import BatchPoll
from brie_bench.http_helpers import (
    json_object,
    redact,
    retry_after_seconds,
    status_error,
    transport_error_kind,
)

#: finishReason values that mean the content policy stopped the answer.
REFUSAL_FINISH_REASONS = frozenset({
    "SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "MODEL_ARMOR",
})


#: Batch job states (as google-genai names them) after which nothing more will happen.
BATCH_DONE_STATES = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
                               "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: Metadata keys of a batch request: the custom id, and "1" when a JSON object was asked for.
META_ID, META_STRUCTURED = "custom_id", "structured"
#: google.rpc.Code -> (HTTP status, status name): batch items report gRPC codes, not HTTP ones.
GRPC_CODES: dict[int, tuple[int, str]] = {
    1: (499, "CANCELLED"), 2: (500, "UNKNOWN"), 3: (400, "INVALID_ARGUMENT"), 4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"), 6: (409, "ALREADY_EXISTS"), 7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"), 9: (400, "FAILED_PRECONDITION"), 10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"), 12: (501, "UNIMPLEMENTED"), 13: (500, "INTERNAL"), 14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"), 16: (401, "UNAUTHENTICATED"),
}


class GeminiOptions(RemoteOptions):
    """Options for the `gemini` backend. The key comes from the environment, never from here."""

    base_url: str | None = Field(default=None,
                                 description="API endpoint; default https://generativelanguage.googleapis.com")
    api_version: str = Field(default="v1beta", description="API version path segment")
    omit_params: list[Literal["temperature", "top_p", "seed"]] = Field(
        default_factory=list, description="sampling parameters not to send")
    schema_field: Literal["response_json_schema", "response_schema"] = Field(
        default="response_json_schema",
        description="where structured-output schemas go: plain JSON Schema (default) or Google's "
                    "OpenAPI-subset response_schema")
    extra_config: dict[str, Any] = Field(
        default_factory=dict,
        description="extra GenerateContentConfig fields, e.g. thinking_config: {thinking_budget: 0} "
                    "or safety_settings")


class GeminiBackend(RemoteBackend):
    """Gemini over the official `google-genai` SDK's async client (`client.aio`)."""

    name = "gemini"
    description = "Google Gemini API (google-genai); structured answers through JSON mode"
    Options = GeminiOptions
    default_limits = Limits(max_concurrency=8, timeout_s=180.0)
    default_key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    key_hosts = ("generativelanguage.googleapis.com",)
    default_endpoint = "https://generativelanguage.googleapis.com"

    options: GeminiOptions

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        super().__init__(model, options, context)
        #: Custom ids of batches submitted by this instance (a resumed run polls without them).
        self._batch_ids: dict[str, list[str]] = {}

    def check_ready(self) -> None:
        """The key must be set, and `extra_config` must name real GenerateContentConfig fields."""
        super().check_ready()
        if self.options.extra_config:
            from google.genai import types

            try:
                types.GenerateContentConfig(**self.options.extra_config)
            except Exception as exc:  # pydantic's ValidationError, kept to one line
                first = str(exc).splitlines()[:3]
                raise InputError(f"{self.context.name}: invalid gemini extra_config: {' '.join(first)}",
                                 field="options.extra_config") from None

    def make_client(self) -> Any:
        from google import genai  # lazy: a missing SDK must not break other plugins
        from google.genai import types

        return genai.Client(
            # Never None: the SDK would then read GEMINI_API_KEY / GOOGLE_API_KEY itself.
            api_key=self.api_key() or "none",
            http_options=types.HttpOptions(
                base_url=self.options.base_url,
                api_version=self.options.api_version,
                timeout=int(self.options.timeout_s * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),  # the engine retries
                # Refuse a response that inflates past max_response_mb (httpx; not with aiohttp installed).
                async_client_args={"event_hooks": self.response_hooks},
            ),
        )

    def warm_client(self, client: Any) -> None:
        client.aio.models  # noqa: B018 - touching it imports the SDK's resource modules

    async def close_client(self, client: Any) -> None:
        await client.aio.aclose()

    # -- requests ----------------------------------------------------------------------
    def _request_parts(self, request: GenerationRequest) -> tuple[list[Any], Any]:
        """(contents, GenerateContentConfig) for one request."""
        from google.genai import types

        p = request.params
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [types.Content(role="model" if m.role == "assistant" else "user",
                                  parts=[types.Part(text=m.content)])
                    for m in request.messages if m.role != "system"]
        config: dict[str, Any] = {"max_output_tokens": p.max_tokens}
        sampling = {"temperature": p.temperature, "top_p": p.top_p, "seed": p.seed}
        config.update({k: v for k, v in sampling.items() if k not in self.options.omit_params})
        if system:
            config["system_instruction"] = system
        if request.response_schema is not None:
            config["response_mime_type"] = "application/json"
            config[self.options.schema_field] = dict(request.response_schema)
        config.update(self.options.extra_config)
        return contents, types.GenerateContentConfig(**config)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        contents, config = self._request_parts(request)
        client = self.client()
        try:
            response = await client.aio.models.generate_content(model=self.model, contents=contents,
                                                                config=config)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self._result(response, structured=request.response_schema is not None)

    def _result(self, response: Any, *, structured: bool) -> GenerationResult:
        """A GenerationResult from a GenerateContentResponse; blocks and empty answers raise."""
        feedback = getattr(response, "prompt_feedback", None)
        block = getattr(feedback, "block_reason", None)
        if block:
            raise PermanentError(f"gemini: prompt blocked for model {self.model!r} ({_enum_name(block)})",
                                 kind="refusal")
        candidates = getattr(response, "candidates", None)
        if not candidates:
            raise TransientError(f"gemini: answer without candidates from model {self.model!r}",
                                 kind="malformed")
        candidate = candidates[0]
        finish = _enum_name(getattr(candidate, "finish_reason", None))
        if finish in REFUSAL_FINISH_REASONS:
            raise PermanentError(f"gemini: model {self.model!r} stopped for {finish}", kind="refusal")
        parts = getattr(getattr(candidate, "content", None), "parts", None) or []
        text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
        usage = getattr(response, "usage_metadata", None)
        output_tokens = sum(getattr(usage, f, 0) or 0 for f in ("candidates_token_count", "thoughts_token_count"))
        return GenerationResult(
            text=text,
            usage=Usage(input_tokens=getattr(usage, "prompt_token_count", 0) or 0, output_tokens=output_tokens),
            finish_reason=finish,
            structured=json_object(text) if structured else None,
            model=getattr(response, "model_version", None),
        )

    # -- batch -------------------------------------------------------------------------
    async def submit_batch(self, items: list[tuple[str, GenerationRequest]]) -> str:
        """Start a Gemini batch job with inline requests; returns its name ("batches/...").

        Each request's `metadata` carries its custom id, so the answers can be
        matched from the job alone. Batch jobs cost half as much and finish
        within 24 hours; the engine polls `poll_batch` until `done`.
        """
        from google.genai import types

        if not items:
            raise ValueError("submit_batch needs at least one request")
        if len({cid for cid, _ in items}) != len(items):
            raise ValueError("submit_batch custom ids must be unique")
        inlined = []
        for custom_id, request in items:
            contents, config = self._request_parts(request)
            structured = "1" if request.response_schema is not None else "0"
            inlined.append(types.InlinedRequest(model=self.model, contents=contents, config=config,
                                                metadata={META_ID: custom_id, META_STRUCTURED: structured}))
        client = self.client()
        try:
            job = await client.aio.batches.create(
                model=self.model, src=types.BatchJobSource(inlined_requests=inlined),
                config=types.CreateBatchJobConfig(display_name=f"brie-bench {self.context.name}"[:128]))
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if not getattr(job, "name", None):
            raise TransientError("gemini: batch created without a name", kind="malformed")
        self._batch_ids[job.name] = [cid for cid, _ in items]
        return str(job.name)

    async def poll_batch(self, batch_id: str) -> BatchPoll:
        """The job's state; once it has ended, every item's result or error."""
        name = batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"
        client = self.client()
        try:
            job = await client.aio.batches.get(name=name)
        except Exception as exc:
            mapped = self._map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        state = _enum_name(getattr(job, "state", None)) or ""
        if state not in BATCH_DONE_STATES:
            return BatchPoll(done=False, status=state)
        results: dict[str, GenerationResult | CallError] = {}
        responses = getattr(getattr(job, "dest", None), "inlined_responses", None) or []
        unmatched = 0
        for entry in responses:
            metadata = getattr(entry, "metadata", None) or {}
            custom_id = metadata.get(META_ID)
            if not custom_id:  # never match by position: Gemini does not keep request order
                unmatched += 1
                continue
            results[str(custom_id)] = self._batch_entry(entry, structured=metadata.get(META_STRUCTURED) == "1")
        failed = sum(isinstance(r, CallError) for r in results.values())
        counts = {"total": len(responses), "succeeded": len(results) - failed, "failed": failed}
        if unmatched:
            counts["unmatched"] = unmatched
        why = f"ended {state}" + (f" ({unmatched} answers without metadata)" if unmatched else "")
        for custom_id in self._batch_ids.get(name, []):
            if custom_id not in results:
                results[custom_id] = (
                    PermanentError(f"gemini batch {name} failed", kind="batch_failed")
                    if state == "JOB_STATE_FAILED" and not responses
                    else TransientError(f"gemini batch {name} {why} without this request", kind="batch_expired"))
        return BatchPoll(done=True, results=results, counts=counts, status=state)

    def _batch_entry(self, entry: Any, *, structured: bool) -> GenerationResult | CallError:
        """One inline response -> its result, or the error generate() would have raised."""
        error = getattr(entry, "error", None)
        if error is not None:
            code = int(getattr(error, "code", None) or 0)
            status, gstatus = (code, None) if code >= 100 else GRPC_CODES.get(code, (500, None))
            return self._status_error(status, gstatus, str(getattr(error, "message", "") or ""), None, None)
        response = getattr(entry, "response", None)
        if response is None:
            return TransientError("gemini batch item without response or error", kind="malformed")
        try:
            return self._result(response, structured=structured)
        except CallError as exc:
            return exc

    # -- errors ------------------------------------------------------------------------
    def _map_error(self, exc: BaseException) -> CallError | None:
        """The CallError for an SDK or transport exception; None when it is not a call failure."""
        below = self.transport_error(exc)  # nothing listens (no retries), or inflated past max_response_mb
        if below is not None:
            return below
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            return self._status_error(int(exc.code or 0), exc.status, str(exc.message or ""), exc.details,
                                      headers)
        kind = transport_error_kind(exc)
        if kind == "timeout":
            return TransientError(f"gemini: no answer within {self.options.timeout_s:g}s", kind="timeout")
        if kind is not None:
            return TransientError(self.error_text(f"gemini: {kind}: {type(exc).__name__}: {exc}", 300), kind=kind)
        return None

    def _status_error(self, status: int, gstatus: str | None, detail: str, body: Any,
                      headers: Mapping[str, str] | None) -> CallError:
        """The shared status table (`status_error`), plus what Google's error bodies add.

        A bad key is HTTP 400 `API_KEY_INVALID`; `DEADLINE_EXCEEDED` is a timeout whatever
        its status; the wait of a rate limit may be a `RetryInfo` detail; 409 is not retried.
        """
        msg = self.error_text(f"gemini HTTP {status} {gstatus or ''} for model {self.model!r}: {detail}")
        details = _error_details(body)
        overrides: dict[int, tuple[str, bool]] = {409: ("bad_request", False)}
        reasons = {d.get("reason") for d in details}
        if status != 429 and ("API_KEY_INVALID" in reasons or "API key not valid" in detail):
            overrides[status] = ("auth", False)
        elif status not in (401, 403, 404, 429) and gstatus == "DEADLINE_EXCEEDED":
            overrides[status] = ("timeout", True)
        wait = retry_after_seconds(headers)
        return status_error(msg, status, retry_after=wait if wait is not None else _retry_delay(details),
                            overrides=overrides)

    def _redact(self, text: str) -> str:
        return redact(text, self.api_key())


# -- small helpers --

def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _error_details(body: Any) -> list[Mapping[str, Any]]:
    """The `error.details` list of a Google error body (empty when absent)."""
    if not isinstance(body, Mapping):
        return []
    err = body.get("error", body)
    details = err.get("details") if isinstance(err, Mapping) else None
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def _retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail such as {"retryDelay": "12.5s"}."""
    for d in details:
        delay = d.get("retryDelay")
        if isinstance(delay, str):
            m = re.fullmatch(r"\s*([0-9.]+)s\s*", delay)
            if m:
                return float(m.group(1))
    return None


@hookimpl
def register_backends(register: Any) -> None:
    register(GeminiBackend)
