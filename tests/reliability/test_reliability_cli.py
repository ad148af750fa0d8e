"""The CLI on a damaged, empty or foreign database, on Ctrl-C, and with markup in data.

* Ctrl-C during `run`: the documented "interrupted ... rerun" line and exit code 130
  (not click's "Aborted!" and 1); the run is marked interrupted and a rerun finishes it.
* A database with corrupt pages: `runs`, `report`, `export` and `run` print one line and
  exit 2. An empty file: exit 2 from the reading commands.
* Schema versions: a newer file is refused in one line before any model call; an older
  one is migrated by `run` (and read as it is by `runs`); a renamed column is found on
  open, not after the generations ran.
* `[/x]` in a stored status or suite name, or in a training file's name, is shown as text.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.store import SCHEMA_VERSION, Store
from hostile.kit import loopback, loopback_suite, model_calls, query, summary, write_suite


def brie(db: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd, env=dict(os.environ, COLUMNS="200"))


def one_line_exit_2(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def server() -> Any:
    with loopback(max_lifetime_s=600) as srv:
        yield srv


@pytest.fixture(scope="module")
def finished(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A database holding one finished run, to copy and damage."""
    tmp = tmp_path_factory.mktemp("finished")
    suite = write_suite(tmp / "suite.yaml", loopback_suite(server, prompts=40))
    db = tmp / "good.db"
    result = brie(db, "run", str(suite))
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"db": db, "suite": suite, "tmp": tmp}


def copy_db(finished: dict[str, Any], dest: Path) -> Path:
    dest.write_bytes(finished["db"].read_bytes())
    return dest


