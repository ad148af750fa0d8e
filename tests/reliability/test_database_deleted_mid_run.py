"""The database deleted (or replaced) during a run.

SQLite goes on writing into a deleted file without a word, so the run used to print
"40 new ... 20 new" and exit 0 with every result gone, leaving a 0-byte file behind.
Now the next commit finds the path no longer names the file it opened: the run stops
with one line naming the database, exit 2, reports no counts, and leaves nothing at
the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile.kit import loopback, loopback_suite, model_calls, write_suite


def start(db: Path, suite: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))


def wait_for_calls(srv: object, n: int) -> None:
    deadline = time.monotonic() + 120
    while len(model_calls(srv)) < n and time.monotonic() < deadline:  # type: ignore[arg-type]
        time.sleep(0.02)


def assert_stopped_naming_the_database(proc: subprocess.Popen, db: Path, word: str) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(db) in lines[0] and word in lines[0], lines[0]
    assert "generations:" not in out, "the run reported counts that are not stored anywhere"


@pytest.mark.timeout(180)
def test_deleting_the_database_and_its_wal_mid_run_stops_with_one_line_and_exit_2(tmp_path: Path) -> None:
    with loopback(latency_s=0.2, max_lifetime_s=170) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=12, limits={"max_concurrency": 2}))
        db = tmp_path / "brie-bench.db"
        proc = start(db, suite)
        wait_for_calls(srv, 4)  # some answers stored, more in flight
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        assert_stopped_naming_the_database(proc, db, "deleted")
    assert not db.exists(), f"something left a {db.stat().st_size}-byte file where the database was"


@pytest.mark.timeout(180)
def test_replacing_the_database_file_mid_run_stops_with_one_line_and_exit_2(tmp_path: Path) -> None:
    with loopback(latency_s=0.2, max_lifetime_s=170) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=12, limits={"max_concurrency": 2}))
        db = tmp_path / "brie-bench.db"
        proc = start(db, suite)
        wait_for_calls(srv, 4)
        shutil.copyfile(db, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", db)  # another file at the same path: writes to the old one are lost
        assert_stopped_naming_the_database(proc, db, "replaced")
