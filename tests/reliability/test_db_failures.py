"""A full disk or a read-only database: a clear error, and nothing already stored is lost.

The real conditions are made in a private mount namespace (`unshare -rm`, no effect
outside the child process): a tiny tmpfs that fills up mid-run (ENOSPC, SQLite's
"database or disk is full"), and a read-only bind mount (EROFS; chmod would not stop
root, which is who runs these tests). Where namespaces are not allowed those tests
skip, and the disk-full path is still exercised in-process with SQLite's
`max_page_count`, which makes the same error.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
from rich.console import Console

from brie_bench import store as store_module
from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.store import Store, StoreWriteError
from brie_bench.suite import load_suite
from hostile.kit import integrity, loopback, loopback_suite, query, responder_for, store_digest, summary, \
    write_suite

LONG = " and so on" * 300  # about 3 KB per answer, so a few answers fill a small disk


@lru_cache(maxsize=1)
def namespaces_work() -> bool:
    """Can this machine give a child process its own mounts (to make tmpfs and read-only binds)?"""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null "
                            "|| mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True, timeout=30)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not namespaces_work(), reason="cannot unshare a mount namespace here "
                                      "(needs unprivileged user namespaces or root)")


def in_namespace(script: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (its mounts vanish with it)."""
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, COLUMNS="200"))


def cli(*args: str) -> str:
    return " ".join([sys.executable, "-m", "brie_bench", *args])


def long_answers() -> Any:
    base = responder_for()

    def respond(call: Any) -> Any:
        answer = base(call)
        return answer if "<response_a>" in call.prompt else answer + LONG

    return respond


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with loopback(long_answers(), max_lifetime_s=300) as srv:
        yield srv


