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

Layout, mirroring ``plugins/``: `openai_backend`, `anthropic_backend` and `gemini_backend`
each hold one provider's wire format and endpoints; `base` holds the faults, the call and
answer records and the state they share; `server` holds the HTTP plumbing and puts
`LoopbackProvider` together. Import the names below from this package.
"""

from __future__ import annotations

from brie_bench.testing.loopback.base import (ERROR_FAULTS, FAULT_KINDS, REFUSAL_FAULTS, TRANSPORT_FAULTS, Answer,
                                              Call, Fault, LoggedRequest, Protocol, Responder, default_responder,
                                              example_from_schema, tokens)
from brie_bench.testing.loopback.server import LoopbackProvider, main

__all__ = ["ERROR_FAULTS", "FAULT_KINDS", "REFUSAL_FAULTS", "TRANSPORT_FAULTS", "Answer", "Call", "Fault",
           "LoggedRequest", "LoopbackProvider", "Protocol", "Responder", "default_responder", "example_from_schema",
           "main", "tokens"]
