"""Blind human judging in the browser: `brie-bench judge RUN --web --name NAME`.

A person compares a stored run's answers side by side on a local page; each
verdict is stored as a judgment of the human judge NAME in the same run, with
the same seeded assignment and the same unblinding as every other judge, so
it enters the report's agreement section beside the LLM judges. Needs the
``web`` extra (Starlette and uvicorn): ``pip install "brie-bench[web]"``.
"""

from __future__ import annotations

__all__ = ["JudgingSession", "create_app", "serve"]


def __getattr__(name: str) -> object:
    """Import lazily, so `brie-bench --help` works without the web extra installed."""
    if name == "JudgingSession":
        from brie_bench.web.session import JudgingSession

        return JudgingSession
    if name == "create_app":
        from brie_bench.web.app import create_app

        return create_app
    if name == "serve":
        from brie_bench.web.server import serve

        return serve
    raise AttributeError(name)
