"""The plugin contract: the hook marker, the base classes, the records and the errors.

Only the contract lives here, so a plugin author reads one small page (as
simonw/llm's `llm/hookspecs.py` plus `llm/models.py`). The records and errors
are defined in `brie_bench.records` and `brie_bench.errors` and re-exported.
Helpers a plugin may reuse have public modules of their own: the verdict
parser (`brie_bench.verdicts`), HTTP helpers (`brie_bench.http_helpers`),
provider batches (`brie_bench.batch_poll`), suite-relative files
(`brie_bench.bounded`), text normalisation (`brie_bench.textsafe`) and tiny
test models (`brie_bench.testing.tiny`). Built-in plugins import only these
public modules, so they double as the examples a plugin author copies. See
docs/writing-a-plugin.md.

A plugin is a module (or object) with pluggy hook implementations::

    from brie_bench.api import hookimpl, Judge, JudgeOptions

    class CoinJudge(Judge):
        name = "coin"
        ...

    @hookimpl
    def register_judges(register):
        register(CoinJudge)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from collections.abc import Mapping, Sequence

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from brie_bench import http_helpers as _http
from brie_bench.errors import (  # noqa: F401  (re-exported for plugins)
    CallError,
    ErrorKind,
    InputError,
    MissingKeyError,
    PermanentError,
    PluginError,
    StopRun,
    TransientError,
)
from brie_bench.records import (  # noqa: F401  (re-exported for plugins)
    DEFAULT_CRITERIA,
    LABELS,
    BlindedPair,
    GenerationRequest,
    GenerationResult,
    JudgeResult,
    Label,
    LabelVerdict,
    Message,
    ModelSource,
    SamplingParams,
    Usage,
)

if TYPE_CHECKING:
    from brie_bench.batch_poll import BatchPoll

PROJECT_NAME = "brie_bench"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = [
    "hookimpl", "ModelBackend", "BackendOptions", "Judge", "JudgeOptions", "Limits",
    "BackendContext", "JudgeContext", "stable_hash", "CallError", "ErrorKind", "TransientError",
    "PermanentError", "InputError", "MissingKeyError", "PluginError", "StopRun", "BlindedPair",
    "GenerationRequest", "GenerationResult", "JudgeResult", "Message", "ModelSource", "SamplingParams",
    "Usage", "DEFAULT_CRITERIA", "LABELS", "Label", "LabelVerdict", "resolve_relative",
    "BatchBackend", "ChoiceLogprobs", "PROJECT_NAME", "RemoteBackend", "RemoteOptions",
]


def stable_hash(obj: Any) -> str:
    """A content hash of a JSON-serialisable object, stable across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Limits(BaseModel):
    """How hard the engine may push one backend. Set per contender/judge in a suite."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(default=4, ge=1, le=1024)
    requests_per_minute: float | None = Field(default=None, gt=0, le=1_000_000)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=1_000_000_000)
    timeout_s: float = Field(default=300.0, gt=0, le=86_400)
    max_attempts: int = Field(default=6, ge=1, le=50)


class BackendOptions(BaseModel):
    """Base for a backend's option schema. Unknown keys are rejected with the known ones listed."""

    model_config = ConfigDict(extra="forbid")

    #: Name of the environment variable that holds the API key, where the backend needs one.
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")


