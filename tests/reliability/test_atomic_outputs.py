"""Every file the tool writes is whole or absent, never through a link, never over the database.

The run reported on is a real legacy import (tests/fixtures/legacy) into a real
SQLite file; the commands run through the real CLI. A full disk is a real,
small tmpfs where this machine lets the test mount one, and an ENOSPC injected
halfway through the temporary file's writes either way. A writer killed
mid-write is a real subprocess stopped with SIGKILL while it is inside the
write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from brie_bench import atomic
from brie_bench.cli import cli
from brie_bench.errors import InputError

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"
ENV = {"COLUMNS": "240"}
USER_CARD = "---\nlicense: mit\n---\n\n# My model\n\n" + "My own words, which must survive. " * 8000 + "\nThe end.\n"


def invoke(*args: str, db: Path | None = None) -> Any:
    return CliRunner().invoke(cli, [*(["--db", str(db)] if db else []), *args], env=ENV)


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path, *keep: str) -> list[str]:
    """Files in `folder` other than `keep`: a failed or refused write must leave none."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture(scope="module")
def legacy_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("atomic") / "brie-bench.db"
    result = invoke("import", "legacy", str(LEGACY / "judge_claude.jsonl"), str(LEGACY / "judge_gpt4o.jsonl"), db=db)
    assert result.exit_code == 0, result.output
    return db


