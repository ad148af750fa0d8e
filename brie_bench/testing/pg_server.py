"""A throw-away PostgreSQL server on 127.0.0.1, for tests and benchmarks of the PostgreSQL store.

Why it exists: the PostgreSQL store must be tested against a real server (row locks,
``SKIP LOCKED``, advisory locks and dropped sessions are where shared stores break), but
tests may not reach the network or leave servers behind. `LocalPostgres` initialises a
cluster in a temporary folder with the machine's own ``initdb``/``postgres`` binaries,
listens on 127.0.0.1 only (and a Unix socket inside that folder), and stops when its
``with`` block exits. A watchdog process stops it too if the process that started it dies
(``kill -9`` of pytest included) or after ``max_lifetime_s``, so a forgotten server never
outlives a CI run.

``initdb`` refuses to run as root: as root, the cluster belongs to the ``postgres`` user and
the binaries run through ``runuser``. The server trusts local connections (no password), so
it is only ever reachable from this machine.

Usage::

    with LocalPostgres() as pg:
        url = pg.new_database()        # postgresql://brie@127.0.0.1:PORT/brie_1
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPERUSER = "brie"
_SEARCH = ("/usr/local/bin", "/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binary could be found or started on this machine."""


def find_binaries() -> dict[str, str] | None:
    """The paths of ``initdb``, ``pg_ctl`` and ``postgres`` from one installation, or None."""
    candidates = [os.path.dirname(p) for p in filter(None, [shutil.which("initdb")])]
    for pattern in _SEARCH:
        candidates.extend(sorted(glob.glob(pattern), reverse=True))
    for folder in candidates:
        paths = {name: os.path.join(folder, name) for name in ("initdb", "pg_ctl", "postgres")}
        if all(os.access(p, os.X_OK) for p in paths.values()):
            return paths
    return None


def unavailable_reason() -> str | None:
    """One line saying why no server can be started here, or None when one can."""
    if find_binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, deadline, cmd = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), sys.argv[3:]
pidfile = os.path.join(cmd[cmd.index('-D') + 1], 'postmaster.pid')
while time.monotonic() < deadline:
    try:
        os.kill(parent, 0)
    except OSError:
        break
    if not os.path.exists(pidfile):
        sys.exit(0)  # stopped the normal way
    time.sleep(0.5)
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
shutil.rmtree(os.path.dirname(os.path.dirname(pidfile)), ignore_errors=True)
"""


class LocalPostgres:
    """One PostgreSQL cluster in a temporary folder, served on 127.0.0.1 until stopped."""

    def __init__(self, *, max_lifetime_s: float = 3600.0) -> None:
        bins = find_binaries()
        if bins is None:
            raise PostgresUnavailable(unavailable_reason() or "no PostgreSQL binaries")
        self._bins = bins
        self.max_lifetime_s = max_lifetime_s
        self.port = 0
        self.folder: Path | None = None
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._names = itertools.count(1)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")

    def start(self) -> LocalPostgres:
        self.folder = Path(tempfile.mkdtemp(prefix="brie-bench-pg-"))
        data = self.folder / "data"
        data.mkdir()
        if self._as_root:
            shutil.chown(self.folder, "postgres")
            shutil.chown(data, "postgres")
        done = self._run(self._bins["initdb"], "-D", str(data), "-A", "trust", "-U", SUPERUSER,
                         "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _ in range(5):
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200")
            done = self._run(self._bins["pg_ctl"], "-D", str(data), "-o", options, "-w", "-t", "60",
                             "-l", str(self.folder / "server.log"), "start")
            if done.returncode == 0:
                break
        else:
            raise PostgresUnavailable(f"postgres did not start: {self._log_tail()}")
        stop = [self._bins["pg_ctl"], "-D", str(data), "-m", "immediate", "stop"]
        if self._as_root:
            stop = ["runuser", "-u", "postgres", "--", *stop]
        subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.max_lifetime_s), *stop],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        return self

    def _log_tail(self) -> str:
        try:
            return (self.folder / "server.log").read_text()[-500:] if self.folder else ""
        except OSError:
            return ""

    @property
    def url(self) -> str:
        """The maintenance database's URL (``postgres``)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def new_database(self, prefix: str = "brie") -> str:
        """Create an empty database and return its URL: one per test keeps tests independent."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.folder is None:
            return
        self._run(self._bins["pg_ctl"], "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        for _ in range(50):
            if not (self.folder / "data" / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
