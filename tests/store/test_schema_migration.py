"""A store written before schema version 3 (when `judgments.presentation_order` was `order_index`,
and before version 4 added `generations.features`) stays readable as it is, and the first writing
command migrates it in place without losing a row.

The version 2 stores are made from a real run (loopback provider; one section judged in both
presentation orders, so the column holds 0s and 1s) by undoing the changes versions 3 and 4 made:
the features column and its trigger dropped, the order column renamed back and
``meta.schema_version`` set to 2. For SQLite the schema that leaves is version 2's, byte for byte
(the same ``sqlite_master``; checked by hand against the version 2 ``SCHEMA`` when version 3 was
made, and here by migrating it forward to exactly a new file's).

* Reading commands (`runs`, `report --json`, `export`, `db copy` from it) open it read-only and
  never migrate: they give the same report and export as the current store, and the file is the
  same bytes afterwards.
* A writing open migrates: the current version, every row of every table kept (and each answer's
  features worked out from its text), and the schema a new store has.
* The same on PostgreSQL (a real throw-away server), where a read-only session can create nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from brie_bench.answer_features import stored_features
from brie_bench.store import SQLiteStore
from brie_bench.store_api import RUN_TABLES, SCHEMA_VERSION, open_store
from brie_bench.viewer.app import create_viewer_app
from helpers import app_served
from hostile.kit import loopback, loopback_suite, query, write_suite

TOKEN = "migration-token-" + "z" * 20

#: Version 4 undone (the features column and the trigger that clears it), then version 3.
TO_VERSION_2 = ("ALTER TABLE generations DROP COLUMN features",
                "ALTER TABLE judgments RENAME COLUMN presentation_order TO order_index",
                "UPDATE meta SET value='2' WHERE key='schema_version'")
DOWNGRADE = ("DROP TRIGGER generations_features_follow_text", *TO_VERSION_2)
PG_DOWNGRADE = ("DROP TRIGGER generations_features_follow_text ON generations",
                "DROP FUNCTION generations_features_follow_text()", *TO_VERSION_2)


def bb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brie_bench", *args], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, COLUMNS="200"))


def report(db: str) -> dict[str, Any]:
    done = bb("--db", db, "report", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    data.pop("generated_at")
    return data


def exported(db: str) -> list[dict[str, Any]]:
    done = bb("--db", db, "export")
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_schema(db: Path) -> list[dict[str, Any]]:
    return query(db, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")


def all_rows(db: str, order: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every run table, in stored order, with the judgments' order column under its name now."""
    out = {}
    for table in RUN_TABLES:
        rows = query(db, f"SELECT * FROM {table} ORDER BY {order[table]}")
        out[table] = [{("presentation_order" if k == "order_index" else k): v for k, v in r.items()} for r in rows]
    return out