# -- item 4: Ctrl-C ----------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_ctrl_c_prints_the_documented_line_and_exits_130(tmp_path: Path) -> None:
    with loopback(latency_s=0.4, max_lifetime_s=230) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=8, limits={"max_concurrency": 2}))
        db = tmp_path / "db.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, COLUMNS="200"))
        deadline = time.monotonic() + 120
        while len(model_calls(srv)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, out + err
        assert "Aborted!" not in out + err and "Traceback" not in err
        assert "interrupted" in err and "rerun" in err, err
        assert query(db, "SELECT status FROM runs")[0]["status"] == "interrupted"
        assert not query(db, "SELECT * FROM leases WHERE state='held'"), "an interrupted run kept its leases"
        again = brie(db, "run", str(suite))
    assert again.returncode == 0, again.stderr
    assert query(db, "SELECT status FROM runs")[0]["status"] == "complete"
    assert len(query(db, "SELECT * FROM judgments")) == 8


# -- item 5: damaged and empty databases ---------------------------------------------------------

def damage(db: Path) -> None:
    """Keep the header page, overwrite every other page with garbage."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) > 3 * page
    for i in range(page, len(data)):
        data[i] = (i * 131 + 7) % 256
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [["runs"], ["report"], ["export", "--jsonl"], ["run", "SUITE"]])
def test_a_damaged_database_is_one_line_and_exit_2(finished: dict[str, Any], tmp_path: Path,
                                                   command: list[str], server: Any) -> None:
    db = copy_db(finished, tmp_path / "damaged.db")
    damage(db)
    before = len(model_calls(server))
    args = [str(finished["suite"]) if a == "SUITE" else a for a in command]
    one_line_exit_2(brie(db, *args, cwd=tmp_path), str(db))
    assert len(model_calls(server)) == before, "a model was called with a damaged database"


@pytest.mark.parametrize("command", [["runs"], ["report"], ["export", "--csv"]])
def test_an_empty_database_file_is_exit_2(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    one_line_exit_2(brie(db, *command, cwd=tmp_path), "empty")


def test_a_file_that_is_not_a_database_is_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("these are my notes, not a database\n" * 200)
    one_line_exit_2(brie(db, "runs"), "not a database")


def test_a_sqlite_file_of_another_program_is_refused(tmp_path: Path, finished: dict[str, Any]) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE contacts(name TEXT)")
    conn.commit()
    conn.close()
    one_line_exit_2(brie(db, "runs"), "not a Brie Bench database")
    one_line_exit_2(brie(db, "run", str(finished["suite"])), "not a Brie Bench database")
    assert [r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")] == ["contacts"]


# -- item 6: schema versions ---------------------------------------------------------------------

def edit(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def test_a_newer_schema_is_refused_before_any_model_call(finished: dict[str, Any], tmp_path: Path,
                                                         server: Any) -> None:
    db = copy_db(finished, tmp_path / "newer.db")
    edit(db, "UPDATE meta SET value='7' WHERE key='schema_version'")
    before = len(model_calls(server))
    fresh = write_suite(tmp_path / "fresh.yaml", loopback_suite(server, prompts=2, name="fresh"))
    line = one_line_exit_2(brie(db, "run", str(fresh)), "schema version 7", "newer")
    assert "upgrade" in line
    one_line_exit_2(brie(db, "runs"), "schema version 7")
    assert len(model_calls(server)) == before
    assert query(db, "SELECT value FROM meta WHERE key='schema_version'")[0]["value"] == "7"


def test_a_renamed_column_is_found_on_open(finished: dict[str, Any], tmp_path: Path, server: Any) -> None:
    db = copy_db(finished, tmp_path / "renamed.db")
    edit(db, "ALTER TABLE judgments RENAME COLUMN raw TO answer")
    before = len(model_calls(server))
    fresh = write_suite(tmp_path / "fresh.yaml", loopback_suite(server, prompts=2, name="fresh"))
    one_line_exit_2(brie(db, "run", str(fresh)), "judgments", "no column raw")
    assert len(model_calls(server)) == before, "generations ran before the schema was checked"


def test_a_version_1_database_is_read_as_is_and_migrated_by_run(finished: dict[str, Any], tmp_path: Path,
                                                                server: Any) -> None:
    db = copy_db(finished, tmp_path / "v1.db")
    edit(db, "DROP TRIGGER generations_features_follow_text", "ALTER TABLE generations DROP COLUMN features",
         "DROP TABLE leases", "ALTER TABLE judgments RENAME COLUMN presentation_order TO order_index",
         "UPDATE meta SET value='1' WHERE key='schema_version'")  # exactly version 1
    listed = brie(db, "runs")
    assert listed.returncode == 0 and "complete" in listed.stdout, listed.stderr
    assert query(db, "SELECT value FROM meta WHERE key='schema_version'")[0]["value"] == "1"  # reading writes nothing
    judgments = query(db, "SELECT unit_key, verdict FROM judgments ORDER BY unit_key")
    before = len(model_calls(server))
    rerun = brie(db, "run", str(finished["suite"]))
    assert rerun.returncode == 0, rerun.stderr
    assert summary(rerun.stdout)["calls"] == 0 and len(model_calls(server)) == before
    assert query(db, "SELECT value FROM meta WHERE key='schema_version'")[0]["value"] == str(SCHEMA_VERSION)
    assert query(db, "SELECT COUNT(*) AS n FROM leases")[0]["n"] == 0
    assert query(db, "SELECT unit_key, verdict FROM judgments ORDER BY unit_key") == judgments


def test_a_new_database_records_the_current_version(tmp_path: Path) -> None:
    with Store(tmp_path / "new.db") as store:
        assert store.schema_version == SCHEMA_VERSION
    assert query(tmp_path / "new.db", "SELECT value FROM meta")[0]["value"] == str(SCHEMA_VERSION)


# -- item 10: markup in data --------------------------------------------------------------------

def test_markup_in_stored_data_is_shown_as_text(finished: dict[str, Any], tmp_path: Path) -> None:
    db = copy_db(finished, tmp_path / "markup.db")
    edit(db, "UPDATE runs SET status='[/x]', suite_name='[bold]name[/]'")
    result = CliRunner().invoke(cli, ["--db", str(db), "runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[/x]" in result.output and "[bold]name[/]" in result.output


def test_markup_in_a_training_file_name_is_shown_as_text(tmp_path: Path) -> None:
    config = Path(__file__).parents[2] / "training" / "configs" / "smoke.yaml"
    if not config.exists():
        pytest.skip("no smoke training config")
    (tmp_path / "[").mkdir()
    bad = tmp_path / "[" / "x].jsonl"  # the path holds "[/x]"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                   + "\n" + json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", str(config), "--check-data", "--train-file", str(bad)],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "[/x].jsonl" in result.output and "role 'bot'" in result.output
