"""The browser judging page under the hostile requests that once broke it, one test per case.

Real HTTP on 127.0.0.1 against the real app (uvicorn in a thread, or the
`brie-bench judge` command in a subprocess), a real SQLite file, and a real
write lock taken by another connection.
"""

from __future__ import annotations

import http.client
import logging
import math
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from brie_bench.web.app import BUSY_TIMEOUT_S, latency
from brie_bench.web.server import is_loopback
from brie_bench.web.session import MAX_LATENCY_S, JudgingSession
from helpers import judging_app_served, rows, run_suite, scripted_suite, write_yaml


@pytest.fixture
def run_db(tmp_path: Path) -> Path:
    """A finished scripted run: 2 + 2×2 = 6 comparisons for a person to judge."""
    data = scripted_suite(judges={"marker": {"type": "marker"}},
                          sections=[{"name": "philosophy", "prompts": ["What is being?", "What is time?"]},
                                    {"name": "brainstorm", "prompts": ["Ideas for a bench", "Ideas for a cheese"],
                                     "orders": "both"}])
    db = tmp_path / "j.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", data), db) == 0
    return db


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs at ERROR (an exception in the app: a traceback), whatever logging config ran before."""
    handler = Records()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@contextmanager
def served(db: Path, name: str = "alice") -> Iterator[tuple[int, str, JudgingSession]]:
    session = JudgingSession(str(db), None, name)
    token = "test-token-" + "x" * 20
    try:
        # keep_logging: uvicorn leaves logging alone, so `server_errors` keeps its handler on uvicorn.error.
        with judging_app_served(session, token, keep_logging=True) as port:
            yield port, token, session
    finally:
        session.close()


def request(port: int, method: str, path: str, *, body: dict | str | None = None,
            headers: dict | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = (body if isinstance(body, str) else urlencode(body)).encode() if body is not None else None
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
    conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text


def page_fields(port: int, token: str) -> dict[str, str]:
    html = request(port, "GET", f"/?token={token}")[2]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def test_web_post_with_eleven_form_fields_is_a_clean_400_not_a_500(run_db: Path, server_errors) -> None:
    with served(run_db) as (port, token, _):
        fields = page_fields(port, token)
        eleven = {"csrf": fields["csrf"], "unit": fields["unit"], "choice": "A",
                  **{f"x{i}": "1" for i in range(8)}}
        assert len(eleven) == 11
        for path in ("/verdict", "/undo"):
            status, headers, text = request(port, "POST", f"{path}?token={token}", body=eleven)
            assert status == 400 and text == "bad request: the judging page posts at most 10 form fields\n"
            assert headers["content-type"].startswith("text/plain")
        big = {"csrf": fields["csrf"], "unit": fields["unit"], "choice": "A", "pad": "x" * 5000}
        assert request(port, "POST", f"/verdict?token={token}", body=big)[0] == 413
        ten = {**eleven}
        ten.pop("x7")
        assert request(port, "POST", f"/verdict?token={token}", body=ten)[0] == 303  # ten fields are fine
    assert server_errors == []  # no traceback logged
    assert len(rows(run_db, "SELECT * FROM judgments WHERE judge='alice'")) == 1


@pytest.mark.parametrize("shown_at", ["-inf", "nan", "inf", "-1e308", "1e308", "-Infinity", "9" * 400, "abc", ""])
def test_web_shown_at_that_is_not_a_believable_time_stores_no_latency(run_db: Path, shown_at: str) -> None:
    with served(run_db) as (port, token, _):
        fields = page_fields(port, token)
        post = {"csrf": fields["csrf"], "unit": fields["unit"], "choice": "A", "shown_at": shown_at}
        assert request(port, "POST", f"/verdict?token={token}", body=post)[0] == 303
        fields = page_fields(port, token)  # a genuine shown_at still gives a latency
        real = {"csrf": fields["csrf"], "unit": fields["unit"], "choice": "B", "shown_at": fields["shown_at"]}
        assert request(port, "POST", f"/verdict?token={token}", body=real)[0] == 303
    stored = {r["unit_key"]: r["latency_s"] for r in rows(run_db, "SELECT * FROM judgments WHERE judge='alice'")}
    assert stored[post["unit"]] is None  # the verdict is kept, its latency unknown
    assert stored[real["unit"]] is not None and 0 <= stored[real["unit"]] < 60


def test_latency_is_never_stored_non_finite_whatever_the_caller_passes(run_db: Path) -> None:
    now = 1_700_000_000.0
    assert latency(str(now - 3), now) == 3.0 and latency(str(now + 2), now) == 0.0  # a little clock skew
    assert latency(str(now + 3600), now) is None and latency("-1e308", now) is None
    session = JudgingSession(str(run_db), None, "bob")
    try:
        for unit, seconds in zip(session.units, (math.inf, -math.inf, math.nan, -1.0, MAX_LATENCY_S + 1, 2.5)):
            session.record(unit.key, "A", seconds=seconds)
    finally:
        session.close()
    assert sorted(r["latency_s"] is None for r in rows(run_db, "SELECT * FROM judgments WHERE judge='bob'")) == \
        [False] + [True] * 5


def test_web_write_lock_held_by_another_program_gives_a_quick_503_and_the_page_keeps_serving(
        run_db: Path, server_errors) -> None:
    with served(run_db) as (port, token, _):
        fields = page_fields(port, token)
        post = {"csrf": fields["csrf"], "unit": fields["unit"], "choice": "A", "shown_at": fields["shown_at"]}
        other = sqlite3.connect(run_db, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        try:
            answer: dict[str, object] = {}

            def post_verdict() -> None:
                started = time.monotonic()
                answer["result"] = request(port, "POST", f"/verdict?token={token}", body=post)
                answer["seconds"] = time.monotonic() - started

            writer = threading.Thread(target=post_verdict)
            writer.start()
            time.sleep(0.3)  # the verdict is now waiting for the lock
            started = time.monotonic()
            assert request(port, "GET", "/?token=wrong")[0] == 403  # the event loop is not frozen
            assert time.monotonic() - started < 1.0
            status, _, html = request(port, "GET", f"/?token={token}")  # reads go on (WAL)
            assert status == 200 and "Comparison <b>1</b> of 6" in html
            writer.join(30)
            status, headers, text = answer["result"]  # type: ignore[misc]
            assert status == 503 and headers["retry-after"] == "2" and text.startswith("busy: ")
            assert answer["seconds"] < BUSY_TIMEOUT_S + 3  # not SQLite's 30 s
        finally:
            other.rollback()
            other.close()
        assert rows(run_db, "SELECT * FROM judgments WHERE judge='alice'") == []
        assert request(port, "POST", f"/verdict?token={token}", body=post)[0] == 303  # lock gone: stored
    assert len(rows(run_db, "SELECT * FROM judgments WHERE judge='alice'")) == 1
    assert server_errors == []


def judge_cli(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "judge", "--web", "--name",
                             "alice", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def test_web_suite_name_control_characters_are_escaped_on_the_printed_line(run_db: Path) -> None:
    conn = sqlite3.connect(run_db)
    with conn:
        conn.execute("UPDATE runs SET suite_name = ?", ("evil\x1b]0;owned\x07\x1b[2J\u202e",))
    conn.close()
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(run_db), "judge", "--web", "--name",
                           "alice", "--port", "0", "--idle-exit", "0.5"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    second = done.stdout.splitlines()[1]
    assert "(evil\\x1b]0;owned\\x07\\x1b[2J\\u202e)" in second
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", done.stdout + done.stderr)


@pytest.mark.parametrize("host", ["127.1", "127.0.0.1", "0x7f.0.0.1", "2130706433", "0177.0.0.1", "127.9.9.9",
                                  "localhost", "LocalHost.", "::1", "[::1]", "0:0:0:0:0:0:0:1",
                                  "::ffff:127.0.0.1"])
def test_every_loopback_spelling_is_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "127.0.0.1 evil", "localhost.evil",
                                  "example.com", "", "1.2.3.4.5"])
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host, url_host", [
    ("127.1", "127.0.0.1"),
    pytest.param("0:0:0:0:0:0:0:1", "::1",
                 marks=pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")),
])
def test_web_host_127_1_keeps_the_host_check_and_warns_of_no_network(run_db: Path, host: str, url_host: str) -> None:
    proc = judge_cli(run_db, "--host", host, "--idle-exit", "30")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        parts = urlsplit(proc.stdout.readline().strip())
        assert parts.hostname == url_host and parts.port is not None
        family = socket.AF_INET6 if ":" in url_host else socket.AF_INET
        assert request_to(family, url_host, parts.port, f"/?{parts.query}", f"evil.example:{parts.port}") == 403
        assert request_to(family, url_host, parts.port, f"/?{parts.query}", parts.netloc) == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning" not in err and "network" not in err


def request_to(family: int, host: str, port: int, path: str, host_header: str) -> int:
    """A GET with a chosen Host header, over IPv4 or IPv6 loopback."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect((host, port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])