def without_features(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows of a migrated store without the column version 4 added, which the migration fills in
    for every answer already stored (`answer_features.stored_features` of its text)."""
    for r in rows["generations"]:
        assert r.pop("features") == stored_features(r["text"]), r["key"]
    return rows


SQLITE_ORDER = {"runs": "rowid", "generations": "key", "run_generations": "rowid", "judgments": "rowid",
                "errors": "id", "batches": "rowid"}
PG_ORDER = {"runs": "seq", "generations": "key", "run_generations": "seq", "judgments": "seq", "errors": "id",
            "batches": "seq"}


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished run in a current SQLite file, with its report and export."""
    folder = tmp_path_factory.mktemp("current")
    db = folder / "current.db"
    with loopback(latency_s=0.0, max_lifetime_s=200) as srv:
        suite = write_suite(folder / "suite.yaml", loopback_suite(srv, prompts=4, sections=2, both=True))
        done = bb("--db", str(db), "run", str(suite))
        assert done.returncode == 0, done.stdout + done.stderr
    with open_store(str(db)) as store:  # an error row too, so every table has a row to keep
        store.save_error(run_id=store.run().id, unit_key="u", unit_kind="judgment", name="judge", attempt=1,
                         kind="timeout", transient=True, final=False, message="slow")
    orders = {r["presentation_order"] for r in query(db, "SELECT presentation_order FROM judgments")}
    assert orders == {0, 1}
    return {"db": db, "report": report(str(db)), "export": exported(str(db))}


def version_2_copy(current: dict[str, Any], path: Path) -> Path:
    """The current file as version 2 wrote it (SQLite's backup API: a consistent copy, WAL included)."""
    src, dst = sqlite3.connect(current["db"]), sqlite3.connect(path)
    try:
        src.backup(dst)
        for statement in DOWNGRADE:
            dst.execute(statement)
        dst.commit()
    finally:
        src.close()
        dst.close()
    assert query(path, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": "2"}]
    return path


def test_a_version_2_file_is_read_as_it_is_by_every_reading_command(current: dict[str, Any], tmp_path: Path) -> None:
    old = version_2_copy(current, tmp_path / "v2.db")
    before = digest(old)
    listed = bb("--db", str(old), "runs")
    assert listed.returncode == 0 and "complete" in listed.stdout, listed.stdout + listed.stderr
    assert report(str(old)) == current["report"]
    rows = exported(str(old))
    assert rows == current["export"]
    assert {r["presentation_order"] for r in rows} == {0, 1} and all("order_index" not in r for r in rows)
    csv_done = bb("--db", str(old), "export", "--csv")
    assert csv_done.returncode == 0 and "presentation_order" in csv_done.stdout.splitlines()[0]
    html = bb("--db", str(old), "report", "--html", str(tmp_path / "old.html"))  # reads the verdicts' texts too
    assert html.returncode == 0 and "Brie Bench report" in (tmp_path / "old.html").read_text(), html.stderr
    run_id = current["report"]["run"]["id"]
    with app_served(lambda hosts: create_viewer_app(str(old), token=TOKEN, allowed_hosts=hosts),
                    lifespan="off") as port:  # `brie-bench view`
        for path in ("/", f"/run/{run_id}", f"/run/{run_id}/comparisons"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"{path}?token={TOKEN}")
            response = conn.getresponse()
            assert response.status == 200 and run_id in response.read().decode(), path
            conn.close()
    assert digest(old) == before, "a reading command wrote to the file"
    assert query(old, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": "2"}]
    assert "order_index" in {r[1] for r in sqlite3.connect(old).execute("PRAGMA table_info(judgments)")}


def test_a_version_2_file_reads_the_same_opened_immutable(current: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On a read-only folder the store opens the file ``immutable=1`` (root can write anywhere, so forced here)."""
    old = version_2_copy(current, tmp_path / "v2.db")

    def reads(store: SQLiteStore) -> tuple[Any, ...]:
        run_id = store.run().id
        columns = ("unit_key", "presentation_order", "label_a", "verdict")
        return (store.schema_version, store.judgment_tuples(run_id, columns), store.judgments(run_id),
                list(store.iter_judgments_with_texts(run_id)),
                {t: list(store.export_rows(t, run_id)) for t in RUN_TABLES})

    with SQLiteStore(old, readonly=True) as plain:
        expected = reads(plain)
    monkeypatch.setattr(SQLiteStore, "_open_readonly",
                        lambda self: sqlite3.connect(f"file:{old.resolve()}?immutable=1", uri=True))
    with SQLiteStore(old, readonly=True) as immutable:
        assert reads(immutable) == expected
    with SQLiteStore(current["db"], readonly=True) as now:
        assert reads(now)[1:] == expected[1:]  # the same rows as the current file, under the same names
    assert expected[0] == 2 and [t[2] for t in expected[1]] == [r.presentation_order for r in expected[2]]


def test_db_copy_reads_a_version_2_file(current: dict[str, Any], tmp_path: Path) -> None:
    old = version_2_copy(current, tmp_path / "v2.db")
    before = digest(old)
    copied = tmp_path / "copied.db"
    done = bb("db", "copy", str(old), str(copied))
    assert done.returncode == 0, done.stdout + done.stderr
    assert digest(old) == before
    assert report(str(copied)) == current["report"]
    assert query(copied, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    assert all_rows(str(copied), SQLITE_ORDER)["judgments"] == all_rows(str(old), SQLITE_ORDER)["judgments"]


def test_a_writing_open_migrates_a_version_2_file_in_place(current: dict[str, Any], tmp_path: Path) -> None:
    old = version_2_copy(current, tmp_path / "v2.db")
    rows = all_rows(str(old), SQLITE_ORDER)
    assert all(rows[t] for t in RUN_TABLES if t != "batches"), {t: len(r) for t, r in rows.items()}  # no batch judge
    with open_store(str(old)) as store:  # what `run`, `import`, `judge` and a copy into it do first
        assert store.schema_version == SCHEMA_VERSION == 4
    assert query(old, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    assert without_features(all_rows(str(old), SQLITE_ORDER)) == rows  # every row of every table, in the same order
    with open_store(str(tmp_path / "new.db")):
        pass
    assert sqlite_schema(old) == sqlite_schema(tmp_path / "new.db")  # exactly a new file's schema
    assert query(old, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    assert report(str(old)) == current["report"]
    with open_store(str(old)) as store:  # opening again: nothing left to do
        assert store.schema_version == SCHEMA_VERSION


def test_a_file_whose_columns_do_not_match_its_version_is_refused(current: dict[str, Any], tmp_path: Path) -> None:
    """Version 2 must have `order_index`: a file claiming 2 with the new name is not what it says."""
    old = version_2_copy(current, tmp_path / "v2.db")
    conn = sqlite3.connect(old)
    conn.execute("ALTER TABLE judgments RENAME COLUMN order_index TO presentation_order")
    conn.commit()
    conn.close()
    for command in (["runs"], ["report", "--json"]):
        done = bb("--db", str(old), *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "does not match schema version 2: table 'judgments' has no column order_index" in done.stderr


def pg_columns(url: str) -> list[dict[str, Any]]:
    """Each table's columns in order (their positions themselves differ: the downgrade's dropped column keeps one)."""
    return query(url, "SELECT table_name, column_name, data_type, is_nullable, column_default "
                      "FROM information_schema.columns WHERE table_schema = current_schema() "
                      "ORDER BY table_name, ordinal_position")


def pg_indexes(url: str) -> list[dict[str, Any]]:
    return query(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                      "ORDER BY indexname")


@pytest.mark.timeout(300)
def test_a_version_2_postgres_database_is_read_as_it_is_and_migrated_by_a_writing_open(
        current: dict[str, Any], tmp_path: Path, postgres_server: Any) -> None:
    import psycopg

    url, fresh = postgres_server.new_database(), postgres_server.new_database()
    done = bb("db", "copy", str(current["db"]), url)
    assert done.returncode == 0, done.stdout + done.stderr
    with open_store(fresh):
        pass
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in PG_DOWNGRADE:
            conn.execute(statement)
    rows = all_rows(url, PG_ORDER)
    assert rows["judgments"] and {r["presentation_order"] for r in rows["judgments"]} == {0, 1}

    # Reading commands: a read-only session, nothing migrated, the same report and export.
    listed = bb("--db", url, "runs")
    assert listed.returncode == 0 and "complete" in listed.stdout, listed.stdout + listed.stderr
    assert report(url) == current["report"]
    assert exported(url) == current["export"]
    offline = tmp_path / "offline.db"
    back = bb("db", "copy", url, str(offline))
    assert back.returncode == 0, back.stdout + back.stderr
    assert report(str(offline)) == current["report"]
    assert query(url, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": "2"}]
    assert "order_index" in {r["column_name"] for r in pg_columns(url) if r["table_name"] == "judgments"}

    # A writing open migrates, in place.
    with open_store(url) as store:
        assert store.schema_version == SCHEMA_VERSION == 4
    assert query(url, "SELECT value FROM meta WHERE key='schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    assert without_features(all_rows(url, PG_ORDER)) == rows
    assert pg_columns(url) == pg_columns(fresh) and pg_indexes(url) == pg_indexes(fresh)
    assert report(url) == current["report"]
