"""Small helpers shared by tests (imported as `helpers`)."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite

FIXTURE_PLUGINS = Path(__file__).parent / "fixture_plugins"
SMOKE_SUITE = Path(__file__).parent.parent / "suites" / "smoke.yaml"


def hello_command_plugin(message: str, doc: str | None = None) -> str:
    """The source of a plugin that adds a `hello` command echoing `message` (plugins adding commands)."""
    docline = f"        '''{doc}'''\n" if doc else ""
    return ("import click\n"
            "from brie_bench.api import hookimpl\n\n"
            "@hookimpl\n"
            "def register_commands(cli):\n"
            "    @cli.command()\n"
            "    def hello():\n"
            f"{docline}"
            f"        click.echo({message!r})\n")


def run_smoke_cli(db: Path, cache: Path) -> None:
    """`brie-bench run suites/smoke.yaml` in a subprocess, as a user runs it, with the tiny models in `cache`."""
    env = dict(os.environ, BRIE_BENCH_CACHE=str(cache), COLUMNS="200")
    run = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(SMOKE_SUITE)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def two_judge_suite() -> dict[str, Any]:
    """Eight single-order prompts and three both-order prompts, judged by a content judge and a pure-'A' judge."""
    return scripted_suite(
        judges={"marker": {"type": "marker"}, "fixed": {"type": "fixed"}},
        sections=[{"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(8)]},
                  {"name": "brainstorm", "prompts": [f"Ideas for thing {i}" for i in range(3)], "orders": "both"}])


def scripted_suite(*, judges: dict[str, Any] | None = None, sections: list[dict[str, Any]] | None = None,
                   contenders: dict[str, Any] | None = None, seed: int = 11, **defaults: Any) -> dict[str, Any]:
    """A suite over the scripted test backend; the candidate's answers carry a marker '*'."""
    return {
        "name": "scripted",
        "seed": seed,
        "contenders": contenders or {
            "baseline": {"backend": "scripted", "model": "base"},
            "brie": {"backend": "scripted", "model": "base", "options": {"marker": "*", "style": "long"}},
        },
        "judges": judges if judges is not None else {"marker": {"type": "marker"}},
        "defaults": defaults,
        "sections": sections or [
            {"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(4)]},
            {"name": "brainstorm", "prompts": [f"Ideas for thing {i}" for i in range(3)], "orders": "both"},
        ],
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_suite(path: Path, db: Path, **kwargs: Any) -> int:
    from rich.console import Console

    registry = load_plugins(FIXTURE_PLUGINS)
    return execute_run(load_suite(path), registry, db=str(db), console=Console(quiet=True), **kwargs)


def generation_texts(db: Path) -> dict[str, str]:
    """Every stored answer by its generation key."""
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT key, text FROM generations"))
    finally:
        conn.close()


def crashed_copy(full: Path, dest: Path, keep_generations: int) -> Path:
    """A "crashed" store made from `full`: its schema and version, and only its first `keep_generations` answers by key."""
    conn = sqlite3.connect(dest)
    try:
        conn.execute(f"ATTACH DATABASE '{full}' AS src")
        tables = "SELECT sql FROM src.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        for (sql,) in conn.execute(tables).fetchall():
            conn.execute(sql)
        conn.execute("INSERT INTO meta SELECT * FROM src.meta")  # the schema version: a crash keeps it
        conn.execute("INSERT INTO generations SELECT * FROM src.generations ORDER BY key LIMIT ?", (keep_generations,))
        conn.commit()
    finally:
        conn.close()
    return dest


def rows(db: Path, query: str, *args: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def chat_request(prompt: str = "Say something wise.", system: str | None = None, **params: Any):
    """A GenerationRequest with an optional system prompt; `params` are SamplingParams fields."""
    from brie_bench.records import GenerationRequest, Message, SamplingParams

    msgs = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    return GenerationRequest(messages=tuple(msgs), params=SamplingParams(**params))


def run_backend(backend: Any, fn: Any) -> Any:
    """Run `fn(backend)` in a fresh event loop, then close the backend's client."""
    import asyncio

    async def main() -> Any:
        try:
            return await fn(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


@contextmanager
def app_served(make_app: Any, *, extra_hosts: tuple[str, ...] = (), keep_logging: bool = False,
               lifespan: str = "on") -> Iterator[int]:
    """A Starlette app on a free loopback port, in a thread; yields the port (stopped and joined on exit).

    `make_app(allowed_hosts)` builds the app once the port is known; `extra_hosts` are further
    Host names it accepts besides 127.0.0.1. `keep_logging` leaves logging alone (uvicorn's
    `log_config=None`) so a test's own handler on uvicorn.error keeps seeing server errors.
    """
    import threading
    import time

    import uvicorn

    from brie_bench.web.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = make_app({f"{h}:{port}" for h in ("127.0.0.1", *extra_hosts)})
    extra: dict[str, Any] = {"log_config": None} if keep_logging else {}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan, **extra))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@contextmanager
def judging_app_served(session: Any, token: str, *, extra_hosts: tuple[str, ...] = (),
                       keep_logging: bool = False) -> Iterator[int]:
    """The browser judging app for `session` (`app_served`); yields the port."""
    from brie_bench.web.app import create_app

    with app_served(lambda hosts: create_app(session, token=token, allowed_hosts=hosts),
                    extra_hosts=extra_hosts, keep_logging=keep_logging) as port:
        yield port


def chromium_path() -> str | None:
    """Debian's Chromium (or another Chrome on PATH) for the Playwright tests, which never download a browser."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM_MISSING = "Chromium not found (apt-get install chromium); .ci/run installs it"


def human_calibrated_example() -> tuple[list[Any], dict[tuple[str, str], Any]]:
    """Judge entries and collapsed comparisons for `human_calibrated_blocks`: an LLM judge on 120 prompts
    that agrees with people 85% of the time, and one person ("ann") on 40 of them."""
    import numpy as np

    from types import SimpleNamespace

    from brie_bench.report.model import Comparisons
    from brie_bench.report.rows import ItemKey

    rng = np.random.default_rng(4)
    k = 120
    keys = [ItemKey("s", f"p{i}", 0, "base", "ft", prompt_key=f"prompt {i}") for i in range(k)]
    truth = np.where(rng.random(k) < 0.6, 1.0, 0.0)
    llm = np.where(rng.random(k) < 0.85, truth, 1.0 - truth)
    seen = rng.choice(k, 40, replace=False)
    clusters = np.arange(k)
    units = {("ft", "gpt"): Comparisons(keys, llm, clusters, np.ones(k), np.ones(k), []),
             ("ft", "ann"): Comparisons([keys[i] for i in seen], truth[seen], clusters[seen], np.ones(40), np.ones(40),
                                        [])}
    entries = [SimpleNamespace(judge="gpt", candidate="ft", judge_type="llm", information=SimpleNamespace(statement=None)),
               SimpleNamespace(judge="ann", candidate="ft", judge_type="human",
                               information=SimpleNamespace(statement=None))]
    return entries, units


def form_request(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    """(status, text) of one request to 127.0.0.1:`port`, a POST body sent as a form."""
    import http.client
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = urlencode(body).encode() if body is not None else None
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/x-www-form-urlencoded"} if data else {})
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, text


def synthetic_run(db: Path, judgments: int, seed: int) -> str:
    """A synthetic run of about `judgments` judgments, made through the store's public methods by
    the scale benchmark's own builder (`benchmarks/report_scale.build`); returns its run id."""
    spec = importlib.util.spec_from_file_location("report_scale", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "report_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("report_scale", module)
    spec.loader.exec_module(module)
    return str(module.build(db, judgments, seed=seed))
