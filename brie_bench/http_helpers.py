"""Small helpers every HTTP provider backend needs; public through `brie_bench.api`.

They turn what an HTTP API says (retry-after headers, transport exceptions,
JSON bodies) into what the engine understands, and keep keys out of error text.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Mapping

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
