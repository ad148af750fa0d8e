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

Robustness: every store call runs on one worker thread (`StoreWorker`), never on
the event loop, so a write waiting for SQLite's lock cannot freeze the server;
that wait is short (`BUSY_TIMEOUT_S`), after which the answer is 503 "busy, try
again" with a Retry-After, not a 500 after 30 s. A form with too many fields,
or too big, is a 4xx; the time a comparison was shown (`shown_at`, from the
page) is checked before it becomes a latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from brie_bench.store_api import database_errors
from brie_bench.textsafe import printable
from brie_bench.web.guard import COMMON_HEADERS, Guard, csp, forbidden, plain  # noqa: F401 (COMMON_HEADERS: re-exported)
from brie_bench.web.session import CHOICES, MAX_LATENCY_S, JudgingSession

T = TypeVar("T")

#: A form post is a few short fields; anything bigger, or with more fields, is not ours (4xx).
MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 10
#: How long a write waits for another program's lock on the results file before the page says "busy".
BUSY_TIMEOUT_S = 2.0
#: A page shown this far "in the future" (clock adjustments) still counts as shown now; beyond, `shown_at` is bogus.
FUTURE_SLACK_S = 5.0
NOTICES = {
    "A": "Recorded: A is better.", "B": "Recorded: B is better.", "tie": "Recorded: a tie.",
    "skip": "Skipped (stored as no verdict).", "undone": "Took back your last verdict: judge it again.",
    "nothing": "Nothing to undo.", "again": "That comparison was already judged (another tab?); here is the next.",
}
def shown(value: Any) -> str:
    """Untrusted text as the page shows it: line ends normalised, control and bidi characters made visible."""
    return printable(str(value).replace("\r\n", "\n").replace("\r", "\n"))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Package templates (and the report's, for the one stylesheet), autoescape always on, undefined names are errors."""
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("brie_bench.web", "templates"),
                                  jinja2.PackageLoader("brie_bench.report", "templates")])
    env = jinja2.Environment(loader=loader, autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["shown"] = shown
    return env


def latency(shown_at: str | None, now: float) -> float | None:
    """Seconds since the page was shown, from its `shown_at` field; None when missing or not believable.

    The field comes back from the browser, so it may be anything: `-inf`, `nan`,
    `1e308`, a time in the future. Only a finite time from `FUTURE_SLACK_S` ahead
    to `MAX_LATENCY_S` ago gives a latency; the verdict counts either way.
    """
    try:
        shown = float(shown_at or "")
    except ValueError:
        return None
    elapsed = now - shown
    if not math.isfinite(elapsed) or not -FUTURE_SLACK_S <= elapsed <= MAX_LATENCY_S:
        return None
    return max(0.0, elapsed)


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLite's "database is locked" / "busy": another connection holds the write lock."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


async def database_error(request: Request, exc: Exception) -> Response:
    """A store error as a one-line answer: 503 with a retry hint when busy, else 500 naming the cause."""
    if isinstance(exc, sqlite3.Error) and is_busy(exc):
        return plain(503, "busy: another program is writing to the results file; nothing was lost, "
                          "try again in a moment", {"retry-after": "2"})
    return plain(500, printable(f"error: the results file: {exc}"))


class StoreWorker:
    """The one thread that talks to SQLite for the page, so the event loop never waits on the file.

    SQLite connections belong to their thread, and one thread per page keeps a
    person's reads and writes in order (a verdict, then the next page). Its
    connection waits at most `BUSY_TIMEOUT_S` for a write lock.
    """

    def __init__(self, session: JudgingSession) -> None:
        self.session = session
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="brie-bench-judge-store")
        self._pool.submit(session.open_for_web, BUSY_TIMEOUT_S).result()

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def close(self) -> None:
        """Close the thread's connection, then the thread."""
        self._pool.submit(self.session.close).result()
        self._pool.shutdown(wait=True)


def create_app(session: JudgingSession, *, token: str, allowed_hosts: set[str] | None) -> Guard:
    """The judging app for one person's session. `allowed_hosts`: Host values accepted (None: any)."""
    csrf = secrets.token_urlsafe(32)
    env = environment()
    store = StoreWorker(session)
    origins = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    def page_url(**params: str) -> str:
        return "/?" + urlencode({"token": token, **params})

    not_ours = "forbidden: this form was not posted by the judging page (CSRF token missing)"

    async def form(request: Request) -> dict[str, str] | Response:
        """The posted fields, or the answer to give when the post is not a genuine one from our page."""
        origin = request.headers.get("origin")
        if origin is not None and origins is not None and origin.lower().removeprefix("http://") not in origins:
            return forbidden(not_ours)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return plain(413, f"too large: the judging page posts at most {MAX_FORM_BYTES} bytes")
        try:
            parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
        except ValueError:  # more fields than max_num_fields
            return plain(400, f"bad request: the judging page posts at most {MAX_FORM_FIELDS} form fields")
        fields = {k: v[0] for k, v in parsed.items()}
        if not hmac.compare_digest(fields.get("csrf", "").encode(), csrf.encode()):
            return forbidden(not_ours)
        return fields

    def page_state(prefer: str | None) -> dict[str, Any]:
        """Everything the page shows that comes from the store (runs on the store thread)."""
        unit = session.next_unit(prefer=prefer)
        progress = session.progress()
        return {"unit": unit, "progress": progress, "pair": session.pair(unit) if unit else None,
                "tally": session.tally() if unit is None else None, "position": progress.judged + 1}

    async def index(request: Request) -> Response:
        state = await store(page_state, request.query_params.get("unit"))
        nonce = secrets.token_urlsafe(16)
        notice = NOTICES.get(request.query_params.get("said", ""))
        context: dict[str, Any] = {
            "nonce": nonce, "token": token, "csrf": csrf, "name": session.name, "notice": notice,
            "shown_at": f"{time.time():.3f}", "run_id": session.run_id, **state,
        }
        html = env.get_template("judge.html.j2").render(**context)
        return HTMLResponse(html, headers={"content-security-policy": csp(nonce)})

    async def verdict(request: Request) -> Response:
        fields = await form(request)
        if isinstance(fields, Response):
            return fields
        choice, unit_key = fields.get("choice", ""), fields.get("unit", "")
        if choice not in CHOICES or unit_key not in session.by_key:
            return plain(400, "bad request: unknown choice or comparison")
        seconds = latency(fields.get("shown_at"), time.time())
        stored = await store(lambda: session.record(unit_key, choice, seconds=seconds))
        return RedirectResponse(page_url(said=choice if stored else "again"), status_code=303)

    async def undo(request: Request) -> Response:
        fields = await form(request)
        if isinstance(fields, Response):
            return fields
        key = await store(session.undo)
        return RedirectResponse(page_url(unit=key, said="undone") if key else page_url(said="nothing"),
                                status_code=303)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(store.close)  # the store thread's connection, closed on its own thread

    routes = [Route("/", index, methods=["GET"]), Route("/verdict", verdict, methods=["POST"]),
              Route("/undo", undo, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={e: database_error for e in database_errors(session.db)})
    return Guard(app, token, allowed_hosts)