class JudgeOptions(BaseModel):
    """Base for a judge's option schema."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class BackendContext:
    """Where a backend instance is used: `role` is "contender" or "judge", `name` its suite name.

    `base_dir` is the suite file's folder: resolve relative paths in options (adapters,
    templates, rubrics) against it with `resolve_path`, so a suite works from any directory.
    """

    role: str
    name: str
    cache_dir: str | None = None
    base_dir: str | None = None

    def resolve_path(self, value: str) -> str:
        return resolve_relative(value, self.base_dir)


@dataclass(frozen=True)
class JudgeContext:
    name: str
    seed: int = 0
    base_dir: str | None = None

    def resolve_path(self, value: str) -> str:
        return resolve_relative(value, self.base_dir)


def resolve_relative(value: str, base_dir: str | None) -> str:
    """A relative path that exists next to the suite wins; anything else is returned unchanged."""
    p = Path(value).expanduser()
    if p.is_absolute() or base_dir is None:
        return str(p)
    candidate = Path(base_dir) / p
    return str(candidate) if candidate.exists() else value


class ModelBackend:
    """Turns (messages, sampling parameters) into text.

    Subclasses set `name`, optionally `Options` (a `BackendOptions` subclass)
    and `default_limits`, and implement `generate` (remote providers) or
    `generate_batch` (local models, which get batches of requests that share
    sampling parameters, up to `batch_size`). Raise `TransientError` for
    failures worth retrying and `PermanentError` for the rest.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    default_limits: ClassVar[Limits] = Limits()
    #: Environment variables tried in order when `api_key_env` is not set (empty: no key needed).
    default_key_envs: ClassVar[tuple[str, ...]] = ()
    #: The provider's own hosts: a `base_url` elsewhere gets the default key only via `api_key_env`.
    key_hosts: ClassVar[tuple[str, ...]] = ()
    #: Whether `choice_logprobs` gives real probabilities for arbitrary choices.
    supports_choice_logprobs: ClassVar[bool] = False
    #: Local backends (own hardware) cost nothing per token in cost reports.
    local: ClassVar[bool] = False

    batch_size: int = 1

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        self.model = model
        self.options = options
        self.context = context

    # -- identity and keys -------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What makes this backend's answers what they are; part of every unit key.

        Excludes anything secret or irrelevant to the output (key variable names,
        concurrency settings).
        """
        opts = self.options.model_dump(exclude={"api_key_env"}, exclude_defaults=True)
        return {"backend": self.name, "model": self.model, "options": opts}

    def key_env_names(self) -> tuple[str, ...]:
        """The environment variables this backend reads its API key from, in order."""
        if self.options.api_key_env:
            return (self.options.api_key_env,)
        return self.default_key_envs

    def api_key(self) -> str | None:
        """The API key from the environment, or None when none of the variables is set.

        Keys live only in memory: never in the suite, the store, logs or reports.
        """
        from brie_bench import envvars

        for env in self.key_env_names():
            value = envvars.text(env)
            if value:
                return value
        return None

    def check_ready(self) -> None:
        """Fail before any call when something needed (such as an API key) is missing."""
        names = self.key_env_names()
        if names and self.api_key() is None:
            raise MissingKeyError(
                f"{self.context.role} {self.context.name!r} (backend {self.name}) needs an API key: "
                f"set {' or '.join(names)}"
            )

    def prepare(self) -> None:
        """Import heavy libraries (and build local files) before any call. Blocking.

        `brie-bench run` calls it once per backend, in the main thread, after
        `check_ready` and before any worker thread starts: some libraries'
        lazy modules (transformers') are not safe to import from two threads
        at once. Remote backends need nothing here.
        """

    def endpoint(self) -> str | None:
        """Where this backend's calls go (a URL), shown by `validate` and `--dry-run`; None if local/unknown."""
        return None

    # -- calls -------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if type(self).generate_batch is not ModelBackend.generate_batch:
            return (await self.generate_batch([request]))[0]
        raise NotImplementedError(f"backend {self.name} implements neither generate nor generate_batch")

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Answer requests that share sampling parameters; by default one `generate` each, concurrently."""
        if len(requests) == 1:  # no extra task: the engine's guard around the call then sees everything it raises
            return [await self.generate(requests[0])]
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def choice_logprobs(self, messages: Sequence[Message], choices: Sequence[str],
                              assistant_prefix: str = "") -> dict[str, float | None]:
        """Log-probability of each choice as the next text after the prompt (and `assistant_prefix`).

        A choice the backend cannot score maps to None. Backends without
        token probabilities leave this unimplemented.
        """
        raise PermanentError(f"backend {self.name} does not expose token probabilities",
                             kind="unsupported")

    def supports_batch(self) -> bool:
        """Whether this backend has a provider batch API: whether it is a `BatchBackend`."""
        return isinstance(self, BatchBackend)

    def provenance(self) -> dict[str, Any] | None:
        """Where this contender came from (e.g. an adapter's training manifest), stored with the run."""
        return None

    async def aclose(self) -> None:
        """Release clients, threads, or models. Called once when a run ends."""


@runtime_checkable
class BatchBackend(Protocol):
    """A backend with a provider batch API (`batch: true` on a judge in a suite).

    A `ModelBackend` subclass declares the capability by implementing both
    methods; the engine checks `isinstance(backend, BatchBackend)` before it
    accepts a batch judge, and calls nothing else. `submit_batch` takes
    `(custom id, request)` pairs and returns the provider's batch id, which the
    engine stores before it polls, so a crashed run polls the batch again
    instead of submitting (and paying for) it twice. `poll_batch` may be called
    by a fresh backend instance that never saw the submission.
    """

    async def submit_batch(self, items: list[tuple[str, GenerationRequest]]) -> str: ...

    async def poll_batch(self, batch_id: str) -> BatchPoll: ...


class RemoteOptions(BackendOptions):
    """The options every remote backend has; a provider's `Options` subclasses it and adds its own.

    A subclass may redeclare a field to describe it in its own words (`base_url`'s default).
    """

    base_url: str | None = Field(default=None, description="API endpoint; default: the provider's own")
    timeout_s: float = Field(default=120.0, gt=0, le=86_400, description="HTTP timeout per request, seconds")
    max_response_mb: float = Field(
        default=_http.DEFAULT_MAX_RESPONSE_MB, gt=0, le=65_536,
        description="refuse a response whose decoded body is larger than this (MiB): a gzip bomb is refused, "
                    "not read into memory")
    require_key: bool = Field(
        default=True, description="set false for a gateway at base_url that needs no API key")


class RemoteBackend(ModelBackend):
    """A model behind a provider's HTTP API, called through the provider's async SDK client.

    Why a base: what differs between providers is the request and the answer; what a
    remote backend must get right is the same for all of them, and is written once here:

    * `identity` leaves out the options that change how a call is made but never its
      answer (`transport_options`: timeouts, key settings, the response cap), so changing
      them reuses stored answers;
    * `require_key: false` (a gateway, a local server) asks for no key unless
      `api_key_env` names one; `endpoint` is `base_url` or `default_endpoint`;
    * the client is built once, lazily (a suite that never calls the backend needs
      neither the SDK nor a key), or ahead of the first call by `prepare`, in the main
      thread, so the first calls do not all wait on the SDK's import inside the event loop;
    * `response_hooks` are the httpx event hooks that refuse a response inflating past
      `max_response_mb`, for the SDK's HTTP client.

    A subclass sets `name`, `Options` (a `RemoteOptions` subclass), `default_key_envs`,
    `key_hosts` and `default_endpoint`, builds its SDK client in `make_client` (with SDK
    retries off: the engine retries and records every attempt), and implements `generate`.
    """

    Options: ClassVar[type[BackendOptions]] = RemoteOptions
    #: Where calls go when `base_url` is not set.
    default_endpoint: ClassVar[str] = ""
    #: Options that never change an answer, so they are not part of `identity` (nor of unit keys).
    transport_options: ClassVar[frozenset[str]] = frozenset({"api_key_env", "timeout_s", "require_key",
                                                             "max_response_mb"})

    options: RemoteOptions

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        super().__init__(model, options, context)
        self._client: Any = None

    def identity(self) -> dict[str, Any]:
        """Backend, model and the options that change answers (not `transport_options`)."""
        opts = self.options.model_dump(exclude=set(self.transport_options), exclude_defaults=True)
        return {"backend": self.name, "model": self.model, "options": opts}

    def key_env_names(self) -> tuple[str, ...]:
        if not self.options.require_key and not self.options.api_key_env:
            return ()
        return super().key_env_names()

    def endpoint(self) -> str:
        return self.options.base_url or self.default_endpoint

    @property
    def response_hooks(self) -> dict[str, list[Any]]:
        """httpx `event_hooks` refusing a response whose decoded body passes `max_response_mb`."""
        return _http.capped_response_hooks(int(self.options.max_response_mb * (1 << 20)))

    def make_client(self) -> Any:
        """Import the SDK (here, not at module level: a missing SDK must not break other plugins) and
        build its async client, with the SDK's own retries off."""
        raise NotImplementedError(f"backend {self.name} does not build a client")

    def warm_client(self, client: Any) -> None:
        """Touch what the SDK would otherwise import on its first call (`prepare`); nothing by default."""

    async def close_client(self, client: Any) -> None:
        """Close the SDK client (`aclose`); `client.close()` by default."""
        await client.close()

    # -- errors every provider shares ---------------------------------------------------
    def error_text(self, text: str, limit: int = 400) -> str:
        """An error message with every key redacted first, then cut to `limit` characters."""
        return _http.safe_message(text, self.api_key(), limit)

    def transport_error(self, exc: BaseException, sdk: Any = None) -> CallError | None:
        """The CallError for a failure below the provider's API, or None when `exc` is not one.

        Nothing listening at the endpoint (not retried), a response past `max_response_mb`,
        and, given `sdk` (a module of an SDK with the openai-style exception classes, such as
        `openai` and `anthropic`), its timeout, connection and answer-schema errors.
        """
        found = _http.refused_error(exc, self.name, self.endpoint()) or _http.refused_response(exc)
        if found is not None or sdk is None:
            return found
        if isinstance(exc, sdk.APITimeoutError):
            return TransientError(f"{self.name}: no answer within {self.options.timeout_s:g}s", kind="timeout")
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            why = f" ({type(cause).__name__})" if cause else ""
            return TransientError(self.error_text(f"{self.name}: connection failed{why}: {exc}"), kind="connection")
        if isinstance(exc, sdk.APIResponseValidationError):
            return TransientError(f"{self.name}: the answer did not match the API schema", kind="malformed")
        return None

    def client(self) -> Any:
        """The SDK client: built by `make_client` on first use, then the same one until `aclose`."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def prepare(self) -> None:
        """Import the SDK and build the client now, in the main thread, before the clock starts.

        Otherwise the first call does it inside the event loop and every call started
        with it waits (about a second on a busy 2-core machine: the import, the client,
        and the resources the SDK imports on first use). No connection is made here.
        """
        self.warm_client(self.client())

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self.close_client(client)


class Judge:
    """Turns a `BlindedPair` into a `JudgeResult` over labels A/B/tie/invalid.

    A judge never learns which contender wrote which answer. It must return
    `invalid` rather than guess, and let transient failures raise
    `TransientError` so the engine retries them.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[JudgeOptions]] = JudgeOptions
    #: Whether this judge type calls a model backend (the suite must name one).
    needs_backend: ClassVar[bool] = True
    #: Whether the same pair, options and seed always give the same verdict.
    deterministic: ClassVar[bool] = False
    #: Whether the engine may call `judge` concurrently (a person at a terminal may not).
    concurrent: ClassVar[bool] = True
    #: Limits for judges that call no backend (a backend's own limits apply otherwise).
    default_limits: ClassVar[Limits | None] = None

    def __init__(self, options: JudgeOptions, backend: ModelBackend | None, context: JudgeContext) -> None:
        self.options = options
        self.backend = backend
        self.context = context

    def identity(self) -> dict[str, Any]:
        """What makes this judge's verdicts what they are; part of every judgment key."""
        return {
            "judge": self.name,
            "options": self.options.model_dump(mode="json"),
            "backend": self.backend.identity() if self.backend else None,
        }

    async def judge(self, pair: BlindedPair) -> JudgeResult:
        raise NotImplementedError

    # -- optional: provider batch APIs (`batch: true` on a judge in a suite) -------------
    def batch_request(self, pair: BlindedPair) -> GenerationRequest | None:
        """The one backend request that judges `pair`, for batch submission; None if unsupported."""
        return None

    def batch_result(self, pair: BlindedPair, result: GenerationResult) -> JudgeResult:
        """Turn the batch answer to `batch_request(pair)` into a verdict."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources. Called once when a run ends."""


class ChoiceLogprobs(dict[str, float | None]):
    """What `ModelBackend.choice_logprobs` may return: the choice -> log-probability mapping, plus `usage`.

    A plain dict still works; this one also tells the judge what the call cost
    (a logprob judge otherwise records 0 input tokens).
    """

    def __init__(self, values: Mapping[str, float | None], usage: Usage | None = None) -> None:
        super().__init__(values)
        self.usage = usage or Usage()

