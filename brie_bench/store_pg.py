"""The PostgreSQL store: one shared database for workers on many machines and a team's history.

Same tables, columns and guarantees as the SQLite store (`brie_bench.store`), for a
``postgresql://`` target. What differs is how the guarantees are kept across machines:

* **Leases.** A claim locks the unit's lease rows with ``SELECT ... FOR UPDATE SKIP LOCKED``
  (a row a peer is changing right now counts as held, never waited for), inserts the missing
  ones (``ON CONFLICT DO NOTHING``: two claimers of a new unit cannot both get it), and checks
  that the work is not stored *after* the locks are taken, so a verdict committed a moment
  before is seen. Expiry is measured on the server's clock, so hosts' clocks need not agree.
  A unit with no lease row at all (the usual case) skips the locking: one ``INSERT ... ON
  CONFLICT DO NOTHING`` takes every key or the full claim decides, then the stored check
  (`_claim_new`): two round trips instead of six.
* **Liveness.** Every session that claims or renews for an owner holds a shared session-level
  advisory lock derived from the owner's name. A process that dies loses its sessions, the
  server drops their locks, and `pg_locks` shows the owner gone: its units are taken over at
  once instead of after expiry. Those sessions set TCP keepalive (``tcp_keepalives_*``), so a
  machine that vanishes without closing them is seen gone in about 45 s, not TCP's two hours.
* **Exactly once.** A verdict and its lease release commit in one statement, as on SQLite in
  one transaction.
* **Schema.** ``meta.schema_version`` as in SQLite, created or migrated under a transaction-level
  advisory lock (workers opening a new database at once), checked before anything else; a
  foreign or newer database is refused with the SQLite store's own words.

Column types map faithfully: text (JSON included) stays text byte for byte, SQLite's
``REAL`` is ``DOUBLE PRECISION`` (float64, exact both ways), ``INTEGER`` is ``BIGINT``.
SQLite's ``rowid`` order (which verdict came first) is the ``seq`` column here.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from brie_bench.answer_features import stored_features, with_features
from brie_bench.errors import InputError
from brie_bench.global_limits import KEEPALIVE_SQL
from brie_bench.rows import GENERATION_COLUMNS, JUDGMENT_COLUMNS, GenerationRow, JudgmentRow
from brie_bench.store import FEATURES_ADDED_IN, TABLE_COLUMNS
from brie_bench.store_api import (RUN_TABLES, SCHEMA_VERSION, EmptyDatabase, LeaseKeeper, RunRow, Store,
                                  checked_schema_version, copied_columns, display_target, judgment_order, new_run_id,
                                  selected, stored_columns, stored_json)

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - the extra is installed in development and CI
    psycopg = None  # type: ignore[assignment]

#: An answer's `features` are worked out from its text (`brie_bench.answer_features`): a text changed in
#: place (by hand: Brie Bench never does) clears them, and a report works them out again.
FEATURES_FOLLOW_TEXT = (
    "CREATE OR REPLACE FUNCTION generations_features_follow_text() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN NEW.features := NULL; RETURN NEW; END $$",
    # Dropped and made again rather than CREATE OR REPLACE TRIGGER, which needs PostgreSQL 14.
    "DROP TRIGGER IF EXISTS generations_features_follow_text ON generations",
    "CREATE TRIGGER generations_features_follow_text BEFORE UPDATE OF text ON generations FOR EACH ROW "
    "WHEN (OLD.text IS DISTINCT FROM NEW.text) EXECUTE FUNCTION generations_features_follow_text()",
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, suite_name TEXT NOT NULL, suite_path TEXT NOT NULL, suite_fingerprint TEXT NOT NULL,
        suite_snapshot TEXT NOT NULL, seed BIGINT NOT NULL, status TEXT NOT NULL, versions TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}', created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION, seq BIGSERIAL)""",
    """CREATE TABLE IF NOT EXISTS generations (
        key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, spec TEXT NOT NULL, messages TEXT NOT NULL,
        params TEXT NOT NULL, sample_index BIGINT NOT NULL, text TEXT NOT NULL, finish_reason TEXT,
        input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0, latency_s DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, features TEXT)""",
    """CREATE TABLE IF NOT EXISTS run_generations (
        run_id TEXT NOT NULL, section TEXT NOT NULL, prompt_id TEXT NOT NULL, sample_index BIGINT NOT NULL,
        contender TEXT NOT NULL, gen_key TEXT NOT NULL, seq BIGSERIAL,
        PRIMARY KEY (run_id, section, prompt_id, sample_index, contender))""",
    """CREATE TABLE IF NOT EXISTS judgments (
        run_id TEXT NOT NULL, unit_key TEXT NOT NULL, section TEXT NOT NULL, prompt_id TEXT NOT NULL,
        sample_index BIGINT NOT NULL, judge TEXT NOT NULL, judge_type TEXT NOT NULL, judge_model TEXT,
        baseline TEXT NOT NULL, candidate TEXT NOT NULL, presentation_order BIGINT NOT NULL, label_a TEXT NOT NULL,
        label_b TEXT NOT NULL, gen_key_a TEXT NOT NULL, gen_key_b TEXT NOT NULL, verdict TEXT NOT NULL, winner TEXT,
        p_a DOUBLE PRECISION, scores TEXT, reasoning TEXT, invalid_reason TEXT, raw TEXT NOT NULL,
        input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0, latency_s DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, seq BIGSERIAL, PRIMARY KEY (run_id, unit_key))""",
    """CREATE TABLE IF NOT EXISTS errors (
        id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, unit_key TEXT NOT NULL, unit_kind TEXT NOT NULL,
        name TEXT NOT NULL, attempt BIGINT NOT NULL, kind TEXT NOT NULL, transient BIGINT NOT NULL,
        final BIGINT NOT NULL, message TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS batches (
        run_id TEXT NOT NULL, judge TEXT NOT NULL, batch_id TEXT NOT NULL, unit_keys TEXT NOT NULL,
        status TEXT NOT NULL, submitted_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION, seq BIGSERIAL,
        PRIMARY KEY (run_id, batch_id))""",
    "CREATE INDEX IF NOT EXISTS judgments_by_run ON judgments(run_id, section)",
    "CREATE INDEX IF NOT EXISTS errors_by_run ON errors(run_id)",
    "CREATE INDEX IF NOT EXISTS run_generations_by_key ON run_generations(gen_key)",
    """CREATE TABLE IF NOT EXISTS leases (
        key TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS leases_by_owner ON leases(owner)",
    *FEATURES_FOLLOW_TEXT,
)

#: version -> the statements that bring a database of that version to the next one. PostgreSQL
#: databases start at version 2 (the first with `leases`). A reading open never migrates: it reads
#: a version 2 database's `order_index` as `presentation_order` (`store_api.selected`), since a
#: read-only session (or a standby) can create nothing, not even a temporary view.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE judgments RENAME COLUMN order_index TO presentation_order",),
    3: ("ALTER TABLE generations ADD COLUMN features TEXT", *FEATURES_FOLLOW_TEXT),
}

#: Columns only this store has: SQLite's `rowid` order, kept as `seq`.
_EXTRA_COLUMNS = {"runs": {"seq"}, "run_generations": {"seq"}, "judgments": {"seq"}, "batches": {"seq"}}

#: The advisory lock (transaction level) that serialises creating or migrating the schema, and
#: the one that serialises looking for a run to resume with creating it.
_SCHEMA_LOCK = 0x6272696500000001
_RUNS_LOCK = 0x6272696500000002

_NOW = "extract(epoch from clock_timestamp())::float8"

#: How long a claim's transaction waits for a lock before it answers "held" (well under deadlock_timeout's 1 s).
_CLAIM_WAIT = "200ms"

#: Which table's insertion order `export_rows` follows.
_ORDER = {"runs": "seq", "run_generations": "seq", "judgments": "seq", "batches": "seq", "errors": "id",
          "generations": "created_at, key"}

_ON_CONFLICT = {
    "runs": "ON CONFLICT(id) DO UPDATE SET status=excluded.status WHERE runs.status='copying'",
    "generations": "ON CONFLICT(key) DO NOTHING",
    "run_generations": "ON CONFLICT DO NOTHING",
    "judgments": "ON CONFLICT(run_id, unit_key) DO NOTHING",
    "errors": "",
    "batches": "ON CONFLICT(run_id, batch_id) DO NOTHING",
}


def owner_lock_key(owner: str) -> int:
    """The advisory lock (a signed 64-bit key) that an owner's sessions hold while it lives."""
    return int.from_bytes(hashlib.sha256(b"brie-bench-owner:" + owner.encode()).digest()[:8], "big", signed=True)


