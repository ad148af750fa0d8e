"""The judging page: a small Starlette app around one `JudgingSession`.

Security is the point of most of this file, because the page shows model
output (untrusted text) to a person and writes to the results file:

* every request must carry the random token from the printed URL (else 403),
  and, while bound to a loopback address, a Host header naming that address
  (so a web page elsewhere cannot reach the server by DNS rebinding);
* every write (a verdict, an undo) is a POST carrying a CSRF token that only
  the rendered page knows, and its Origin, when the browser sends one, must be
  this server;
* answers are rendered by Jinja with autoescape, as text, with control and
  bidi characters shown (not obeyed); the Content-Security-Policy allows only
  the page's own inline style and script, by nonce, so even markup that slipped
  through could not run or load anything.

The page works without JavaScript (buttons are form submits); the script only
maps keys to those buttons. After each write the browser is redirected back
to the page (POST-redirect-GET), so a reload never writes twice.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from functools import lru_cache
from typing import Any
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brie_bench.textsafe import printable
from brie_bench.web.session import CHOICES, JudgingSession

#: A form post is a few short fields; anything bigger is not ours.
MAX_FORM_BYTES = 4096
NOTICES = {
    "A": "Recorded: A is better.", "B": "Recorded: B is better.", "tie": "Recorded: a tie.",
    "skip": "Skipped (stored as no verdict).", "undone": "Took back your last verdict: judge it again.",
    "nothing": "Nothing to undo.", "again": "That comparison was already judged (another tab?); here is the next.",
}
#: `same-origin` referrers: the token-bearing URL never leaves the page, while the browser still sends
#: the real Origin on our own form posts (under `no-referrer` Chromium sends `Origin: null`).
COMMON_HEADERS = {
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin", "x-frame-options": "DENY",
    "cache-control": "no-store", "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def csp(nonce: str | None) -> str:
    """Nothing is allowed but the page's own nonce'd inline style and script, and posting to itself."""
    own = f" 'nonce-{nonce}'" if nonce else " 'none'"
    return (f"default-src 'none'; script-src{own}; style-src{own}; img-src 'none'; connect-src 'none'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def shown(value: Any) -> str:
    """Untrusted text as the page shows it: line ends normalised, control and bidi characters made visible."""
    return printable(str(value).replace("\r\n", "\n").replace("\r", "\n"))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Package templates, autoescape always on, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("brie_bench.web", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["shown"] = shown
    return env


def forbidden(text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=403, headers={**COMMON_HEADERS, "content-security-policy": csp(None)})


class Guard:
    """ASGI middleware: the token (and, on loopback, the Host) on every request; safe headers on every answer."""

    def __init__(self, app: ASGIApp, token: str, hosts: set[str] | None) -> None:
        self.app, self.token, self.hosts = app, token, hosts
        self.last_request = time.monotonic()  # for the server's idle stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.last_request = time.monotonic()
        request = Request(scope)
        if self.hosts is not None and request.headers.get("host", "") not in self.hosts:
            await forbidden("forbidden: unexpected Host header")(scope, receive, send)
            return
        if not hmac.compare_digest(request.query_params.get("token", "").encode(), self.token.encode()):
            await forbidden("forbidden: open the URL that `brie-bench judge` printed (it carries the token)")(
                scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in COMMON_HEADERS.items() if k.encode() not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(session: JudgingSession, *, token: str, allowed_hosts: set[str] | None) -> Guard:
    """The judging app for one person's session. `allowed_hosts`: Host values accepted (None: any)."""
    csrf = secrets.token_urlsafe(32)
    env = environment()

    def page_url(**params: str) -> str:
        return "/?" + urlencode({"token": token, **params})

    async def form(request: Request) -> dict[str, str] | None:
        """The posted fields, or None when the post is not a genuine one from our page."""
        origin = request.headers.get("origin")
        if origin is not None and allowed_hosts is not None and \
                origin.removeprefix("http://") not in allowed_hosts:
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return None
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=10).items()}
        if not hmac.compare_digest(fields.get("csrf", "").encode(), csrf.encode()):
            return None
        return fields

    async def index(request: Request) -> Response:
        unit = session.next_unit(prefer=request.query_params.get("unit"))
        progress = session.progress()
        nonce = secrets.token_urlsafe(16)
        notice = NOTICES.get(request.query_params.get("said", ""))
        context: dict[str, Any] = {
            "nonce": nonce, "token": token, "csrf": csrf, "name": session.name, "progress": progress,
            "notice": notice, "unit": unit, "pair": session.pair(unit) if unit else None,
            "shown_at": f"{time.time():.3f}", "tally": session.tally() if unit is None else None,
            "run_id": session.run_id, "position": progress.judged + 1,
        }
        html = env.get_template("judge.html.j2").render(**context)
        return HTMLResponse(html, headers={"content-security-policy": csp(nonce)})

    async def verdict(request: Request) -> Response:
        fields = await form(request)
        if fields is None:
            return forbidden("forbidden: this form was not posted by the judging page (CSRF token missing)")
        choice, unit_key = fields.get("choice", ""), fields.get("unit", "")
        if choice not in CHOICES or unit_key not in session.by_key:
            return PlainTextResponse("bad request: unknown choice or comparison\n", status_code=400)
        try:
            seconds = max(0.0, time.time() - float(fields.get("shown_at", "")))
        except ValueError:
            seconds = None
        stored = session.record(unit_key, choice, seconds=seconds)
        return RedirectResponse(page_url(said=choice if stored else "again"), status_code=303)

    async def undo(request: Request) -> Response:
        if await form(request) is None:
            return forbidden("forbidden: this form was not posted by the judging page (CSRF token missing)")
        key = session.undo()
        return RedirectResponse(page_url(unit=key, said="undone") if key else page_url(said="nothing"),
                                status_code=303)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            session.close()  # the event loop's connection; handlers are async, so they all ran here

    routes = [Route("/", index, methods=["GET"]), Route("/verdict", verdict, methods=["POST"]),
              Route("/undo", undo, methods=["POST"])]
    return Guard(Starlette(routes=routes, lifespan=lifespan), token, allowed_hosts)
