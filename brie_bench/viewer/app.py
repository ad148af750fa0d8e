"""The viewer: a read-only Starlette app over one database, behind the judging page's guard.

Security is the judging page's (`brie_bench.web.guard`): every request carries
the printed URL's token (else 403), on loopback the Host must name this server
(else 403), answers and names from the store are rendered by Jinja with
autoescape, and the Content-Security-Policy allows only the page's own nonce'd
style: the viewer's pages need no script at all. There are no writes, so no
CSRF token is needed; anything but GET is 405.

The run page is the HTML report itself (`brie_bench.report.html.render_html`),
rendered from the database at request time, under the report's own policy
(its one script by hash, its inline style) sent as a header too.

Each request opens the database read-only on its own worker thread (SQLite
connections belong to their thread), so the viewer never locks out a run that
is writing to the same file.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from brie_bench.errors import BrieBenchError
from brie_bench.store import Store
from brie_bench.store_api import database_errors
from brie_bench.textsafe import printable
from brie_bench.viewer.data import PAGE_SIZE, PICKS, SummaryCache, browse, filter_runs, pairs, read_filter
from brie_bench.web.app import database_error, shown
from brie_bench.web.guard import Guard, csp, plain

REFUSAL = "forbidden: open the URL that `brie-bench view` printed (it carries the token)"
_SCRIPT_HASH = re.compile(r"script-src 'sha256-([A-Za-z0-9+/=]+)'")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The report's environment (its filters, chart macro, autoescape), also loading the viewer's templates."""
    from brie_bench.report.html import environment as report_environment

    base = report_environment()
    assert base.loader is not None
    env = base.overlay(loader=jinja2.ChoiceLoader([jinja2.PackageLoader("brie_bench.viewer", "templates"),
                                                   base.loader]))
    env.filters["shown"] = shown
    return env


def report_csp(html: str) -> str:
    """The report's own policy (inline style, its one script by hash), sent as a header as well."""
    found = _SCRIPT_HASH.search(html)
    script = f"'sha256-{found.group(1)}'" if found else "'none'"
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; img-src data:; "
            "connect-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def run_nav(token: str, run_id: str) -> Markup:
    """The viewer's links, put at the top of a report page."""
    def link(path: str, text: str) -> str:
        return f'<a href="{escape(path + "?" + urlencode({"token": token}))}">{escape(text)}</a>'

    return Markup(f'<nav class="viewer-nav" id="viewer-nav">{link("/", "All runs")} '
                  f'{link(f"/run/{run_id}/comparisons", "Browse the comparisons")}</nav>\n')


def create_viewer_app(db: str, *, token: str, allowed_hosts: set[str] | None) -> Guard:
    """The viewer for database `db`. `allowed_hosts`: Host values accepted (None: any)."""
    env = environment()
    cache = SummaryCache()

    def url(path: str, **params: str) -> str:
        return path + "?" + urlencode({"token": token, **{k: v for k, v in params.items() if v}})

    def page(template: str, status: int = 200, **context: Any) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = env.get_template(template).render(nonce=nonce, token=token, url=url, **context)
        return HTMLResponse(html, status_code=status, headers={"content-security-policy": csp(nonce, script=False)})

    def with_store(fn: Callable[[Store], Response]) -> Response:
        """`fn` on a read-only connection; a missing run or bad database is a one-line 4xx."""
        try:
            with Store(db, readonly=True) as store:
                return fn(store)
        except BrieBenchError as exc:
            return plain(404, printable(f"not found: {exc}"))

    def runs_list(request: Request) -> Response:
        q = request.query_params
        suite, contender, judge = q.get("suite", ""), q.get("contender", ""), q.get("judge", "")

        def show(store: Store) -> Response:
            every = cache.summaries(store)
            chosen = filter_runs(every, suite=suite, contender=contender, judge=judge)
            return page("runs.html.j2", runs=chosen, every=every, suite=suite, contender=contender, judge=judge,
                        suites=sorted({r.suite for r in every}),
                        contenders=sorted({c.split(" (")[0] for r in every for c in r.contenders}),
                        judges=sorted({j for r in every for j in r.judges}))
        return with_store(show)

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def show(store: Store) -> Response:
            from brie_bench.report.html import render_html
            from brie_bench.report.model import build_report_from_data
            from brie_bench.report.rows import load_run

            data = load_run(store, run_id)
            html = render_html(build_report_from_data(data), data)
            html = html.replace("<body>\n", "<body>\n" + run_nav(token, data.run.id), 1)
            return HTMLResponse(html, headers={"content-security-policy": report_csp(html)})
        return with_store(show)

    def compare_page(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            return plain(400, "bad request: pick two runs (?a=RUN&b=RUN)")

        def show(store: Store) -> Response:
            from brie_bench.report.compare import build_comparison, comparison_blocks, difference_chart, signed_pct
            from brie_bench.report.rows import load_run

            c = build_comparison(load_run(store, a, texts=False), load_run(store, b, texts=False))
            return page("compare.html.j2", c=c, blocks=comparison_blocks(c), diff_chart=difference_chart(c),
                        pts=signed_pct)
        return with_store(show)

    def history_page(request: Request) -> Response:
        def show(store: Store) -> Response:
            from brie_bench.viewer.history import history_context

            return page("history.html.j2", **history_context(cache.summaries(store), request.query_params.get("suite", "")))
        return with_store(show)

    def comparisons_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        f = read_filter(dict(request.query_params))

        def show(store: Store) -> Response:
            from brie_bench.report.items import comparison_items
            from brie_bench.report.rows import load_run

            data = load_run(store, run_id)
            items = comparison_items(data)
            every = pairs(items)
            chosen = browse(every, f)
            pages = max(1, -(-len(chosen) // PAGE_SIZE))
            current = min(f.page, pages)
            shown_pairs = chosen[(current - 1) * PAGE_SIZE: current * PAGE_SIZE]
            return page("browse.html.j2", run=data.run, f=f, pairs=shown_pairs, n_total=len(every),
                        n_chosen=len(chosen), page_no=current, pages=pages, judges=items["judges"],
                        sections=items["sections"], picks=PICKS, reveal=request.query_params.get("reveal") == "1")
        return with_store(show)

    routes = [Route("/", runs_list, methods=["GET"]), Route("/run/{run_id}", run_page, methods=["GET"]),
              Route("/run/{run_id}/comparisons", comparisons_page, methods=["GET"]),
              Route("/compare", compare_page, methods=["GET"]), Route("/history", history_page, methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={e: database_error for e in database_errors(db)})
    return Guard(app, token, allowed_hosts, refusal=REFUSAL)