def _as_stored(text: str) -> str:
    """`text` as PostgreSQL holds it: NUL written as U+FFFD (`_nul_free`)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _nul_free(base: Any) -> Any:
    """`base`, a psycopg text dumper, writing NUL as U+FFFD: PostgreSQL text cannot hold NUL (SQLite
    can), and a model's answer with one in it must be stored, not fail its unit. The only change a
    copy between the stores can show, for a character no reader can see."""

    class NulFree(base):  # type: ignore[misc]
        def dump(self, obj: str) -> Any:
            return super().dump(_as_stored(obj))

    return NulFree


def _connect(target: str, *, readonly: bool = False) -> Any:
    """An autocommit connection (transactions are explicit), or one line saying why there is none."""
    if psycopg is None:
        raise InputError("the PostgreSQL store needs psycopg: pip install 'brie-bench[postgres]'",
                         path=display_target(target))
    try:
        conn = psycopg.connect(target, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or ["no reason given"])[0]
        raise InputError(f"cannot connect to the database: {first}", path=display_target(target)) from None
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    for base in (StrDumperUnknown, StrBinaryDumper):
        conn.adapters.register_dumper(str, _nul_free(base))
    # The sessions that hold an owner's liveness lock (this one once it claims, and the lease keeper's) must
    # end soon after their machine vanishes without a FIN (power, network), or the owner looks alive and its
    # units wait for TCP's default two hours instead of being taken over in about 45 s: TCP keepalive.
    settings = KEEPALIVE_SQL + ("; SET default_transaction_read_only = on" if readonly else "")
    conn.execute(settings)
    return conn


class PostgresStore(Store):
    """All reads and writes of a PostgreSQL database. One instance per process and thread."""

    def __init__(self, target: str, *, readonly: bool = False) -> None:
        self.target = str(target)
        self.path = display_target(self.target)
        self.readonly = readonly
        self.persistent = True
        self._owners: set[str] = set()
        self._gone: set[str] = set()
        self.conn = _connect(self.target, readonly=readonly)
        try:
            if readonly:
                self._check_readable()
            else:
                with self.conn.transaction():
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    self._create_or_migrate()
        except BaseException:
            self.conn.close()
            raise

    # -- schema version ------------------------------------------------------------------------
    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'")}

    def _stored_version(self, tables: set[str]) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
            if "meta" in tables else None
        return checked_schema_version(tables, row[0] if row else None, missing=0, path=self.path)

    def _check_columns(self, version: int) -> None:
        have: dict[str, set[str]] = {}
        for table, column in self.conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"):
            have.setdefault(table, set()).add(column)
        for table, columns in TABLE_COLUMNS.items():
            if table == "leases" and version < 2:
                continue
            wanted = stored_columns(table, columns, version) | _EXTRA_COLUMNS.get(table, set())
            if table not in have:
                raise InputError(f"the database does not match schema version {version}: table {table!r} is "
                                 f"missing", path=self.path)
            missing = sorted(wanted - have[table])
            if missing:
                raise InputError(f"the database does not match schema version {version}: table {table!r} has "
                                 f"no column {', '.join(missing)}", path=self.path)

    def _check_readable(self) -> None:
        tables = self._tables()
        if not tables:
            raise EmptyDatabase(self.path)
        version = self._stored_version(tables)
        self._check_columns(version)
        self.schema_version = version

    def _create_or_migrate(self) -> None:
        tables = self._tables()
        if not tables:
            for statement in SCHEMA:
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
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
        self.conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', %s) ON CONFLICT(key) DO UPDATE "
                          "SET value=excluded.value", (str(version),))
        self._check_columns(version)
        self.schema_version = version

    def _fill_features(self) -> None:
        """Work out `features` for the answers stored before schema 4 (as `SQLiteStore._fill_features`)."""
        keys = [r[0] for r in self.conn.execute("SELECT key FROM generations WHERE features IS NULL")]
        with self.conn.cursor() as cursor:
            for i in range(0, len(keys), 500):
                rows = self.conn.execute("SELECT key, text FROM generations WHERE key = ANY(%s)",
                                         (keys[i:i + 500],)).fetchall()
                cursor.executemany("UPDATE generations SET features=%s WHERE key=%s",
                                   [(stored_features(text), key) for key, text in rows])

    # -- the connection ------------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def check_present(self) -> None:
        """Nothing to check: a dropped database or a lost server fails the next statement itself."""

    def integrity_check(self) -> str:
        self.conn.execute("SELECT 1").fetchone()
        return "ok"

    def clock(self) -> float:
        return float(self.conn.execute(f"SELECT {_NOW}").fetchone()[0])

    def set_busy_timeout(self, seconds: float) -> None:
        self.conn.execute(f"SET lock_timeout = {max(0, int(seconds * 1000))}")

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, *, suite_name: str, suite_path: str, fingerprint: str, snapshot: dict[str, Any],
                   seed: int, versions: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
        with self.conn.transaction():
            return self._insert_run(suite_name, suite_path, fingerprint, snapshot, seed, versions, metadata)

    def resume_or_create_run(self, *, new: bool, suite_name: str, suite_path: str, fingerprint: str,
                             snapshot: dict[str, Any], seed: int, versions: dict[str, Any],
                             metadata: dict[str, Any] | None = None) -> tuple[str, bool]:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RUNS_LOCK,))
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
            "versions, metadata, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (run_id, suite_name, suite_path, fingerprint, stored_json(snapshot), seed, "created",
             stored_json(versions), stored_json(metadata or {}), time.time()))
        return run_id

    def find_resumable_run(self, fingerprint: str, seed: int) -> str | None:
        row = self.conn.execute("SELECT id FROM runs WHERE suite_fingerprint=%s AND seed=%s "
                                "ORDER BY created_at DESC, seq DESC LIMIT 1", (fingerprint, seed)).fetchone()
        return None if row is None else str(row[0])

    def mark_run(self, run_id: str, status: str) -> None:
        column = "started_at" if status == "running" else "finished_at"
        self.conn.execute(f"UPDATE runs SET status=%s, {column}=%s WHERE id=%s", (status, time.time(), run_id))

    def update_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> None:
        self.conn.execute("UPDATE runs SET metadata=%s WHERE id=%s", (stored_json(metadata), run_id))

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT metadata FROM runs WHERE id=%s", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"no run {run_id!r}", path=self.path)
        metadata: dict[str, Any] = json.loads(row[0])
        return metadata

    def change_run_metadata(self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        with self.conn.transaction():
            row = self.conn.execute("SELECT metadata FROM runs WHERE id=%s FOR UPDATE", (run_id,)).fetchone()
            if row is None:
                raise InputError(f"no run {run_id!r}", path=self.path)
            changed = change(json.loads(row[0]))
            if changed is not None:
                self.conn.execute("UPDATE runs SET metadata=%s WHERE id=%s", (stored_json(changed), run_id))

    _RUN_COLUMNS = ("id, suite_name, suite_path, suite_fingerprint, seed, status, created_at, finished_at, "
                    "metadata, versions")

    @staticmethod
    def _run_row(r: Sequence[Any]) -> RunRow:
        return RunRow(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], r[7], json.loads(r[8]), json.loads(r[9]))

    def runs(self) -> list[RunRow]:
        rows = self.conn.execute(f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY created_at, seq").fetchall()
        return [self._run_row(r) for r in rows]

    def run(self, run_id: str | None = None) -> RunRow:
        if run_id is None:
            row = self.conn.execute(f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY created_at DESC, seq DESC "
                                    "LIMIT 1").fetchone()
            if row is None:
                raise InputError("no runs stored yet", path=self.path)
            return self._run_row(row)
        rows = self.conn.execute(f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id LIKE %s ORDER BY created_at",
                                 (run_id.replace("%", "") + "%",)).fetchall()
        if not rows:
            raise InputError(f"no run {run_id!r}", path=self.path)
        if len(rows) > 1 and rows[0][0] != run_id:
            raise InputError(f"run id prefix {run_id!r} is ambiguous", path=self.path)
        return self._run_row(rows[0])

    def suite_snapshot(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT suite_snapshot FROM runs WHERE id=%s", (run_id,)).fetchone()
        snapshot: dict[str, Any] = json.loads(row[0])
        return snapshot

    # -- generations ---------------------------------------------------------------------------
    def stored_generation_keys(self, keys: Iterable[str]) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM generations WHERE key = ANY(%s)", (list(keys),))}

    def generation_texts(self, keys: Iterable[str]) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, text FROM generations WHERE key = ANY(%s)", (list(keys),)))

    def generation_features(self, keys: Iterable[str]) -> dict[str, str | None]:
        features = selected("generations", ["features"], self.schema_version)
        return dict(self.conn.execute(f"SELECT key, {features} FROM generations WHERE key = ANY(%s)", (list(keys),)))

    def save_generation(self, row: GenerationRow) -> bool:
        cursor = self.conn.execute(
            f"INSERT INTO generations({', '.join(GENERATION_COLUMNS)}) "
            f"VALUES ({','.join(['%s'] * len(GENERATION_COLUMNS))}) ON CONFLICT(key) DO NOTHING",
            (row.key, row.backend, row.model, stored_json(row.spec), stored_json(row.messages), stored_json(row.params),
             row.sample_index, row.text, row.finish_reason, row.input_tokens, row.output_tokens, row.latency_s,
             time.time() if row.created_at is None else row.created_at, stored_features(row.text, _as_stored)))
        return bool(cursor.rowcount == 1)

    def link_generations(self, run_id: str, rows: Sequence[tuple[str, str, int, str, str]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO run_generations(run_id, section, prompt_id, sample_index, contender, gen_key) "
                "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING", [(run_id, *r) for r in rows])

    def run_generations(self, run_id: str) -> list[dict[str, Any]]:
        names = ("section", "prompt_id", "sample_index", "contender", "gen_key", "text", "input_tokens",
                 "output_tokens", "finish_reason", "model", "backend")
        rows = self.conn.execute(
            "SELECT rg.section, rg.prompt_id, rg.sample_index, rg.contender, rg.gen_key, g.text, g.input_tokens, "
            "g.output_tokens, g.finish_reason, g.model, g.backend FROM run_generations rg "
            "JOIN generations g ON g.key = rg.gen_key WHERE rg.run_id=%s ORDER BY rg.seq", (run_id,))
        return [dict(zip(names, r)) for r in rows]

    def run_generation_figures(self, run_id: str) -> list[tuple[Any, ...]]:
        features = selected("generations", ["features"], self.schema_version, "g.")
        return [tuple(r) for r in self.conn.execute(
            "SELECT rg.section, rg.prompt_id, rg.sample_index, rg.contender, rg.gen_key, g.input_tokens, "
            f"g.output_tokens, g.finish_reason, g.model, g.backend, {features} FROM run_generations rg "
            "JOIN generations g ON g.key = rg.gen_key WHERE rg.run_id=%s ORDER BY rg.seq", (run_id,))]

    # -- judgments -----------------------------------------------------------------------------
    def stored_judgment_keys(self, run_id: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT unit_key FROM judgments WHERE run_id=%s", (run_id,))}

    def judgment_stored(self, run_id: str, unit_key: str) -> bool:
        return self.conn.execute("SELECT 1 FROM judgments WHERE run_id=%s AND unit_key=%s",
                                 (run_id, unit_key)).fetchone() is not None

    def save_judgment(self, row: JudgmentRow, *, release: tuple[str, Sequence[str]] | None = None) -> bool:
        values = [getattr(row, c) for c in JUDGMENT_COLUMNS]
        if row.scores is not None:
            values[JUDGMENT_COLUMNS.index("scores")] = stored_json(row.scores)
        if row.created_at is None:
            values[JUDGMENT_COLUMNS.index("created_at")] = time.time()
        insert = (f"INSERT INTO judgments({', '.join(JUDGMENT_COLUMNS)}) "
                  f"VALUES ({','.join(['%s'] * len(JUDGMENT_COLUMNS))}) ON CONFLICT(run_id, unit_key) DO NOTHING")
        if release is not None:
            # The verdict and its lease release in one statement, so one transaction and one round trip: a
            # data-modifying WITH runs to completion whether or not the INSERT reads it.
            owner, keys = release
            insert = "WITH released AS (DELETE FROM leases WHERE key = ANY(%s) AND owner=%s) " + insert
            values = [list(keys), owner, *values]
        cursor = self.conn.execute(insert, values)
        return bool(cursor.rowcount == 1)

    def count_judgments(self, run_id: str, keys: Sequence[str] | None = None) -> int:
        if keys is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=%s", (run_id,)).fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=%s AND unit_key = ANY(%s)",
                                     (run_id, list(set(keys)))).fetchone()[0])

    def judgments(self, run_id: str) -> list[JudgmentRow]:
        rows = self.conn.execute(f"SELECT {selected('judgments', JUDGMENT_COLUMNS, self.schema_version)} FROM "
                                 f"judgments WHERE run_id=%s ORDER BY {judgment_order(self.schema_version)}", (run_id,))
        out = []
        for r in rows:
            d = dict(zip(JUDGMENT_COLUMNS, r))
            d["scores"] = json.loads(d["scores"]) if d["scores"] else None
            out.append(JudgmentRow.from_mapping(d))
        return out

    def iter_judgments_with_texts(self, run_id: str) -> Iterator[dict[str, Any]]:
        names = (*JUDGMENT_COLUMNS, "text_a", "text_b")
        q = (f"SELECT {selected('judgments', JUDGMENT_COLUMNS, self.schema_version, 'j.')}, ga.text, gb.text "
             "FROM judgments j JOIN generations ga ON ga.key=j.gen_key_a JOIN generations gb ON gb.key=j.gen_key_b "
             f"WHERE j.run_id=%s ORDER BY {judgment_order(self.schema_version, 'j.')}")
        for r in self.conn.execute(q, (run_id,)).fetchall():
            d = dict(zip(names, r))
            d["scores"] = json.loads(d["scores"]) if d["scores"] else None
            yield d

    def judgment_tuples(self, run_id: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        if not set(columns) <= set(JUDGMENT_COLUMNS):
            raise ValueError(f"not judgment columns: {sorted(set(columns) - set(JUDGMENT_COLUMNS))}")
        return [tuple(r) for r in self.conn.execute(
            f"SELECT seq, {selected('judgments', columns, self.schema_version)} FROM judgments WHERE run_id=%s "
            f"ORDER BY {judgment_order(self.schema_version)}", (run_id,))]

    def judgment_values(self, run_id: str, seqs: Sequence[int], columns: Sequence[str]) -> dict[int, tuple[Any, ...]]:
        if not set(columns) <= set(JUDGMENT_COLUMNS):
            raise ValueError(f"not judgment columns: {sorted(set(columns) - set(JUDGMENT_COLUMNS))}")
        return {seq: tuple(values) for seq, *values in self.conn.execute(
            f"SELECT seq, {selected('judgments', columns, self.schema_version)} FROM judgments "
            f"WHERE run_id=%s AND seq = ANY(%s)", (run_id, list(seqs)))}

    def judged_answer_texts(self, run_id: str) -> dict[str, str]:
        return dict(self.conn.execute(
            "SELECT key, text FROM generations WHERE key IN (SELECT gen_key_a FROM judgments WHERE run_id=%s "
            "UNION SELECT gen_key_b FROM judgments WHERE run_id=%s)", (run_id, run_id)))

    def other_judge_type(self, run_id: str, judge: str) -> str | None:
        row = self.conn.execute("SELECT judge_type FROM judgments WHERE run_id=%s AND judge=%s AND "
                                "judge_type!='human' LIMIT 1", (run_id, judge)).fetchone()
        return None if row is None else str(row[0])

    def delete_latest_judgment(self, run_id: str, unit_keys: Sequence[str]) -> str | None:
        with self.conn.transaction():
            row = self.conn.execute("SELECT unit_key FROM judgments WHERE run_id=%s AND unit_key = ANY(%s) "
                                    "ORDER BY created_at DESC, seq DESC LIMIT 1", (run_id, list(unit_keys))).fetchone()
            if row is None:
                return None
            self.conn.execute("DELETE FROM judgments WHERE run_id=%s AND unit_key=%s", (run_id, row[0]))
        return str(row[0])

    # -- provider batches ----------------------------------------------------------------------
    def save_batch(self, run_id: str, judge: str, batch_id: str, unit_keys: Sequence[str]) -> None:
        self.conn.execute("INSERT INTO batches(run_id, judge, batch_id, unit_keys, status, submitted_at) "
                          "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                          (run_id, judge, batch_id, stored_json(list(unit_keys)), "open", time.time()))

    def open_batches(self, run_id: str, judge: str) -> list[tuple[str, list[str]]]:
        rows = self.conn.execute("SELECT batch_id, unit_keys FROM batches WHERE run_id=%s AND judge=%s AND "
                                 "status='open' ORDER BY submitted_at", (run_id, judge)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def finish_batch(self, run_id: str, batch_id: str, status: str = "done") -> None:
        self.conn.execute("UPDATE batches SET status=%s, finished_at=%s WHERE run_id=%s AND batch_id=%s",
                          (status, time.time(), run_id, batch_id))

    # -- unit leases ---------------------------------------------------------------------------
    def _register(self, owner: str) -> None:
        """Hold `owner`'s liveness lock on this session (once): peers see the owner alive while it is open."""
        if owner not in self._owners:
            self.conn.execute("SELECT pg_advisory_lock_shared(%s)", (owner_lock_key(owner),))
            self._owners.add(owner)

    def owner_gone(self, owner: str) -> bool:
        """Whether no session holds `owner`'s liveness lock any more (its process died or closed)."""
        if owner in self._gone:
            return True
        key = owner_lock_key(owner) & 0xFFFFFFFFFFFFFFFF
        alive = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype='advisory' AND granted AND objsubid=1 "
            "AND classid=%s::bigint::oid AND objid=%s::bigint::oid AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()))",
            (key >> 32, key & 0xFFFFFFFF)).fetchone()[0]
        if not alive:
            self._gone.add(owner)  # an owner's name is never reused: gone stays gone
        return not alive

    def _state_of(self, owner: str, rows: Iterable[Sequence[Any]], *, since: float, now: float,
                  gone: Callable[[str], bool] | None) -> str:
        state = "free"
        for _key, other, lease_state, expires_at, updated_at in rows:
            if other == owner:
                continue
            if lease_state == "failed" and updated_at >= since:
                return "failed"
            if lease_state != "held" or expires_at <= now:
                continue
            if (gone is not None and gone(other)) or self.owner_gone(other):
                continue
            state = "held"
        return state

    def claim(self, owner: str, keys: Sequence[str], *, ttl_s: float, since: float,
              stored: Callable[[], bool] | None = None, gone: Callable[[str], bool] | None = None,
              live: Callable[[str], bool] | None = None, now: float | None = None) -> str:
        """As `SQLiteStore.claim`, with row locks instead of one writer at a time.

        `live` is not needed here (expiry is measured on the server's one clock, and a live
        owner's sessions say so themselves); `now` is ignored for the same reason.
        """
        wanted = sorted(set(keys))  # one order for every claimer: no two wait on each other
        self._register(owner)
        try:
            fast = self._claim_new(owner, wanted, ttl_s=ttl_s, stored=stored)
        except (pg_errors.DeadlockDetected, pg_errors.LockNotAvailable):
            return "held"  # two claimers crossed; the other one won
        if fast is not None:
            return fast
        result = "claimed"
        try:
            with self.conn.transaction() as tx:
                # A claim never waits long on a peer (an insert of the same key, a release deleting a row
                # this claim skipped): it answers "held" after _CLAIM_WAIT instead. A release waiting on
                # this claim's row locks while this claim waits on it would otherwise deadlock, and
                # PostgreSQL might pick the release (a stored verdict's) as the victim.
                server_now = float(self.conn.execute(
                    f"SELECT {_NOW}, set_config('lock_timeout', %s, true)", (_CLAIM_WAIT,)).fetchone()[0])
                locked = self.conn.execute(
                    "SELECT key, owner, state, expires_at, updated_at FROM leases WHERE key = ANY(%s) ORDER BY key "
                    "FOR UPDATE SKIP LOCKED", (wanted,)).fetchall()
                have = {r[0] for r in locked}
                missing = [k for k in wanted if k not in have]
                if missing:
                    inserted = {r[0] for r in self.conn.execute(
                        "INSERT INTO leases(key, owner, state, expires_at, updated_at) "
                        "SELECT k, %s, 'held', %s, %s FROM unnest(%s::text[]) AS k ORDER BY k "
                        "ON CONFLICT(key) DO NOTHING RETURNING key",
                        (owner, server_now + ttl_s, server_now, missing))}
                    if len(inserted) < len(missing):
                        result = "held"  # a peer is changing or has just taken one of them
                        raise psycopg.Rollback(tx)
                result = self._state_of(owner, locked, since=since, now=server_now, gone=gone)
                if result == "free":
                    result = "claimed"
                if result == "claimed" and stored is not None and stored():
                    result = "stored"
                if result != "claimed":
                    raise psycopg.Rollback(tx)
                if have:
                    self.conn.execute("UPDATE leases SET owner=%s, state='held', expires_at=%s, updated_at=%s "
                                      "WHERE key = ANY(%s)", (owner, server_now + ttl_s, server_now, sorted(have)))
        except (pg_errors.DeadlockDetected, pg_errors.LockNotAvailable):
            return "held"  # two claimers crossed; the other one won
        return result

    #: Lease every key when none has a lease row at all (a unit nobody has touched: the usual case), in
    #: one statement on the server's clock. Keys are inserted in order, as the full claim locks them.
    _CLAIM_NEW = ("INSERT INTO leases(key, owner, state, expires_at, updated_at) SELECT k, %(owner)s, 'held', "
                  f"c.now + %(ttl)s, c.now FROM unnest(%(keys)s::text[]) AS k, (SELECT {_NOW} AS now) AS c "
                  "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE key = ANY(%(keys)s::text[])) ORDER BY k "
                  "ON CONFLICT(key) DO NOTHING RETURNING key")

    def _claim_new(self, owner: str, wanted: list[str], *, ttl_s: float,
                   stored: Callable[[], bool] | None) -> str | None:
        """The claim in two round trips when no key has a lease row: "claimed" or "stored"; None: do the full claim.

        The insert commits at once (autocommit), and the stored check comes after it. That
        order keeps exactly once: the insert succeeds only where no lease row exists, and a
        peer deletes its lease in the same transaction that stores the work, so work stored
        before the insert is seen by the check; the lease is then given back ("stored"). Where
        a peer got some of the keys first (overlapping batches, at the same moment), the keys
        taken here are given back and the full claim decides. (Sending the check with the
        insert in pipeline mode saves a round trip but cost more than it saved on loopback.)
        """
        params = {"owner": owner, "ttl": ttl_s, "keys": wanted}
        taken = [r[0] for r in self.conn.execute(self._CLAIM_NEW, params).fetchall()]
        if not taken:
            return None
        try:
            if len(taken) < len(wanted):
                return None
            if stored is not None and stored():
                return "stored"
            taken = []  # claimed: kept
            return "claimed"
        finally:
            if taken:  # given back: stored, partly taken, or the stored check failed
                self.conn.execute("DELETE FROM leases WHERE key = ANY(%s) AND owner=%s", (taken, owner))

    def lease_state(self, owner: str, keys: Sequence[str], *, since: float,
                    gone: Callable[[str], bool] | None = None, live: Callable[[str], bool] | None = None,
                    now: float | None = None) -> str:
        server_now = self.clock()
        rows = self.conn.execute("SELECT key, owner, state, expires_at, updated_at FROM leases WHERE key = ANY(%s)",
                                 (list(keys),)).fetchall()
        return self._state_of(owner, rows, since=since, now=server_now, gone=gone)

    def release(self, owner: str, keys: Sequence[str], *, failed: bool = False, now: float | None = None) -> None:
        if failed:
            statement = f"UPDATE leases SET state='failed', updated_at={_NOW} WHERE key = ANY(%s) AND owner=%s"
        else:
            statement = "DELETE FROM leases WHERE key = ANY(%s) AND owner=%s"
        for attempt in range(3):
            try:
                self.conn.execute(statement, (list(keys), owner))
                return
            except pg_errors.DeadlockDetected:
                # Crossed with this owner's lease keeper renewing the same rows in another order; the
                # statement was rolled back whole and changes nothing twice: run it again.
                if attempt == 2 or self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    raise

    def release_all(self, owner: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE owner=%s AND state='held'", (owner,))
        if owner in self._owners:
            self.conn.execute("SELECT pg_advisory_unlock_shared(%s)", (owner_lock_key(owner),))
            self._owners.discard(owner)

    def renew(self, owner: str, ttl_s: float) -> int:
        cursor = self.conn.execute(f"UPDATE leases SET expires_at={_NOW} + %s WHERE owner=%s AND state='held'",
                                   (ttl_s, owner))
        return int(cursor.rowcount)

    def lease_keeper(self, owner: str) -> LeaseKeeper:
        return _PostgresLeaseKeeper(self.target, owner)

    # -- errors --------------------------------------------------------------------------------
    def save_error(self, *, run_id: str, unit_key: str, unit_kind: str, name: str, attempt: int, kind: str,
                   transient: bool, final: bool, message: str) -> None:
        self.conn.execute(
            "INSERT INTO errors(run_id, unit_key, unit_kind, name, attempt, kind, transient, final, message, "
            "created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (run_id, unit_key, unit_kind, name, attempt, kind, int(transient), int(final), message[:2000],
             time.time()))

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        names = TABLE_COLUMNS["errors"]
        rows = self.conn.execute(f"SELECT {', '.join(names)} FROM errors WHERE run_id=%s ORDER BY id", (run_id,))
        return [dict(zip(names, r)) for r in rows]

    # -- moving runs between stores ------------------------------------------------------------
    def _run_rows_query(self, table: str, *, count: bool) -> tuple[str, int]:
        """The query for one run's rows of `table` and how many times it takes the run id."""
        if table not in RUN_TABLES:
            raise ValueError(f"not a run table: {table}")
        what = "COUNT(*)" if count else selected(table, _copied(table), self.schema_version)
        order = "" if count else f" ORDER BY {_ORDER[table]}"
        if table == "generations":
            return (f"SELECT {what} FROM generations WHERE key IN (SELECT gen_key FROM run_generations WHERE "
                    "run_id=%s UNION SELECT gen_key_a FROM judgments WHERE run_id=%s UNION SELECT gen_key_b FROM "
                    f"judgments WHERE run_id=%s){order}", 3)
        where = "id" if table == "runs" else "run_id"
        return f"SELECT {what} FROM {table} WHERE {where}=%s{order}", 1

    def count_rows(self, table: str, run_id: str) -> int:
        query, n = self._run_rows_query(table, count=True)
        return int(self.conn.execute(query, (run_id,) * n).fetchone()[0])

    def export_rows(self, table: str, run_id: str) -> Iterator[dict[str, Any]]:
        query, n = self._run_rows_query(table, count=False)
        columns = _copied(table)
        # A server-side cursor (inside a transaction): a run's rows are streamed, never all in memory.
        with self.conn.transaction(), self.conn.cursor(name=f"export_{table}_{uuid.uuid4().hex[:8]}") as cursor:
            cursor.itersize = 1000
            cursor.execute(query, (run_id,) * n)
            for r in cursor:
                yield dict(zip(columns, r))

    def import_rows(self, table: str, run_id: str, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        columns = list(rows[0])
        if table not in RUN_TABLES or not set(columns) <= set(TABLE_COLUMNS[table]):
            raise ValueError(f"cannot import {table} rows with columns {columns}")
        if table == "generations":
            rows, columns = with_features(rows, _as_stored), list(dict.fromkeys([*columns, "features"]))
        insert = (f"INSERT INTO {table}({', '.join(columns)}) VALUES ({','.join(['%s'] * len(columns))}) "
                  f"{_ON_CONFLICT[table]}")
        with self.conn.transaction():
            if table == "errors":
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (owner_lock_key("errors:" + run_id),))
                if self.conn.execute("SELECT 1 FROM errors WHERE run_id=%s LIMIT 1", (run_id,)).fetchone():
                    return 0
            with self.conn.cursor() as cursor:
                cursor.executemany(insert, [tuple(r[c] for c in columns) for r in rows])
                new = int(cursor.rowcount)  # psycopg >= 3.1: the rows all the statements changed
        return max(new, 0)


