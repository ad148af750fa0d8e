"""Serve one person's judging page with uvicorn on a socket bound before the URL is printed.

The socket is bound first so the printed URL (with its random token) is
already reachable, and ``--port 0`` can pick a free port. The access log is
off: its lines would carry the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable

import uvicorn

from brie_bench.web.app import Guard, create_app
from brie_bench.web.session import JudgingSession

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def serve(session: JudgingSession, *, host: str = LOOPBACK, port: int = 8765, idle_exit_s: float = 0.0,
          say: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C (or `idle_exit_s` seconds without a request, when above 0)."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    token = secrets.token_urlsafe(24)
    hosts = {f"{url_host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"} if is_loopback(host) else None
    app = create_app(session, token=token, allowed_hosts=hosts)
    say(f"http://{url_host}:{port}/?token={token}")
    progress = session.progress()
    say(f"judging run {session.run_id} ({session.suite_name}) as {session.name}: {progress.judged} of "
        f"{progress.total} comparisons judged. Open the URL above; Ctrl-C stops (every verdict is stored at once).")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False)
    server = uvicorn.Server(config)

    async def idle_watch(guard: Guard) -> None:
        while not server.should_exit:
            await asyncio.sleep(min(1.0, idle_exit_s))
            if time.monotonic() - guard.last_request > idle_exit_s:
                say(f"no request for {idle_exit_s:g} s: stopping")
                server.should_exit = True

    async def main() -> None:
        watcher = asyncio.create_task(idle_watch(app)) if idle_exit_s > 0 else None
        try:
            await server.serve(sockets=[sock])
        finally:
            if watcher is not None:
                watcher.cancel()
            sock.close()

    asyncio.run(main())
