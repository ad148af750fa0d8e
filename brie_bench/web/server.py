"""Serve one person's judging page with uvicorn on a socket bound before the URL is printed.

The socket is bound first so the printed URL (with its random token) is
already reachable, and ``--port 0`` can pick a free port. The access log is
off: its lines would carry the token.

On a loopback address the page also checks the Host header (DNS rebinding), so
what counts as loopback must not depend on how it is spelled: ``127.1``,
``0x7f.0.0.1``, ``2130706433``, ``localhost``, ``[::1]`` and
``0:0:0:0:0:0:0:1`` all are (`is_loopback`), and so is any address the socket
really bound to in 127.0.0.0/8 or ::1.

Stopping: Ctrl-C, SIGTERM and SIGHUP stop the server gracefully (`_Server`), and
`serve` then raises `Interrupted` for that signal, so the command can say what
the person stored and how to resume, and exit 130, 143 or 129 like `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from brie_bench.signals import STOP_SIGNALS, Interrupted
from brie_bench.textsafe import printable
from brie_bench.web.app import create_app
from brie_bench.web.guard import Guard
from brie_bench.web.session import JudgingSession

LOOPBACK = "127.0.0.1"
#: What `inet_aton` reads as an IPv4 address: one to four parts, each decimal, octal (0...) or hex (0x...).
#: Checked first because glibc's inet_aton also accepts text after a space ("127.0.0.1 evil").
_INET_ATON = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def network_warning(host: str, exposure: str) -> str | None:
    """The one-line warning when `host` is not loopback: who can reach the page and what they could do."""
    if is_loopback(host):
        return None
    return (f"warning: listening on {host}: anyone who can reach it and has the URL's token can {exposure}; "
            "stay on 127.0.0.1 unless you need the network")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only, however it is spelled.

    `localhost` (any case, with or without the final dot); every IPv4 spelling
    that `inet_aton` (and so `bind`) accepts, in 127.0.0.0/8; ``::1`` in any
    IPv6 form, bracketed or not, and IPv4-mapped loopback (``::ffff:127.0.0.1``).
    """
    name = _unbracket(host.strip()).lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if _INET_ATON.fullmatch(name) is None:
            return False
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def bind(host: str, port: int) -> socket.socket:
    host = _unbracket(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by every stop signal, which it remembers instead of re-raising.

    uvicorn re-raises the signal it caught once it has shut down, through whatever
    handler was there before: when SIGINT is ignored (a job started in the background)
    the process ended with exit 0 and not a word. Here `serve` raises `Interrupted`
    itself, after the shutdown, so the outcome does not depend on inherited handlers.
    """

    stop_signal: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._stop) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.should_exit = True
        else:
            self.force_exit = True  # a second signal: stop waiting for open connections


def serve(session: JudgingSession, *, host: str = LOOPBACK, port: int = 8765, idle_exit_s: float = 0.0,
          say: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C (or `idle_exit_s` seconds without a request, when above 0).

    Returns after an idle stop; raises `Interrupted` (after a graceful shutdown) when
    a stop signal ended it.
    """
    sock, url_host, port, hosts = listen(host, port)
    token = secrets.token_urlsafe(24)
    app = create_app(session, token=token, allowed_hosts=hosts)
    say(f"http://{url_host}:{port}/?token={token}")
    progress = session.progress()
    # The run id, suite name and person's name come from the database and the command line: shown, not obeyed.
    draw = session.sample
    sampled = "" if draw is None else (
        f" (a random sample of {len(draw.prompts)} of {draw.available} prompts)" if draw.n < draw.available
        else f" (all {draw.available} prompts: --sample {draw.n} asks for at least as many as the run has)")
    say(printable(f"judging run {session.run_id} ({session.suite_name}) as {session.name}: {progress.judged} of "
                  f"{progress.total} comparisons judged{sampled}. Open the URL above; Ctrl-C stops "
                  "(every verdict is stored at once)."))
    run_app(app, sock, idle_exit_s=idle_exit_s, say=say)


def listen(host: str, port: int) -> tuple[socket.socket, str, int, set[str] | None]:
    """Bind `host`:`port`; returns the socket, the host as the URL names it, the port, and the Host values to accept.

    The URL names the address really bound (127.1 is printed as 127.0.0.1), except a
    `localhost` spelled so. On loopback the accepted Host values are every spelling
    of this server a browser may send; elsewhere None (any).
    """
    sock = bind(host, port)
    bound, port = sock.getsockname()[:2]
    shown = _unbracket(host) if _unbracket(host).lower().rstrip(".") == "localhost" else bound
    url_host = f"[{shown}]" if ":" in shown else shown
    spelled = _unbracket(host)
    spelled = f"[{spelled}]" if ":" in spelled else spelled
    loopback = is_loopback(host) or is_loopback(bound)
    hosts = {f"{url_host}:{port}", f"{spelled}:{port}", f"localhost:{port}", f"127.0.0.1:{port}",
             f"[::1]:{port}"} if loopback else None
    return sock, url_host, port, hosts


def run_app(app: Guard, sock: socket.socket, *, idle_exit_s: float = 0.0,
            say: Callable[[str], None] = print) -> None:
    """Serve `app` on the bound `sock` until a stop signal (or `idle_exit_s` without a request, when above 0).

    Returns after an idle stop; raises `Interrupted` (after a graceful shutdown) when a
    stop signal ended it. Shared by the judging page and the viewer.
    """
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False)
    server = _Server(config)

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
    if server.stop_signal is not None:
        raise Interrupted(server.stop_signal)
