"""A gzip bomb from a provider, and the response cap it needs.

A response of 1 MB on the wire that inflates to 1 GiB was read whole: one call took the
process to 3.2 GB, and at the default concurrency of 8 the run was killed for memory.
The provider backends now read every response through `capped_response_hooks`: it is
decoded in bounded steps and refused past `max_response_mb` (default 32 MiB). Each test
runs a real `brie-bench run` in a subprocess against a loopback server on 127.0.0.1 and
reads that process's own peak RSS (VmHWM, sampled while it runs).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers import FIXTURE_PLUGINS
from hostile.kit import query, write_suite

GIB = 1 << 30


def gzip_bomb(inflated: int = GIB) -> bytes:
    """A valid gzip body of about 1 MB that inflates to `inflated` zero bytes (built in well under a second).

    Deflating zeros with a sync flush after each MiB gives the same bytes for every MiB after
    the first, so one MiB is compressed and its output repeated; the trailer (CRC-32, size)
    is computed for the whole.
    """
    mib = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(mib) + deflate.flush(zlib.Z_SYNC_FLUSH)
    rest = deflate.compress(mib) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert rest == deflate.compress(mib) + deflate.flush(zlib.Z_SYNC_FLUSH)  # the steady state repeats
    end = deflate.flush(zlib.Z_FINISH)
    count = inflated // len(mib)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(mib, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + first + rest * (count - 1) + end + struct.pack("<II", crc, inflated & 0xFFFFFFFF)


@contextmanager
def provider(body: bytes, headers: dict[str, str]) -> Iterator[str]:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers every POST with `body`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            for name, value in {**headers, "content-length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass  # the client refused the rest: that is the point

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def suite_for(url: str, **options: Any) -> dict[str, Any]:
    contender = {"backend": "openai", "model": "bomb", "options": {"base_url": url, "require_key": False, **options}}
    return {"name": "bomb", "seed": 1, "baseline": "baseline",
            "contenders": {"baseline": contender, "brie": {**contender, "model": "bomb-2"}},
            "judges": {"fixed": {"type": "fixed"}},
            "sections": [{"name": "s", "prompts": ["Say hello.", "Say goodbye."]}]}


def _high_water(pid: int) -> int | None:
    """The process's own peak resident set (VmHWM) in bytes, or None once it has no memory left to read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None  # a zombie: exited, not yet reaped


def run_measured(db: Path, suite: Path) -> tuple[int, str, int]:
    """(exit code, output, peak RSS in bytes) of `brie-bench run` in a subprocess.

    The peak is read from the child's own /proc status (VmHWM) while it runs, not from
    `wait4`'s ru_maxrss: Linux carries the parent's high-water mark into a child across
    fork and exec, so inside a long pytest process ru_maxrss reports the test runner's
    size (over 1 GiB late in the suite), not the run's.
    """
    log = db.with_suffix(".out")
    peak = 0
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "--plugins-dir",
                                 str(FIXTURE_PLUGINS), "run", str(suite)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, COLUMNS="200"))
        while (seen := _high_water(proc.pid)) is not None:
            peak = max(peak, seen)
            time.sleep(0.01)
        code = proc.wait(timeout=60)
    return code, log.read_text(encoding="utf-8"), peak


@pytest.mark.timeout(180)
def test_a_gzip_bomb_is_refused_as_a_recorded_error_under_500_mb_peak_rss(tmp_path: Path) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 1_100_000
    with provider(bomb, {"content-type": "application/json", "content-encoding": "gzip"}) as url:
        suite = write_suite(tmp_path / "suite.yaml", suite_for(url))
        code, output, peak = run_measured(tmp_path / "db.sqlite", suite)
    assert code == 1, output  # the calls failed; the run did not
    assert "Traceback" not in output
    assert peak < 500 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
    errors = query(tmp_path / "db.sqlite", "SELECT kind, final, message FROM errors")
    assert len(errors) == 4 and all(e["final"] == 1 for e in errors), errors  # refused once, never retried
    assert all(e["kind"] == "malformed" and "max_response_mb (32 MiB)" in e["message"] for e in errors), errors
    assert not query(tmp_path / "db.sqlite", "SELECT * FROM generations")


@pytest.mark.timeout(180)
def test_max_response_mb_refuses_a_plain_answer_larger_than_it(tmp_path: Path) -> None:
    body = b'{"id": "x", "pad": "' + b"z" * (3 << 20) + b'"}'
    with provider(body, {"content-type": "application/json"}) as url:
        suite = write_suite(tmp_path / "suite.yaml", suite_for(url, max_response_mb=1))
        code, output, _ = run_measured(tmp_path / "db.sqlite", suite)
    assert code == 1, output
    errors = query(tmp_path / "db.sqlite", "SELECT kind, message FROM errors")
    assert errors and all("max_response_mb (1 MiB)" in e["message"] for e in errors), errors