def _copied(table: str) -> list[str]:
    """The columns of `table` a copy of a run moves: not the derived ones, nor the errors' own ids."""
    return [c for c in copied_columns(table, TABLE_COLUMNS[table]) if not (table == "errors" and c == "id")]


class _PostgresLeaseKeeper(LeaseKeeper):
    """Renews one owner's leases on a session of its own, which also holds the owner's liveness lock.

    Opened when the owner's `Leases` start, so peers see the owner alive from its first claim
    on; a lost connection is opened again (and the lock taken again) at the next renewal.
    """

    def __init__(self, target: str, owner: str) -> None:
        self.target = target
        self.owner = owner
        self.conn: Any = None
        self._open()

    def _open(self) -> None:
        try:
            self.conn = _connect(self.target)
        except InputError as exc:  # in the keeper thread, a lost server is a database error: retried
            raise psycopg.OperationalError(str(exc)) from None
        self.conn.execute("SELECT pg_advisory_lock_shared(%s)", (owner_lock_key(self.owner),))

    def renew(self, ttl_s: float, now: float) -> None:
        if self.conn is None or self.conn.closed:
            self._open()
        self.conn.execute(f"UPDATE leases SET expires_at={_NOW} + %s WHERE owner=%s AND state='held'",
                          (ttl_s, self.owner))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
