"""Small helpers every HTTP provider backend needs: a public module (docs/writing-a-plugin.md).

They turn what an HTTP API says (status codes, retry-after headers, transport
exceptions, JSON bodies) into what the engine understands, and keep keys out of
error text. The HTTP status -> error kind ladder is written once, here
(`STATUS_KINDS`, `status_error`); a provider passes only what its API says
differently.
"""

from __future__ import annotations

import email.utils
import errno
import json
import re
import sys
import time
from typing import Any
from collections.abc import AsyncIterator, Iterator, Mapping

from brie_bench.errors import CallError, PermanentError, TransientError

#: Exception class names (anywhere in the MRO) that mean a transport-level failure.
_TIMEOUT_NAMES = {"TimeoutException", "TimeoutError", "ServerTimeoutError"}
_MALFORMED_NAMES = {"JSONDecodeError"}
_CONNECTION_NAMES = {"TransportError", "NetworkError", "ConnectionError", "ClientConnectionError",
                     "RemoteProtocolError", "ServerDisconnectedError", "ClientPayloadError"}


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def transport_error_kind(exc: BaseException) -> str | None:
    """"timeout", "connection" or "malformed" for transport exceptions an SDK did not wrap; else None.

    Matched by class name so no HTTP library has to be imported here (SDKs use
    httpx, httpx2 or aiohttp).
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _TIMEOUT_NAMES:
        return "timeout"
    if names & _MALFORMED_NAMES:
        return "malformed"
    if names & _CONNECTION_NAMES:
        return "connection"
    return None


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object that `text` is, or None (the caller then validates the text itself).

    An object that gives one key twice with different values (``{"winner": "A",
    "winner": "B"}``) is ambiguous: None, so the caller's text parser reads it and
    finds the conflict (`brie_bench.verdicts`), instead of `json` keeping the last value.
    """

    def one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj and json.dumps(obj[key], sort_keys=True) != json.dumps(value, sort_keys=True):
                raise ValueError(f"key {key!r} given twice with different values")
            obj[key] = value
        return obj

    try:
        value = json.loads(text, object_pairs_hook=one_value_per_key)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` replaced by *** (errors may echo request details back)."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


#: Key-shaped text an error may echo even when it is not *our* key: bearer tokens, provider keys,
#: `key=` query parameters and the user info of a URL.
_KEY_SHAPES = re.compile(
    r"(?i:bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|\bsk-[A-Za-z0-9_\-]{8,}"
    r"|\bAIza[A-Za-z0-9_\-]{20,}"
    r"|(?<=[?&](?i:key)=)[^&\s]{8,}"
    r"|(?<=://)[^/\s@]+(?=@)")


def safe_message(text: str, secret: str | None = None, limit: int = 400) -> str:
    """An error message fit to store and print: every key redacted *first*, then cut to `limit`.

    Cutting first would leave a key's head just before the cut
    (`... sk-test-SECRET12`), where no whole-key match can find it.
    """
    cleaned = _KEY_SHAPES.sub("***", redact(str(text), secret))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"


def connection_refused(exc: BaseException | None) -> bool:
    """Whether `exc` or anything in its cause chain is a refused TCP connection (nothing listens there)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def refused_error(exc: BaseException, provider: str, url: str) -> PermanentError | None:
    """A permanent error naming `url` when the connection was refused; None for any other failure.

    A refused connection means no server is listening: retrying with backoff only
    made a user wait 28 s for the same answer. Timeouts, resets and 5xx answers
    stay transient (a busy or restarting server recovers).
    """
    if not connection_refused(exc):
        return None
    return PermanentError(f"{provider}: {safe_message(url)} refused the connection; is the server running?",
                          kind="refused")


#: What an HTTP status means to the engine, for every provider: status -> (error kind, transient).
#: A status not listed is ("server", transient) from 500 up and ("bad_request", permanent) below;
#: a provider passes `overrides` for what its API says differently (docs/architecture.md, errors).
STATUS_KINDS: Mapping[int, tuple[str, bool]] = {
    401: ("auth", False),
    403: ("auth", False),
    404: ("model", False),
    408: ("timeout", True),
    409: ("server", True),
    429: ("rate_limit", True),
}


def status_kind(status: int, overrides: Mapping[int, tuple[str, bool]] | None = None,
                fallback: tuple[str, bool] = ("bad_request", False)) -> tuple[str, bool]:
    """(kind, transient) for an HTTP `status`: `overrides`, then `STATUS_KINDS`, then 5xx/`fallback`."""
    if overrides and status in overrides:
        return overrides[status]
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    return ("server", True) if status >= 500 else fallback


def status_error(message: str, status: int, *, headers: Mapping[str, str] | None = None,
                 retry_after: float | None = None, overrides: Mapping[int, tuple[str, bool]] | None = None,
                 fallback: tuple[str, bool] = ("bad_request", False)) -> CallError:
    """The `CallError` for an HTTP error answer, from the one status table (`status_kind`).

    `message` must already be safe (see `safe_message`). A rate limit waits for
    `retry_after` when given, else for what the `headers` say. Each backend keeps
    only what its own SDK and error bodies add: which exceptions carry a status,
    and the `overrides`/`fallback` its API needs (a quota code, a policy refusal).
    """
    kind, transient = status_kind(status, overrides, fallback)
    if not transient:
        return PermanentError(message, kind=kind, status=status)
    if kind == "rate_limit":
        wait = retry_after if retry_after is not None else retry_after_seconds(headers)
        return TransientError(message, kind=kind, retry_after=wait, status=status)
    return TransientError(message, kind=kind, status=status)


# -- a cap on what one response may inflate to ---------------------------------------------------

#: The default cap on one HTTP response's decoded body, in MiB (backend option `max_response_mb`).
#: A chat answer is kilobytes; a batch's results file of some ten thousand verdicts fits. A call
#: holds at most this much while it is refused, so 8 concurrent calls stay near 256 MiB.
DEFAULT_MAX_RESPONSE_MB = 32

#: Decoded bytes produced per step of inflating: memory stays bounded whatever the ratio.
_INFLATE_STEP = 1 << 20

#: The content codings read under the cap (asked for with Accept-Encoding; any other is refused).
_READABLE_CODINGS = ("gzip", "x-gzip", "deflate")


class ResponseRefused(PermanentError):
    """A response refused while it was read: it inflated past the cap, or cannot be decoded boundedly.

    Raised inside the HTTP client, so SDKs wrap it (OpenAI: `APIConnectionError`); a backend
    finds it again with `refused_response`. Permanent: asking again gets the same answer.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="malformed")


def refused_response(exc: BaseException | None) -> ResponseRefused | None:
    """The `ResponseRefused` in `exc` or its cause chain, else None (backends call it in their error mapping)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ResponseRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _Inflater:
    """One content coding undone in bounded steps (zlib's `max_length`), as httpx's own decoders do."""

    def __init__(self, coding: str) -> None:
        import zlib

        self.coding = coding
        self._zlib = zlib
        self._raw_fallback = coding == "deflate"  # "deflate" is zlib-wrapped, or raw deflate from some servers
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16) if coding in ("gzip", "x-gzip") else zlib.decompressobj()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._d.decompress(data, _INFLATE_STEP)
        except self._zlib.error:
            if not self._raw_fallback:
                raise ResponseRefused(f"the response's {self.coding} body is damaged") from None
            self._raw_fallback = False
            self._d = self._zlib.decompressobj(-self._zlib.MAX_WBITS)
            out = self._d.decompress(data, _INFLATE_STEP)
        self._raw_fallback = False
        while out:
            yield out
            out = self._d.decompress(self._d.unconsumed_tail, _INFLATE_STEP)

    def flush(self) -> Iterator[bytes]:
        rest = self._d.flush()
        if rest:
            yield rest


def capped_response_hooks(max_bytes: int) -> dict[str, list[Any]]:
    """httpx `event_hooks` that refuse any response whose decoded body passes `max_bytes`.

    Why: a response of 1 MB on the wire can inflate to 1 GiB (a gzip bomb), and the SDKs
    read a whole answer into memory before returning it: one call took the process to
    3.2 GB. The request hook asks only for codings that can be undone in bounded steps;
    the response hook, run before the body is read, swaps the body's stream for one that
    decodes it itself, counting as it goes, and raises `ResponseRefused` past the cap.
    At most `max_bytes` plus one step (1 MiB) is ever held. Works with any httpx-style
    client (`httpx`, `httpx2`): pass ``event_hooks=capped_response_hooks(n)``.
    """

    async def on_request(request: Any) -> None:
        request.headers["Accept-Encoding"] = "gzip, deflate"  # what `_Inflater` reads

    async def on_response(response: Any) -> None:
        http = sys.modules[type(response).__module__.split(".")[0]]  # the library that made it: httpx or httpx2
        codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
        codings = [c for c in codings if c and c != "identity"]
        unreadable = [c for c in codings if c not in _READABLE_CODINGS]
        if unreadable:
            raise ResponseRefused(f"the response is encoded as {', '.join(unreadable)}, which was not asked for")
        limit_mb = max_bytes / (1 << 20)
        where = safe_message(str(response.request.url), limit=120)

        class CappedStream(http.AsyncByteStream):  # type: ignore[name-defined,misc]
            def __init__(self, raw: Any) -> None:
                self.raw = raw

            async def __aiter__(self) -> AsyncIterator[bytes]:
                inflaters = [_Inflater(c) for c in reversed(codings)]
                total = 0

                def counted(piece: bytes) -> bytes:
                    nonlocal total
                    total += len(piece)
                    if total > max_bytes:
                        raise ResponseRefused(f"the response from {where} is larger than max_response_mb "
                                              f"({limit_mb:g} MiB) once decoded; refused")
                    return piece

                def through(piece: bytes, stage: int) -> Iterator[bytes]:
                    if stage == len(inflaters):
                        yield counted(piece)
                        return
                    for out in inflaters[stage].feed(piece):
                        yield from through(out, stage + 1)

                async for chunk in self.raw:
                    if chunk:
                        for piece in through(chunk, 0):
                            yield piece
                for stage, inflater in enumerate(inflaters):
                    for rest in inflater.flush():
                        for piece in through(rest, stage + 1):
                            yield piece

            async def aclose(self) -> None:
                await self.raw.aclose()

        response.stream = CappedStream(response.stream)
        for name in ("content-encoding", "content-length"):  # the body is now the decoded one
            if name in response.headers:
                del response.headers[name]

    return {"request": [on_request], "response": [on_response]}
