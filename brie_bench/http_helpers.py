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
import time
from typing import Any
from collections.abc import Mapping

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
    """The JSON object that `text` is, or None (the caller then validates the text itself)."""
    try:
        value = json.loads(text)
    except ValueError:
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
