"""Ctrl-C (and SIGTERM) on `brie-bench judge --web`: say what was stored and how to resume, exit 130 (143).

A real `brie-bench` process is started, given verdicts over loopback HTTP, and
sent the signal, as a person's terminal would.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers import form_request, rows, run_suite, scripted_suite, write_yaml


@pytest.fixture
def run_db(tmp_path: Path) -> Path:
    data = scripted_suite(judges={"marker": {"type": "marker"}},
                          sections=[{"name": "philosophy", "prompts": ["What is being?", "What is time?"]},
                                    {"name": "brainstorm", "prompts": ["Ideas for a bench"], "orders": "both"}])
    db = tmp_path / "j.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", data), db) == 0
    return db


request = form_request


def start(db: Path, *extra: str) -> tuple[subprocess.Popen[str], int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "judge", "--web", "--name",
                             "alice", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = urlsplit(proc.stdout.readline().strip())
    assert proc.stdout.readline().startswith("judging run ")  # the server is listening (the URL came first)
    assert url.port is not None
    return proc, url.port, url.query


def judge(port: int, query: str, count: int) -> None:
    for _ in range(count):
        html = request(port, "GET", f"/?{query}")[1]
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
        assert request(port, "POST", f"/verdict?{query}",
                       {"csrf": form["csrf"], "unit": form["unit"], "choice": "B"})[0] == 303


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_says_what_was_stored_and_how_to_resume(run_db: Path, signum: int, code: int) -> None:
    proc, port, query = start(run_db, "--sample", "2")
    try:
        judge(port, query, 2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "alice stored 2 verdicts this session" in err
    (run_id,) = [r["id"] for r in rows(run_db, "SELECT id FROM runs")]
    assert len(rows(run_db, "SELECT * FROM judgments WHERE judge='alice'")) == 2
    command = err.split("To resume: ", 1)[1].strip()
    assert shlex.split(command) == ["brie-bench", "--db", str(run_db), "judge", run_id, "--web", "--name", "alice",
                                    "--sample", "2", "--port", "0"]


def test_the_resume_command_continues_where_the_person_stopped(run_db: Path) -> None:
    proc, port, query = start(run_db, "--sample", "2")
    judge(port, query, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    words = shlex.split(err.split("To resume: ", 1)[1])
    assert words[0] == "brie-bench"
    again = subprocess.Popen([sys.executable, "-m", "brie_bench", *words[1:]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert again.stdout is not None
        again.stdout.readline()
        status_line = again.stdout.readline()
        total = int(re.search(r"1 of (\d+) comparisons judged", status_line).group(1))  # type: ignore[union-attr]
        assert total >= 2  # the same two prompts: the one judged verdict is among them
    finally:
        again.send_signal(signal.SIGINT)
        _, err = again.communicate(timeout=30)
    assert again.returncode == 130 and "alice stored 0 verdicts this session, 1 of" in err
