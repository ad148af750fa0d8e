"""One embedded SQLite file (WAL) holding runs, generations, judgments, errors and unit leases.

Generations are cached globally by their content key, so a new run of the
same suite reuses them; judgments belong to a run. Every finished unit is
committed at once, so a crash loses at most the calls in flight. Nothing
here ever holds an API key: rows are built from records that carry none.

Several processes may work on one file: a unit is *leased* (table `leases`)
before it is called, so each unit is called once; a lease expires unless its
owner renews it, so a dead process's units are taken over by the others.

The file carries its schema version (`meta.schema_version`). Opening checks it
before anything else: an older file is migrated (writing opens only), a newer
one or one whose tables do not match is refused in one line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from brie_bench.answer_features import stored_features, with_features
from brie_bench.errors import InputError
from brie_bench.rows import GENERATION_COLUMNS, JUDGMENT_COLUMNS, GenerationRow, JudgmentRow
from brie_bench.store_api import (ADDED_COLUMNS, RUN_TABLES, SCHEMA_VERSION, DatabaseGone, EmptyDatabase, LeaseKeeper,
                                  RunRow, Store, checked_schema_version, copied_columns, judgment_order, new_run_id,
                                  selected, sqlite_path, stored_columns, stored_json)

__all__ = ["SCHEMA_VERSION", "DatabaseGone", "RunRow", "SQLiteStore", "Store", "StoreWriteError", "damaged_message"]

# SCHEMA_VERSION (store_api) is shared with the PostgreSQL store: bump it with every schema change
# and add the step to `MIGRATIONS` here and to `store_pg.MIGRATIONS`.

# `generations` ends ``created_at REAL NOT NULL\n, features TEXT)`` because that is how version 4's
# ``ALTER TABLE ... ADD COLUMN`` leaves a migrated file: a new file's schema and a migrated one's are
# then the same text (tests/store/test_schema_migration.py).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    suite_name TEXT NOT NULL,
    suite_path TEXT NOT NULL,
    suite_fingerprint TEXT NOT NULL,
    suite_snapshot TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    versions TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    spec TEXT NOT NULL,
    messages TEXT NOT NULL,
    params TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL,
    created_at REAL NOT NULL
, features TEXT);
CREATE TABLE IF NOT EXISTS run_generations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    section TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    contender TEXT NOT NULL,
    gen_key TEXT NOT NULL,
    PRIMARY KEY (run_id, section, prompt_id, sample_index, contender)
);
CREATE TABLE IF NOT EXISTS judgments (
    run_id TEXT NOT NULL REFERENCES runs(id),
    unit_key TEXT NOT NULL,
    section TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    judge TEXT NOT NULL,
    judge_type TEXT NOT NULL,
    judge_model TEXT,
    baseline TEXT NOT NULL,
    candidate TEXT NOT NULL,
    presentation_order INTEGER NOT NULL,
    label_a TEXT NOT NULL,
    label_b TEXT NOT NULL,
    gen_key_a TEXT NOT NULL,
    gen_key_b TEXT NOT NULL,
    verdict TEXT NOT NULL,
    winner TEXT,
    p_a REAL,
    scores TEXT,
    reasoning TEXT,
    invalid_reason TEXT,
    raw TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, unit_key)
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    unit_key TEXT NOT NULL,
    unit_kind TEXT NOT NULL,
    name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    transient INTEGER NOT NULL,
    final INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL,
    judge TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    unit_keys TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (run_id, batch_id)
);
CREATE INDEX IF NOT EXISTS judgments_by_run ON judgments(run_id, section);
CREATE INDEX IF NOT EXISTS errors_by_run ON errors(run_id);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

#: An answer's `features` are worked out from its text (`brie_bench.answer_features`): a text changed in
#: place (by hand: Brie Bench never does) clears them, and a report works them out again.
FEATURES_FOLLOW_TEXT = ("CREATE TRIGGER IF NOT EXISTS generations_features_follow_text AFTER UPDATE OF text ON "
                        "generations WHEN OLD.text IS NOT NEW.text BEGIN "
                        "UPDATE generations SET features = NULL WHERE key = NEW.key; END")

#: The schema version whose migration also works out the features of every answer already stored.
FEATURES_ADDED_IN = ADDED_COLUMNS[("generations", "features")]

#: version -> the statements that bring a file of that version to the next one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, "
        "expires_at REAL NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID",),
    # In place (SQLite >= 3.25): only the table's stored SQL is rewritten, no row is copied.
    2: ("ALTER TABLE judgments RENAME COLUMN order_index TO presentation_order",),
    # Then `_fill_features` works out the features of the answers already stored.
    3: ("ALTER TABLE generations ADD COLUMN features TEXT", FEATURES_FOLLOW_TEXT),
}

#: The oldest version the reading commands understand without migrating: v1 lacks only `leases`,
#: v1 and v2 call `presentation_order` `order_index` (read under its name now: `store_api.selected`).
OLDEST_READABLE = 1

#: Tables a version must not have for reading: what each version added.
_ADDED_IN = {"leases": 2}


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _table_columns() -> dict[str, tuple[str, ...]]:
    """table -> column names in table order, read from SCHEMA itself so the checks never drift from it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        return {t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        conn.close()


#: The columns of every table, in order; the PostgreSQL store has the same ones (and `seq`).
TABLE_COLUMNS = _table_columns()
EXPECTED_COLUMNS = {table: set(columns) for table, columns in TABLE_COLUMNS.items()}


#: One INSERT for every judgment row, its columns named once (`brie_bench.rows.JudgmentRow`).
_INSERT_JUDGMENT = (f"INSERT INTO judgments({', '.join(JUDGMENT_COLUMNS)}) "
                    f"VALUES ({','.join('?' * len(JUDGMENT_COLUMNS))}) ON CONFLICT(run_id, unit_key) DO NOTHING")
_SCORES_AT = JUDGMENT_COLUMNS.index("scores")
_CREATED_AT = JUDGMENT_COLUMNS.index("created_at")



#: SQLite's words for a write the file system refused -> what the user should know.
_REFUSED_WRITES = {
    "database or disk is full": "the disk is full",
    "attempt to write a readonly database": "the database file or its folder is read-only",
}


class StoreWriteError(sqlite3.OperationalError):
    """The file system refused a write (disk full, read-only). Committed rows are intact.

    A subclass of sqlite3.OperationalError, so callers that handle database errors
    handle it; the message says what happened and that a rerun continues.
    """


class _Connection(sqlite3.Connection):
    """A connection whose transactions (``with conn:``) explain a refused write.

    SQLite rolls the failed transaction back, so everything committed before it
    stays; the message says so, instead of a bare "database or disk is full".
    """

    #: Called after every committed transaction (`Store.check_present`): a write that went into
    #: a database file deleted or replaced meanwhile is lost, and must stop the run at once.
    after_commit: Callable[[], None] | None = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            result = super().__exit__(exc_type, exc, tb)
        except sqlite3.OperationalError as commit_error:  # the COMMIT itself was refused
            raise _explained(commit_error) from commit_error
        if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreWriteError):
            explained = _explained(exc)
            if explained is not exc:
                raise explained from exc
        if exc_type is None and self.after_commit is not None:
            self.after_commit()
        return result