@pytest.fixture(scope="module")
def filled_disk(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished run A on a tiny disk, then run B until the disk is full; the files copied back out."""
    if not namespaces_work():
        pytest.skip("cannot unshare a mount namespace here")
    tmp = tmp_path_factory.mktemp("diskfull")
    suite_a = write_suite(tmp / "a.yaml", loopback_suite(server, name="run-a",
                                                         prompt_texts=[f"Run A asks {i}" for i in range(4)]))
    suite_b = write_suite(tmp / "b.yaml", loopback_suite(server, prompts=40, name="run-b",
                                                         limits={"max_concurrency": 8}))
    db_a = tmp / "a.db"
    assert execute_run(load_suite(suite_a), load_plugins(None), db=str(db_a), console=Console(file=io.StringIO())) == 0
    before = store_digest(db_a)
    # Room for the file, its 32 KB shared-memory index and a few dozen more pages: run B fills it.
    # (Each unit writes three small transactions to the WAL: its lease, its row, the lease's release.)
    size_k = db_a.stat().st_size // 1024 + 32 + 224
    (tmp / "disk").mkdir()
    (tmp / "out").mkdir()
    script = (f"mount -t tmpfs -o size={size_k}k tmpfs disk && cp a.db disk/x.db && "
              f"{{ {cli('--db', 'disk/x.db', 'run', 'b.yaml')}; echo $? > out/rc; }}; "
              f"cp disk/x.db* out/")
    result = in_namespace(script, tmp)
    return {"tmp": tmp, "result": result, "rc": int((tmp / "out" / "rc").read_text()), "before": before,
            "db": tmp / "out" / "x.db", "suite_b": suite_b}


@needs_namespaces
def test_disk_full_keeps_everything_stored_and_a_rerun_continues(filled_disk: dict[str, Any]) -> None:
    db, result = filled_disk["db"], filled_disk["result"]
    assert filled_disk["rc"] == 1, result.stdout + result.stderr
    # (Whether that is the only line is the next test's business.)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: database ")]
    assert len(errors) == 1, result.stderr
    assert "the disk is full" in errors[0] and "rerun" in errors[0], errors[0]
    assert integrity(db) == "ok"
    # Run A, finished before the disk filled, is all there.
    after = store_digest(db)
    a_id = query(db, "SELECT id FROM runs WHERE suite_name='run-a'")[0]["id"]
    a_judgments = query(db, "SELECT unit_key, verdict, winner, label_a FROM judgments WHERE run_id=? ORDER BY unit_key",
                        a_id)
    assert [(j["unit_key"], j["verdict"], j["winner"], j["label_a"]) for j in a_judgments] == \
        [(j["unit_key"], j["verdict"], j["winner"], j["label_a"]) for j in filled_disk["before"]["judgments"]]
    assert {g["key"] for g in filled_disk["before"]["generations"]} <= {g["key"] for g in after["generations"]}
    # Run B stopped part-way; what it committed is whole, and a rerun with space does only the rest.
    partial = len(after["generations"]) - len(filled_disk["before"]["generations"])
    assert 0 < partial < 80
    rerun = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(filled_disk["suite_b"])],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = summary(rerun.stdout)
    assert counts["gen_cached"] == partial and counts["gen_new"] == 80 - partial and counts["judg_new"] == 40
    assert len(query(db, "SELECT id FROM runs WHERE suite_name='run-b'")) == 1  # resumed, not restarted


@needs_namespaces
def test_disk_full_error_is_one_line_without_a_traceback(filled_disk: dict[str, Any]) -> None:
    # While the engine lets the store errors of sibling tasks (units in flight when the disk
    # filled) escape asyncio.run() as "unhandled exception during asyncio.run() shutdown"
    # tracebacks, this fails in most runs (how many siblings are caught mid-write is timing);
    # once the engine gathers and retrieves every task's outcome, it passes in all of them.
    stderr = filled_disk["result"].stderr
    assert "Traceback" not in stderr, stderr[:3000]
    assert len(stderr.strip().splitlines()) == 1, stderr[:3000]


def test_disk_full_in_process_keeps_committed_units(server: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same failure without namespaces: SQLite's max_page_count caps the file mid-run."""
    suite = write_suite(tmp_path / "s.yaml", loopback_suite(server, prompts=30, limits={"max_concurrency": 2}))
    db = tmp_path / "cap.db"
    original = store_module.SQLiteStore.__init__

    def capped(self: Store, path: Any, *, readonly: bool = False) -> None:
        original(self, path, readonly=readonly)
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        self.conn.execute(f"PRAGMA max_page_count = {pages + 12}")

    monkeypatch.setattr(store_module.SQLiteStore, "__init__", capped)
    with pytest.raises(StoreWriteError, match="the disk is full.*Everything stored before this is kept"):
        execute_run(load_suite(suite), load_plugins(None), db=str(db), console=Console(file=io.StringIO()))
    monkeypatch.undo()
    assert integrity(db) == "ok"
    stored = len(query(db, "SELECT key FROM generations"))
    assert 0 < stored < 60
    out = io.StringIO()
    assert execute_run(load_suite(suite), load_plugins(None), db=str(db),
                       console=Console(file=out, width=300)) == 0
    counts = summary(out.getvalue())
    assert counts["gen_cached"] == stored and counts["gen_new"] == 60 - stored and counts["judg_new"] == 30


@needs_namespaces
def test_read_only_database_refuses_runs_clearly_and_still_reads(server: Any, tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", loopback_suite(server, prompts=3))
    (tmp_path / "ro").mkdir()
    db = tmp_path / "ro" / "x.db"
    assert execute_run(load_suite(suite), load_plugins(None), db=str(db), console=Console(file=io.StringIO())) == 0
    write_suite(tmp_path / "more.yaml", loopback_suite(server, prompts=5, name="more"))
    before = db.read_bytes()
    script = ("mount --bind ro ro && mount -o remount,bind,ro ro && "
              "{ touch ro/probe 2>/dev/null && echo STILL-WRITABLE; true; } && "
              f"{cli('--db', 'ro/x.db', 'run', 'more.yaml')}; echo \"run-exit=$?\"; "
              f"{cli('--db', 'ro/x.db', 'runs')}; echo \"runs-exit=$?\"")
    result = in_namespace(script, tmp_path)
    out, err = result.stdout, result.stderr
    assert "STILL-WRITABLE" not in out, "the bind mount is not read-only"
    # Running (which writes) fails at once with one clear line and exit code 2 ...
    assert "run-exit=2" in out, out + err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "--db" in lines[0], err
    assert "Traceback" not in err
    # ... while reading the same file works, and the file is untouched.
    assert "runs-exit=0" in out and "complete" in out, out + err
    assert db.read_bytes() == before
    assert integrity(db) == "ok" and len(query(db, "SELECT * FROM judgments")) == 3


def test_read_only_open_of_a_missing_database_is_an_input_error(tmp_path: Path) -> None:
    from brie_bench.errors import InputError

    with pytest.raises(InputError, match="database not found"):
        Store(tmp_path / "nope.db", readonly=True)