def db_state(db: Path) -> tuple[str, int]:
    """The database's integrity verdict and judgment count (read through SQLite, not by bytes: WAL moves them)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0], conn.execute(
            "SELECT COUNT(*) FROM judgments").fetchone()[0]
    finally:
        conn.close()


# -- the database as the output ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("export", "--csv", "-o", "brie-bench.db"),
    ("export", "--jsonl", "-o", "./brie-bench.db"),
    ("report", "--html", "./brie-bench.db"),
    ("report", "--json", "./brie-bench.db-wal"),
    ("report", "--model-card", "brie-bench.db"),
    ("report", "--markdown", "sub/../brie-bench.db-shm"),
], ids=["export-csv", "export-jsonl", "report-html", "report-json-wal", "model-card", "markdown-shm-dotdot"])
def test_an_output_path_that_is_the_database_is_refused_and_the_database_is_intact(
        legacy_db: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    monkeypatch.chdir(legacy_db.parent)
    monkeypatch.delenv("BRIE_BENCH_DB", raising=False)  # the default ./brie-bench.db is the database here
    (legacy_db.parent / "sub").mkdir(exist_ok=True)
    before = db_state(legacy_db)
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert len(errors(result.output)) == 1 and "is the database" in result.output, result.output
    assert "wrote" not in result.output and "Traceback" not in result.output
    assert db_state(legacy_db) == before and before[0] == "ok" and before[1] > 0


def test_a_hard_link_to_the_database_is_refused_too(legacy_db: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias.csv"
    os.link(legacy_db, alias)
    before = db_state(legacy_db)
    result = invoke("export", "--csv", "-o", str(alias), db=legacy_db)
    assert result.exit_code == 2 and "is the database" in result.output, result.output
    assert db_state(legacy_db) == before


# -- a full disk ------------------------------------------------------------------------------------------

def fail_halfway(monkeypatch: pytest.MonkeyPatch, room_bytes: int = 64 * 1024) -> list[int]:
    """Make the atomic writer's writes stop with ENOSPC after `room_bytes`, as a full disk does; returns bytes written."""
    written = [0]
    real = atomic._Raw.write

    def write(self: atomic._Raw, b: Any) -> int:
        room = room_bytes - written[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(self, bytes(b)[:room])
        written[0] += n
        return n

    monkeypatch.setattr(atomic._Raw, "write", write)
    return written


def test_model_card_on_a_full_disk_injected_enospc_leaves_the_card_unchanged(
        legacy_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    card = tmp_path / "README.md"
    card.write_text(USER_CARD, encoding="utf-8")
    before = digest(card)
    written = fail_halfway(monkeypatch)
    result = invoke("report", "--model-card", str(card), db=legacy_db)
    assert result.exit_code == 2, result.output
    assert errors(result.output) == [f"error: {card}: cannot write file: No space left on device"], result.output
    assert written[0] == 64 * 1024  # the write really did stop halfway through the new card
    assert digest(card) == before and leftovers(tmp_path, "README.md") == []


@pytest.mark.parametrize("flag,name", [("--html", "r.html"), ("--json", "r.json"), ("--markdown", "r.md")])
def test_report_over_an_existing_file_on_a_full_disk_keeps_the_old_file(
        legacy_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str, name: str) -> None:
    target = tmp_path / name
    target.write_bytes(b"the previous report\n" * 10_000)
    before = digest(target)
    written = fail_halfway(monkeypatch, room_bytes=1024)
    result = invoke("report", flag, str(target), db=legacy_db)
    assert result.exit_code == 2 and "No space left on device" in result.output, result.output
    assert written[0] == 1024
    assert digest(target) == before and leftovers(tmp_path, name) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test (skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_model_card_on_a_full_tmpfs_leaves_the_card_unchanged(legacy_db: Path, small_disk: Path) -> None:
    card = small_disk / "README.md"
    card.write_text(USER_CARD, encoding="utf-8")  # ~270 KB of the user's own text
    before = digest(card)
    with open(small_disk / "filler", "wb", buffering=0) as fh:  # fill the rest of the disk, to the last block
        try:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    result = invoke("report", "--model-card", str(card), db=legacy_db)
    assert result.exit_code == 2, result.output
    assert errors(result.output) == [f"error: {card}: cannot write file: No space left on device"], result.output
    assert digest(card) == before and leftovers(small_disk, "README.md", "filler") == []
    (small_disk / "filler").unlink()  # with room again, the same command succeeds and keeps the user's text
    result = invoke("report", "--model-card", str(card), db=legacy_db)
    assert result.exit_code == 0, result.output
    assert "My own words, which must survive. " * 8000 in card.read_text(encoding="utf-8")


def test_a_failed_write_removes_its_temporary_file_and_raises_the_os_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    fail_halfway(monkeypatch)
    with pytest.raises(OSError) as info:
        atomic.write_text(target, "x" * 200_000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text(encoding="utf-8") == "old" and leftovers(tmp_path, "out.json") == []


def test_an_exception_inside_the_block_leaves_the_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_open(target) as fh:
        fh.write("new " * 100_000)
        raise KeyboardInterrupt
    assert target.read_text(encoding="utf-8") == "old" and leftovers(tmp_path, "out.csv") == []


def test_a_replaced_file_keeps_its_permissions_and_line_endings(tmp_path: Path) -> None:
    target = tmp_path / "card.md"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    atomic.write_text(target, "a\r\nb\n")
    assert target.read_bytes() == b"a\r\nb\n" and (target.stat().st_mode & 0o777) == 0o640


# -- a writer killed mid-write ----------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from brie_bench import atomic
    from brie_bench.cli import main

    flag = Path(sys.argv[1])
    real = atomic._Raw.write

    def write(self, b):
        n = real(self, bytes(b)[:1024])  # one KiB reaches the temporary file ...
        flag.write_text("writing")
        time.sleep(120)                  # ... and the writer is killed here, in the middle of its write
        return n

    atomic._Raw.write = write
    main(sys.argv[2:])
""")


@pytest.mark.parametrize("command,name", [
    (("report", "--html"), "report.html"),
    (("report", "--model-card"), "README.md"),
    (("export", "--jsonl", "-o"), "rows.jsonl"),
], ids=["html", "model-card", "export"])
@pytest.mark.parametrize("existed", [True, False], ids=["over-old-file", "new-file"])
def test_a_writer_killed_mid_write_leaves_the_old_file_or_none(legacy_db: Path, tmp_path: Path,
                                                              command: tuple[str, ...], name: str,
                                                              existed: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    old = b"---\nlicense: mit\n---\n\n# Old content, complete\n" * 50
    if existed:
        target.write_bytes(old)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER, encoding="utf-8")
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, str(script), str(flag), "--db", str(legacy_db), *command, str(target)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.02)
        partial = [p for p in out.iterdir() if p.name != name]
        assert len(partial) == 1 and partial[0].stat().st_size == 1024  # it really was mid-write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if existed:
        assert target.read_bytes() == old
    else:
        assert not target.exists()
    # What SIGKILL leaves (no code runs to remove it) is the hidden temporary file, never one named like the target.
    for rest in leftovers(out, name):
        assert rest.startswith(f".{name}.") and rest.endswith(".tmp"), rest


# -- symbolic links ---------------------------------------------------------------------------------------

def test_model_card_on_a_symlink_is_refused_without_follow_symlinks(legacy_db: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("# not a card: someone else's file\n", encoding="utf-8")
    link = tmp_path / "README.md"
    link.symlink_to(elsewhere)
    result = invoke("report", "--model-card", str(link), db=legacy_db)
    assert result.exit_code == 2, result.output
    assert len(errors(result.output)) == 1 and "symbolic link" in result.output and "--follow-symlinks" in \
        result.output, result.output
    assert elsewhere.read_text(encoding="utf-8") == "# not a card: someone else's file\n"
    # Asked for, the file the link points to is updated and the link stays a link.
    result = invoke("report", "--model-card", str(link), "--follow-symlinks", db=legacy_db)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and "brie-bench:begin" in elsewhere.read_text(encoding="utf-8")
    assert "# not a card: someone else's file" in elsewhere.read_text(encoding="utf-8")


@pytest.mark.parametrize("args", [("export", "--csv", "-o"), ("report", "--html"), ("report", "--json")])
def test_every_output_on_a_symlink_is_refused_without_follow_symlinks(legacy_db: Path, tmp_path: Path,
                                                                      args: tuple[str, ...]) -> None:
    elsewhere = tmp_path / "victim.txt"
    elsewhere.write_text("keep me\n", encoding="utf-8")
    link = tmp_path / ("out.json" if "--json" in args else "out.html" if "--html" in args else "out.csv")
    link.symlink_to(elsewhere)
    result = invoke(*args, str(link), db=legacy_db)
    assert result.exit_code == 2 and "symbolic link" in result.output, result.output
    assert elsewhere.read_text(encoding="utf-8") == "keep me\n" and link.is_symlink()


def test_atomic_writer_refuses_a_link_and_the_database_by_itself(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"SQLite format 3\0")
    (tmp_path / "l").symlink_to(tmp_path / "target")
    with pytest.raises(InputError, match="symbolic link"):
        atomic.write_text(tmp_path / "l", "x")
    assert not (tmp_path / "target").exists()
    with pytest.raises(InputError, match="is the database"):
        atomic.write_text(tmp_path / "x.db-journal", "x", db=db)
    (tmp_path / "dblink").symlink_to(db)
    with pytest.raises(InputError, match="is the database"):
        atomic.write_text(tmp_path / "dblink", "x", db=db, follow_symlinks=True)
    assert db.read_bytes() == b"SQLite format 3\0"


def test_train_overwrite_with_a_planted_readme_symlink_writes_nothing_outside(tmp_path: Path) -> None:
    from brie_bench.training import config_path

    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}", encoding="utf-8")
    victim = tmp_path / "outside.txt"
    victim.write_text("someone else's file\n", encoding="utf-8")
    (out / "README.md").symlink_to(victim)
    result = invoke("train", str(config_path("smoke")), "--output", str(out), "--overwrite")
    assert result.exit_code == 2, result.output
    assert len(errors(result.output)) == 1 and "symbolic link" in result.output, result.output
    assert victim.read_text(encoding="utf-8") == "someone else's file\n"


def test_the_adapter_card_writer_replaces_a_link_never_writes_through_it(tmp_path: Path) -> None:
    """Even a link planted after the check (while training ran) is not written through by our own writers."""
    from brie_bench.training import config_path, load_config
    from brie_bench.training.run import _write_card

    victim = tmp_path / "outside.txt"
    victim.write_text("someone else's file\n", encoding="utf-8")
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "README.md").symlink_to(victim)
    manifest = {"data": {"train": []}, "adapter": {"lora": {"r": 8}}}
    with pytest.raises(InputError, match="symbolic link"):
        _write_card(out, load_config(config_path("smoke")), manifest)
    assert victim.read_text(encoding="utf-8") == "someone else's file\n"