def _explained(exc: sqlite3.OperationalError) -> sqlite3.OperationalError:
    what = _REFUSED_WRITES.get(str(exc).strip().lower())
    if what is None:
        return exc
    return StoreWriteError(f"cannot write: {what} ({exc}). Everything stored before this is kept; "
                           f"fix that (or pass --db with another file) and rerun the same command to continue")


def damaged_message(exc: sqlite3.DatabaseError) -> str:
    """SQLite's words for a damaged or foreign file, made into what the user should know."""
    text = str(exc)
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return f"the file is damaged or not a database ({text}); restore it from a copy or pass --db with another file"
    return text


def _writable(path: Path) -> bool:
    """Can this process create or change `path` (the file, or its folder when the file is new)?"""
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK) and os.access(path.parent, os.W_OK)


class SQLiteStore(Store):
    """All reads and writes of the SQLite file. One instance per process and thread.

    `Store(path)` opens one (`store_api.Store` picks the implementation from the target).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = sqlite_path(str(path))
        self.persistent = self.path != ":memory:"
        try:
            if readonly:
                if not Path(self.path).exists():
                    raise InputError("database not found", path=self.path)
                self.conn = self._open_readonly()
                self._check_readable()
            else:
                parent = Path(self.path).resolve().parent
                if not parent.exists():
                    raise InputError(f"folder {parent} does not exist", path=self.path)
                if not _writable(Path(self.path).resolve()):
                    raise InputError("the database file or its folder is read-only; this command writes "
                                     "results: pass --db with a writable file (reading commands such as "
                                     "`runs` still work on this one)", path=self.path)
                self.conn = sqlite3.connect(self.path, timeout=30, factory=_Connection)
                self._prepare()
                self._identity = self._file_identity()
                self.conn.after_commit = self.check_present
        except InputError:
            if getattr(self, "conn", None) is not None:
                self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            if getattr(self, "conn", None) is not None:
                self.conn.close()
            raise InputError(f"cannot open database: {damaged_message(exc)}", path=self.path) from None
        self.conn.row_factory = sqlite3.Row

    # -- schema version ----------------------------------------------------------------
    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                                "AND name NOT LIKE 'sqlite_%'")}

    def _stored_version(self, tables: set[str]) -> int:
        """The file's schema version; refuses a file that is not ours or is newer than this code."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
            if "meta" in tables else None
        # Our tables without a version row: version 1 (which wrote the row at every open);
        # the column check that follows tells whether the tables really are ours.
        return checked_schema_version(tables, row[0] if row else None, missing=1, path=self.path)

    def _check_columns(self, version: int) -> None:
        """Every table and column the code uses is there (a renamed column is found now, not mid-run),
        under the names a database of `version` gives them (`store_api.RENAMED_COLUMNS`)."""
        for table, columns in TABLE_COLUMNS.items():
            if _ADDED_IN.get(table, 1) > version:
                continue
            wanted = stored_columns(table, columns, version)
            have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
            if not have:
                raise InputError(f"the database does not match schema version {version}: table {table!r} is "
                                 f"missing", path=self.path)
            missing = sorted(wanted - have)
            if missing:
                raise InputError(f"the database does not match schema version {version}: table {table!r} has "
                                 f"no column {', '.join(missing)}", path=self.path)

    def _check_readable(self) -> None:
        tables = self._tables()
        if not tables:
            raise EmptyDatabase(self.path)
        version = self._stored_version(tables)
        if version < OLDEST_READABLE:  # pragma: no cover - no such version yet
            raise InputError(f"schema version {version} is too old to read; open it with `brie-bench run` "
                             f"once to migrate it", path=self.path)
        self._check_columns(version)
        self.schema_version = version

    def _prepare(self, wait_s: float = 30.0) -> None:
        """WAL mode, then the schema: create it, migrate it, or refuse the file; waits for other openers.

        Two runs started at once on a new file both switch it to WAL and create the
        tables. Switching the journal mode can answer "database is locked" at once,
        without SQLite's busy timeout, while the other connection holds its lock, so
        retry for a while rather than fail one of the runs. Creating or migrating
        happens in one IMMEDIATE transaction, so exactly one opener does it.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                with self.conn:
                    self.conn.execute("BEGIN IMMEDIATE")
                    self._create_or_migrate()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                if self.conn.in_transaction:
                    self.conn.rollback()
                time.sleep(0.02)

    def _create_or_migrate(self) -> None:
        tables = self._tables()
        if not tables:
            for statement in (*_statements(SCHEMA), FEATURES_FOLLOW_TEXT):
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.schema_version = SCHEMA_VERSION
            return
        version = self._stored_version(tables)
        self._check_columns(version)
        before = version
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version]:
                self.conn.execute(statement)
            version += 1
        if before < FEATURES_ADDED_IN <= version:
            self._fill_features()
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
        self._check_columns(version)
        self.schema_version = version

    def _fill_features(self) -> None:
        """Work out `features` for the answers stored before schema 4, which the migration adds as NULL
        (about 15 µs an answer), in the migration's transaction: a report on a migrated file reads no
        text either."""
        keys = [r[0] for r in self.conn.execute("SELECT key FROM generations WHERE features IS NULL")]
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self.conn.execute(f"SELECT key, text FROM generations WHERE key IN ({','.join('?' * len(chunk))})",
                                     chunk).fetchall()
            self.conn.executemany("UPDATE generations SET features=? WHERE key=?",
                                  [(stored_features(text), key) for key, text in rows])

    def _open_readonly(self) -> sqlite3.Connection:
        """Open for reading; on read-only media (no -shm can be made there) open it as immutable.

        SQLite needs a writable folder to read a WAL database, so a results file on a
        read-only mount or share would otherwise be unreadable. Immutable is safe only when
        nothing can be writing, which a read-only folder guarantees, and when no WAL holds
        unmerged commits (a crash leaves one behind): then say so instead of hiding them.
        """
        uri = f"file:{quote(str(Path(self.path).resolve()))}"
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            folder = Path(self.path).resolve().parent
            wal = Path(self.path + "-wal")
            if os.access(folder, os.W_OK):
                raise
            if wal.exists() and wal.stat().st_size > 0:
                raise InputError("the database is on a read-only folder and its write-ahead log (-wal) holds "
                                 "commits not merged yet; copy the file with its -wal to a writable folder",
                                 path=self.path) from None
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30)

    # -- the file itself --------------------------------------------------------------
    def _file_identity(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(device, inode) of the database file and of its -wal (None where there is none)."""
        def ident(path: str) -> tuple[int, int] | None:
            try:
                info = os.stat(path)
            except OSError:
                return None
            return info.st_dev, info.st_ino

        if not hasattr(self, "_abs_path"):
            self._abs_path = os.path.abspath(self.path)  # a plugin changing the working folder moves nothing
        return ident(self._abs_path), ident(self._abs_path + "-wal")

    def check_present(self) -> None:
        """Raise `DatabaseGone` unless the path still names the file (and -wal) this store opened.

        Two stat calls per commit (a few microseconds). The -wal is checked only when there was
        one at open: it stays in place for as long as this connection is open.
        """
        identity = getattr(self, "_identity", None)
        if identity is None:
            return  # opened read-only: nothing is written
        db, wal = self._file_identity()
        if db != identity[0]:
            raise DatabaseGone(self.path, "file was deleted" if db is None else "file was replaced")
        if identity[1] is not None and wal != identity[1]:
            raise DatabaseGone(self.path, "write-ahead log (-wal) was deleted" if wal is None
                               else "write-ahead log (-wal) was replaced")

    def close(self) -> None:
        self.conn.close()

    def set_busy_timeout(self, seconds: float) -> None:
        self.conn.execute(f"PRAGMA busy_timeout={max(0, int(seconds * 1000))}")

    # -- runs ------------------------------------------------------------------------
    def create_run(self, *, suite_name: str, suite_path: str, fingerprint: str, snapshot: dict[str, Any],
                   seed: int, versions: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
        with self.conn:
            return self._insert_run(suite_name, suite_path, fingerprint, snapshot, seed, versions, metadata)

    def resume_or_create_run(self, *, new: bool, suite_name: str, suite_path: str, fingerprint: str,
                             snapshot: dict[str, Any], seed: int, versions: dict[str, Any],
                             metadata: dict[str, Any] | None = None) -> tuple[str, bool]:
        """The run to work on, and whether it was created now.

        Looking for a run to resume and creating one is one IMMEDIATE transaction, so
        processes started at once on one file (without `--new`) all join the same run
        and share its units through leases, instead of each starting its own.
        """
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if not new:
                found = self.find_resumable_run(fingerprint, seed)
                if found is not None:
                    return found, False
            run_id = self._insert_run(suite_name, suite_path, fingerprint, snapshot, seed, versions, metadata)
        return run_id, True

    def _insert_run(self, suite_name: str, suite_path: str, fingerprint: str, snapshot: dict[str, Any], seed: int,
                    versions: dict[str, Any], metadata: dict[str, Any] | None) -> str:
        run_id = new_run_id()
        self.conn.execute(
            "INSERT INTO runs(id, suite_name, suite_path, suite_fingerprint, suite_snapshot, seed, status, "
            "versions, metadata, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, suite_name, suite_path, fingerprint, stored_json(snapshot), seed, "created",
             stored_json(versions), stored_json(metadata or {}), time.time()))
        return run_id

    def find_resumable_run(self, fingerprint: str, seed: int) -> str | None:
        """The latest run of exactly this suite content and seed, to resume."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE suite_fingerprint=? AND seed=? ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (fingerprint, seed)).fetchone()
        return row["id"] if row else None

    def mark_run(self, run_id: str, status: str) -> None:
        now = time.time()
        with self.conn:
            if status == "running":
                self.conn.execute("UPDATE runs SET status=?, started_at=? WHERE id=?", (status, now, run_id))
            else:
                self.conn.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, now, run_id))

    def update_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET metadata=? WHERE id=?", (stored_json(metadata), run_id))

    def runs(self) -> list[RunRow]:
        rows = self.conn.execute("SELECT * FROM runs ORDER BY created_at, rowid").fetchall()
        return [self._run_row(r) for r in rows]

    def run(self, run_id: str | None = None) -> RunRow:
        """A run by id (or unique id prefix), or the latest run when run_id is None."""
        if run_id is None:
            row = self.conn.execute("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise InputError("no runs stored yet", path=self.path)
            return self._run_row(row)
        rows = self.conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at",
                                 (run_id.replace("%", "") + "%",)).fetchall()
        if not rows:
            raise InputError(f"no run {run_id!r}", path=self.path)
        if len(rows) > 1 and rows[0]["id"] != run_id:
            raise InputError(f"run id prefix {run_id!r} is ambiguous", path=self.path)
        return self._run_row(rows[0])

    def suite_snapshot(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT suite_snapshot FROM runs WHERE id=?", (run_id,)).fetchone()
        snapshot: dict[str, Any] = json.loads(row["suite_snapshot"])
        return snapshot

    @staticmethod
    def _run_row(r: sqlite3.Row) -> RunRow:
        return RunRow(r["id"], r["suite_name"], r["suite_path"], r["suite_fingerprint"], r["seed"], r["status"],
                      r["created_at"], r["finished_at"], json.loads(r["metadata"]), json.loads(r["versions"]))

    # -- generations -----------------------------------------------------------------
    def stored_generation_keys(self, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(r["key"] for r in self.conn.execute(q, chunk))
        return found

    def generation_texts(self, keys: Iterable[str]) -> dict[str, str]:
        return self._generation_column(keys, "text")

    def generation_features(self, keys: Iterable[str]) -> dict[str, str | None]:
        return self._generation_column(keys, "features")

    def _generation_column(self, keys: Iterable[str], column: str) -> dict[str, Any]:
        """key -> `column` of each stored answer among `keys`, as (key, value) tuples 500 keys a query
        (a report may ask for every answer of a run)."""
        out: dict[str, Any] = {}
        keys = list(keys)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        what = selected("generations", [column], self.schema_version)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            out.update(cursor.execute(f"SELECT key, {what} FROM generations WHERE key IN ({','.join('?' * len(chunk))})",
                                      chunk))
        return out

    def save_generation(self, row: GenerationRow) -> bool:
        """Store one answer; True when this call stored it, False when the key was already stored.

        Only a key conflict is tolerated (another process stored the same answer): any other
        refusal (NOT NULL, a type SQLite cannot bind) raises, so nothing is dropped silently.
        """
        with self.conn:
            cursor = self.conn.execute(
                f"INSERT INTO generations({', '.join(GENERATION_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(GENERATION_COLUMNS))}) ON CONFLICT(key) DO NOTHING",
                (row.key, row.backend, row.model, stored_json(row.spec), stored_json(row.messages), stored_json(row.params),
                 row.sample_index, row.text, row.finish_reason, row.input_tokens, row.output_tokens, row.latency_s,
                 time.time() if row.created_at is None else row.created_at, stored_features(row.text)))
        return cursor.rowcount == 1

    def link_generations(self, run_id: str, rows: Sequence[tuple[str, str, int, str, str]]) -> None:
        """Record which generation serves (section, prompt, sample, contender) in a run."""
        with self.conn:
            self.conn.executemany(
                "INSERT INTO run_generations(run_id, section, prompt_id, sample_index, contender, gen_key) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING", [(run_id, *r) for r in rows])

    # -- judgments -------------------------------------------------------------------
    def stored_judgment_keys(self, run_id: str) -> set[str]:
        return {r["unit_key"] for r in self.conn.execute("SELECT unit_key FROM judgments WHERE run_id=?", (run_id,))}

    def save_judgment(self, row: JudgmentRow, *, release: tuple[str, Sequence[str]] | None = None) -> bool:
        """Store one verdict; True when this call stored it, False when the unit was already stored.

        As with `save_generation`, only a key conflict is tolerated. `release` is
        ``(owner, lease keys)``: those leases are given back (`release`) in the same
        transaction, one commit per verdict instead of two.
        """
        values = [getattr(row, c) for c in JUDGMENT_COLUMNS]
        if row.scores is not None:
            values[_SCORES_AT] = stored_json(row.scores)
        if row.created_at is None:
            values[_CREATED_AT] = time.time()
        with self.conn:
            cursor = self.conn.execute(_INSERT_JUDGMENT, values)
            if release is not None:
                owner, keys = release
                self.conn.executemany("DELETE FROM leases WHERE key=? AND owner=?", [(k, owner) for k in keys])
        return cursor.rowcount == 1

    def count_judgments(self, run_id: str, keys: Sequence[str] | None = None) -> int:
        """How many verdicts of this run are stored (of `keys`, when given)."""
        if keys is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=?", (run_id,)).fetchone()[0])
        return len(self.stored_judgment_keys(run_id) & set(keys))

    def judgments(self, run_id: str) -> list[JudgmentRow]:
        """The run's stored verdicts as typed rows, in (section, prompt, sample, judge, order) order."""
        rows = self.conn.execute(f"SELECT {selected('judgments', JUDGMENT_COLUMNS, self.schema_version)} "
                                 f"FROM judgments WHERE run_id=? ORDER BY {judgment_order(self.schema_version)}",
                                 (run_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["scores"] = json.loads(d["scores"]) if d["scores"] else None
            out.append(JudgmentRow.from_mapping(d))
        return out

    def iter_judgments_with_texts(self, run_id: str) -> Iterator[dict[str, Any]]:
        columns = selected("judgments", TABLE_COLUMNS["judgments"], self.schema_version, "j.")  # j.*, by name now
        q = (f"SELECT {columns}, ga.text AS text_a, gb.text AS text_b FROM judgments j "
             "JOIN generations ga ON ga.key=j.gen_key_a JOIN generations gb ON gb.key=j.gen_key_b "
             f"WHERE j.run_id=? ORDER BY {judgment_order(self.schema_version, 'j.')}")
        for r in self.conn.execute(q, (run_id,)):
            d = dict(r)
            d["scores"] = json.loads(d["scores"]) if d["scores"] else None
            yield d

    def run_generations(self, run_id: str) -> list[dict[str, Any]]:
        q = ("SELECT rg.section, rg.prompt_id, rg.sample_index, rg.contender, rg.gen_key, g.text, g.input_tokens, "
             "g.output_tokens, g.finish_reason, g.model, g.backend FROM run_generations rg "
             "JOIN generations g ON g.key = rg.gen_key WHERE rg.run_id=?")
        return [dict(r) for r in self.conn.execute(q, (run_id,))]

    # -- provider batches -------------------------------------------------------------
    def save_batch(self, run_id: str, judge: str, batch_id: str, unit_keys: Sequence[str]) -> None:
        """Record a submitted batch at once, so a crash never resubmits it."""
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO batches(run_id, judge, batch_id, unit_keys, status, submitted_at) "
                "VALUES (?,?,?,?,?,?)", (run_id, judge, batch_id, stored_json(list(unit_keys)), "open", time.time()))

    def open_batches(self, run_id: str, judge: str) -> list[tuple[str, list[str]]]:
        rows = self.conn.execute("SELECT batch_id, unit_keys FROM batches WHERE run_id=? AND judge=? AND "
                                 "status='open' ORDER BY submitted_at", (run_id, judge)).fetchall()
        return [(r["batch_id"], json.loads(r["unit_keys"])) for r in rows]

    def finish_batch(self, run_id: str, batch_id: str, status: str = "done") -> None:
        with self.conn:
            self.conn.execute("UPDATE batches SET status=?, finished_at=? WHERE run_id=? AND batch_id=?",
                              (status, time.time(), run_id, batch_id))

    # -- unit leases -----------------------------------------------------------------
    # Lease keys: "g:<generation key>", "j:<run id>:<unit key>", "b:<run id>:<judge>" (a batch judge).
    def claim(self, owner: str, keys: Sequence[str], *, ttl_s: float, since: float,
              stored: Callable[[], bool] | None = None, gone: Callable[[str], bool] | None = None,
              live: Callable[[str], bool] | None = None, now: float | None = None) -> str:
        """Try to lease `keys` together for `ttl_s` seconds; one IMMEDIATE transaction.

        Returns "claimed"; "stored" when `stored()` says the work is already in the store;
        "held" when another owner holds a lease that has not expired; "failed" when another
        owner gave up on it for good after `since` (this process's start), so a peer's
        final failure is not retried by the processes working alongside it (a later
        rerun, started after the failure, does retry it). `gone(owner)` says an owner is known
        to be dead, so its leases count as expired already; `live(owner)` says it is known to be
        alive (a process on this host), so its leases count as held whatever their expiry.
        `now` is the caller's clock (`Leases.now`, which a jumping wall clock does not move).
        """
        keys = list(keys)
        now = time.time() if now is None else now
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if stored is not None and stored():
                return "stored"
            state = self.lease_state(owner, keys, since=since, gone=gone, live=live, now=now)
            if state != "free":
                return state
            self.conn.executemany(
                "INSERT INTO leases(key, owner, state, expires_at, updated_at) VALUES (?,?,'held',?,?) "
                "ON CONFLICT(key) DO UPDATE SET owner=excluded.owner, state='held', expires_at=excluded.expires_at, "
                "updated_at=excluded.updated_at", [(k, owner, now + ttl_s, now) for k in keys])
        return "claimed"

    def lease_state(self, owner: str, keys: Sequence[str], *, since: float,
                    gone: Callable[[str], bool] | None = None, live: Callable[[str], bool] | None = None,
                    now: float | None = None) -> str:
        """Without writing: "failed" or "held" (as in `claim`) by another owner, else "free".

        A recent failure outranks a live lease: both mean "not yours", but "failed" tells
        the caller not to wait for it.
        """
        keys = list(keys)
        now = time.time() if now is None else now
        state = "free"
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self.conn.execute(f"SELECT state, expires_at, updated_at, owner FROM leases WHERE key IN "
                                     f"({','.join('?' * len(chunk))}) AND owner != ?", (*chunk, owner))
            for r in rows:
                if r[0] == "failed" and r[2] >= since:
                    return "failed"
                if r[0] != "held":
                    continue
                if live is not None and live(r[3]):
                    state = "held"  # a live process on this host: never taken over, expired or not
                elif r[1] > now and not (gone is not None and gone(r[3])):
                    state = "held"
        return state

    def release(self, owner: str, keys: Sequence[str], *, failed: bool = False, now: float | None = None) -> None:
        """Give leases back: deleted when the work is stored, marked "failed" when it failed for good."""
        now = time.time() if now is None else now
        with self.conn:
            if failed:
                self.conn.executemany("UPDATE leases SET state='failed', updated_at=? WHERE key=? AND owner=?",
                                      [(now, k, owner) for k in keys])
            else:
                self.conn.executemany("DELETE FROM leases WHERE key=? AND owner=?", [(k, owner) for k in keys])

    def release_all(self, owner: str) -> None:
        """Give back every lease this owner still holds (at the end of a run, or when interrupted)."""
        with self.conn:
            self.conn.execute("DELETE FROM leases WHERE owner=? AND state='held'", (owner,))

    def renew(self, owner: str, ttl_s: float) -> int:
        """Push the expiry of every lease this owner holds `ttl_s` into the future."""
        with self.conn:
            return self.conn.execute("UPDATE leases SET expires_at=? WHERE owner=? AND state='held'",
                                     (time.time() + ttl_s, owner)).rowcount

    # -- errors ----------------------------------------------------------------------
    def save_error(self, *, run_id: str, unit_key: str, unit_kind: str, name: str, attempt: int, kind: str,
                   transient: bool, final: bool, message: str) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO errors(run_id, unit_key, unit_kind, name, attempt, kind, transient, final, message, "
                "created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, unit_key, unit_kind, name, attempt, kind, int(transient), int(final), message[:2000],
                 time.time()))

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM errors WHERE run_id=? ORDER BY id", (run_id,))]

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- a person's undo (browser judging) ----------------------------------------------
    def delete_latest_judgment(self, run_id: str, unit_keys: Sequence[str]) -> str | None:
        """Delete the most recently stored judgment among `unit_keys` in a run; its unit key, or None.

        A person judging in the browser may take back their last verdict; `unit_keys`
        are that person's units, so nobody else's verdict can be undone.
        """
        keys = list(unit_keys)
        latest: tuple[float, int, str] | None = None
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            row = self.conn.execute(
                f"SELECT rowid, unit_key, created_at FROM judgments WHERE run_id=? AND unit_key IN "
                f"({','.join('?' * len(chunk))}) ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [run_id, *chunk]).fetchone()
            if row is not None and (latest is None or (row["created_at"], row["rowid"]) > latest[:2]):
                latest = (row["created_at"], row["rowid"], row["unit_key"])
        if latest is None:
            return None
        with self.conn:
            self.conn.execute("DELETE FROM judgments WHERE run_id=? AND unit_key=?", (run_id, latest[2]))
        return latest[2]

    # -- reads the report, the runs list and the judging page need ----------------------------
    def judgment_stored(self, run_id: str, unit_key: str) -> bool:
        return self.conn.execute("SELECT 1 FROM judgments WHERE run_id=? AND unit_key=?",
                                 (run_id, unit_key)).fetchone() is not None

    def judgment_tuples(self, run_id: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        _known(columns)
        cursor = self.conn.cursor()
        cursor.row_factory = None  # tuples: no per-row dict or sqlite3.Row
        cursor.execute(f"SELECT rowid, {selected('judgments', columns, self.schema_version)} FROM judgments "
                       f"WHERE run_id=? ORDER BY {judgment_order(self.schema_version)}", (run_id,))
        return cursor.fetchall()

    def judgment_values(self, run_id: str, seqs: Sequence[int], columns: Sequence[str]) -> dict[int, tuple[Any, ...]]:
        _known(columns)
        out: dict[int, tuple[Any, ...]] = {}
        cursor = self.conn.cursor()
        cursor.row_factory = None
        what = selected("judgments", columns, self.schema_version)
        seqs = list(seqs)
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            for seq, *values in cursor.execute(f"SELECT rowid, {what} FROM judgments WHERE run_id=? AND rowid IN "
                                               f"({','.join('?' * len(chunk))})", (run_id, *chunk)):
                out[seq] = tuple(values)
        return out

    def judged_answer_texts(self, run_id: str) -> dict[str, str]:
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return dict(cursor.execute(
            "SELECT key, text FROM generations WHERE key IN (SELECT gen_key_a FROM judgments WHERE run_id=? "
            "UNION SELECT gen_key_b FROM judgments WHERE run_id=?)", (run_id, run_id)))

    def run_generation_figures(self, run_id: str) -> list[tuple[Any, ...]]:
        features = selected("generations", ["features"], self.schema_version, "g.")
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(
            "SELECT rg.section, rg.prompt_id, rg.sample_index, rg.contender, rg.gen_key, g.input_tokens, "
            f"g.output_tokens, g.finish_reason, g.model, g.backend, {features} FROM run_generations rg "
            "JOIN generations g ON g.key = rg.gen_key WHERE rg.run_id=?", (run_id,)).fetchall()

    def other_judge_type(self, run_id: str, judge: str) -> str | None:
        row = self.conn.execute("SELECT judge_type FROM judgments WHERE run_id=? AND judge=? AND judge_type!='human' "
                                "LIMIT 1", (run_id, judge)).fetchone()
        return None if row is None else str(row[0])

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT metadata FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"no run {run_id!r}", path=self.path)
        metadata: dict[str, Any] = json.loads(row[0])
        return metadata

    def change_run_metadata(self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            changed = change(self.run_metadata(run_id))
            if changed is not None:
                self.conn.execute("UPDATE runs SET metadata=? WHERE id=?", (stored_json(changed), run_id))

    # -- lease renewals, from the leases' keeper thread -----------------------------------------
    def lease_keeper(self, owner: str) -> LeaseKeeper:
        return _SQLiteLeaseKeeper(self.path, owner)

    # -- moving runs between stores ----------------------------------------------------------------
    def count_rows(self, table: str, run_id: str) -> int:
        query, params = _run_rows_query(table, run_id, count=True, version=self.schema_version)
        return int(self.conn.execute(query, params).fetchone()[0])

    def export_rows(self, table: str, run_id: str) -> Iterator[dict[str, Any]]:
        query, params = _run_rows_query(table, run_id, count=False, version=self.schema_version)
        cursor = self.conn.cursor()
        cursor.row_factory = sqlite3.Row
        for r in cursor.execute(query, params):
            yield dict(r)

    def import_rows(self, table: str, run_id: str, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        columns = list(rows[0])
        if table not in RUN_TABLES or not set(columns) <= EXPECTED_COLUMNS[table]:
            raise ValueError(f"cannot import {table} rows with columns {columns}")
        if table == "generations":
            rows, columns = with_features(rows), list(dict.fromkeys([*columns, "features"]))
        insert = (f"INSERT INTO {table}({', '.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
                  f"{_ON_CONFLICT[table]}")
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if table == "errors" and self.conn.execute("SELECT 1 FROM errors WHERE run_id=? LIMIT 1",
                                                        (run_id,)).fetchone():
                return 0
            before = self.conn.total_changes
            self.conn.executemany(insert, [tuple(r[c] for c in columns) for r in rows])
            return self.conn.total_changes - before


#: How `import_rows` skips a row that is already stored: by each table's content key. A run row
#: copied earlier with status "copying" (an unfinished copy) takes the copied status at the end.
_ON_CONFLICT = {
    "runs": "ON CONFLICT(id) DO UPDATE SET status=excluded.status WHERE runs.status='copying'",
    "generations": "ON CONFLICT(key) DO NOTHING",
    "run_generations": "ON CONFLICT DO NOTHING",
    "judgments": "ON CONFLICT(run_id, unit_key) DO NOTHING",
    "errors": "",
    "batches": "ON CONFLICT(run_id, batch_id) DO NOTHING",
}


def _known(columns: Sequence[str]) -> None:
    if not set(columns) <= set(JUDGMENT_COLUMNS):
        raise ValueError(f"not judgment columns: {sorted(set(columns) - set(JUDGMENT_COLUMNS))}")


def _run_rows_query(table: str, run_id: str, *, count: bool, version: int) -> tuple[str, tuple[str, ...]]:
    """The query for one run's rows of `table` (SQLite), in insertion order, or their count; columns by
    their names now in a database of schema `version` (a copy from an older file reads the same)."""
    what = "COUNT(*)" if count else selected(table, copied_columns(table, TABLE_COLUMNS[table]), version)
    if table == "runs":
        return f"SELECT {what} FROM runs WHERE id=?", (run_id,)
    if table == "generations":
        return (f"SELECT {what} FROM generations WHERE key IN (SELECT gen_key FROM run_generations WHERE run_id=? "
                "UNION SELECT gen_key_a FROM judgments WHERE run_id=? UNION SELECT gen_key_b FROM judgments "
                "WHERE run_id=?)" + ("" if count else " ORDER BY created_at, key")), (run_id, run_id, run_id)
    if table == "errors":
        columns = "COUNT(*)" if count else ", ".join(c for c in TABLE_COLUMNS["errors"] if c != "id")
        return f"SELECT {columns} FROM errors WHERE run_id=?" + ("" if count else " ORDER BY id"), (run_id,)
    if table in ("run_generations", "judgments", "batches"):
        return f"SELECT {what} FROM {table} WHERE run_id=?" + ("" if count else " ORDER BY rowid"), (run_id,)
    raise ValueError(f"not a run table: {table}")


class _SQLiteLeaseKeeper(LeaseKeeper):
    """Renews one owner's leases on its own connection, opened in the keeper thread at first use.

    The connection is opened read-write but never creates the file: were the database
    deleted mid-run, a plain connect would leave an empty file in its place.
    """

    def __init__(self, path: str, owner: str) -> None:
        self.path = path
        self.owner = owner
        self.conn: sqlite3.Connection | None = None

    def renew(self, ttl_s: float, now: float) -> None:
        if self.conn is None:
            self.conn = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=rw", uri=True,
                                        timeout=ttl_s / 3, check_same_thread=False)
        with self.conn:
            self.conn.execute("UPDATE leases SET expires_at=? WHERE owner=? AND state='held'",
                              (now + ttl_s, self.owner))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
