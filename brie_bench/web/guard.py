"""What every local page of Brie Bench shares: the token and Host check, safe headers, strict CSP, one-line errors.

Shared by the judging page (`brie_bench.web.app`) and the results viewer
(`brie_bench.viewer`), so both refuse the same requests the same way: a request
without the random token from the printed URL is 403; while bound to a loopback
address, a Host header that does not name it is 403 too (DNS rebinding). Only
the refusal text differs, so it can name the command that printed the URL.
"""

from __future__ import annotations

import hmac
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: `same-origin` referrers: the token-bearing URL never leaves the page, while the browser still sends
#: the real Origin on our own form posts (under `no-referrer` Chromium sends `Origin: null`).
COMMON_HEADERS = {
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin", "x-frame-options": "DENY",
    "cache-control": "no-store", "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def csp(nonce: str | None, *, script: bool = True) -> str:
    """Nothing is allowed but the page's own nonce'd inline style and script, and posting to itself.

    `script=False`: a page that needs no script (the viewer's) allows none at all.
    """
    own = f" 'nonce-{nonce}'" if nonce else " 'none'"
    scripts = own if script else " 'none'"
    return (f"default-src 'none'; script-src{scripts}; style-src{own}; img-src 'none'; connect-src 'none'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """A one-line text answer (errors): never a traceback, never markup."""
    return PlainTextResponse(text + "\n", status_code=status,
                             headers={**COMMON_HEADERS, "content-security-policy": csp(None), **(headers or {})})


def forbidden(text: str) -> Response:
    return plain(403, text)


class Guard:
    """ASGI middleware: the token (and, on loopback, the Host) on every request; safe headers on every answer.

    `refusal` is the text of the 403 for a missing or wrong token: it names the
    command whose printed URL carries the token.
    """

    def __init__(self, app: ASGIApp, token: str, hosts: set[str] | None, *,
                 refusal: str = "forbidden: open the URL that `brie-bench judge` printed (it carries the token)") -> None:
        self.app, self.token, self.refusal = app, token, refusal
        self.hosts = None if hosts is None else {h.lower() for h in hosts}  # host names have no case
        self.last_request = time.monotonic()  # for the server's idle stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.last_request = time.monotonic()
        request = Request(scope)
        if self.hosts is not None and request.headers.get("host", "").lower() not in self.hosts:
            await forbidden("forbidden: unexpected Host header")(scope, receive, send)
            return
        if not hmac.compare_digest(request.query_params.get("token", "").encode(), self.token.encode()):
            await forbidden(self.refusal)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in COMMON_HEADERS.items() if k.encode() not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
