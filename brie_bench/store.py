"""One embedded SQLite file (WAL) holding runs, generations, judgments and errors.

Generations are cached globally by their content key, so a new run of the
same suite reuses them; judgments belong to a run. Every finished unit is
committed at once, so a crash loses at most the calls in flight. Nothing
here ever holds an API key: rows are built from records that carry none.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from brie_bench.errors import InputError

SCHEMA_VERSION = 1

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
);
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
    order_index INTEGER NOT NULL,
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
"""


@dataclass(frozen=True)
class RunRow:
    id: str
    suite_name: str
    suite_path: str
    suite_fingerprint: str
    seed: int
    status: str
    created_at: float
    finished_at: float | None
    metadata: dict[str, Any]
    versions: dict[str, Any]

    @property
    def snapshot(self) -> dict[str, Any]:  # pragma: no cover - convenience
        raise AttributeError("use Store.suite_snapshot(run_id)")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


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

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            result = super().__exit__(exc_type, exc, tb)
        except sqlite3.OperationalError as commit_error:  # the COMMIT itself was refused
            raise _explained(commit_error) from commit_error
        if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, StoreWriteError):
            explained = _explained(exc)
            if explained is not exc:
                raise explained from exc
        return result


def _explained(exc: sqlite3.OperationalError) -> sqlite3.OperationalError:
    what = _REFUSED_WRITES.get(str(exc).strip().lower())
    if what is None:
        return exc
    return StoreWriteError(f"cannot write: {what} ({exc}). Everything stored before this is kept; "
                           f"fix that (or pass --db with another file) and rerun the same command to continue")


def _writable(path: Path) -> bool:
    """Can this process create or change `path` (the file, or its folder when the file is new)?"""
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK) and os.access(path.parent, os.W_OK)


class Store:
    """All reads and writes of the SQLite file. One instance per process and thread."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        try:
            if readonly:
                if not Path(self.path).exists():
                    raise InputError("database not found", path=self.path)
                self.conn = self._open_readonly()
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
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open database: {exc}", path=self.path) from None
        self.conn.row_factory = sqlite3.Row

    def _prepare(self, wait_s: float = 30.0) -> None:
        """WAL mode and the schema; waits while another process is doing the same.

        Two runs started at once on a new file both switch it to WAL and create the
        tables. Switching the journal mode can answer "database is locked" at once,
        without SQLite's busy timeout, while the other connection holds its lock, so
        retry for a while rather than fail one of the runs.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(SCHEMA)
                self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                                  (str(SCHEMA_VERSION),))
                self.conn.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                self.conn.rollback()
                time.sleep(0.02)

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

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ------------------------------------------------------------------------
    def create_run(self, *, suite_name: str, suite_path: str, fingerprint: str, snapshot: dict[str, Any],
                   seed: int, versions: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs(id, suite_name, suite_path, suite_fingerprint, suite_snapshot, seed, status, "
                "versions, metadata, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, suite_name, suite_path, fingerprint, _dumps(snapshot), seed, "created",
                 _dumps(versions), _dumps(metadata or {}), time.time()))
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
            self.conn.execute("UPDATE runs SET metadata=? WHERE id=?", (_dumps(metadata), run_id))

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
        return json.loads(row["suite_snapshot"])

    @staticmethod
    def _run_row(r: sqlite3.Row) -> RunRow:
        return RunRow(r["id"], r["suite_name"], r["suite_path"], r["suite_fingerprint"], r["seed"], r["status"],
                      r["created_at"], r["finished_at"], json.loads(r["metadata"]), json.loads(r["versions"]))

    # -- generations -----------------------------------------------------------------
    def stored_generation_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(r["key"] for r in self.conn.execute(q, chunk))
        return found

    def generation_texts(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, text FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
            out.update((r["key"], r["text"]) for r in self.conn.execute(q, chunk))
        return out

    def save_generation(self, *, key: str, backend: str, model: str, spec: dict[str, Any],
                        messages: list[dict[str, str]], params: dict[str, Any], sample_index: int, text: str,
                        finish_reason: str | None, input_tokens: int, output_tokens: int, latency_s: float) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO generations(key, backend, model, spec, messages, params, sample_index, text, "
                "finish_reason, input_tokens, output_tokens, latency_s, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, backend, model, _dumps(spec), _dumps(messages), _dumps(params), sample_index, text,
                 finish_reason, input_tokens, output_tokens, latency_s, time.time()))

    def link_generations(self, run_id: str, rows: Sequence[tuple[str, str, int, str, str]]) -> None:
        """Record which generation serves (section, prompt, sample, contender) in a run."""
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO run_generations(run_id, section, prompt_id, sample_index, contender, gen_key) "
                "VALUES (?,?,?,?,?,?)", [(run_id, *r) for r in rows])

    # -- judgments -------------------------------------------------------------------
    def stored_judgment_keys(self, run_id: str) -> set[str]:
        return {r["unit_key"] for r in self.conn.execute("SELECT unit_key FROM judgments WHERE run_id=?", (run_id,))}

    def save_judgment(self, row: dict[str, Any]) -> None:
        row = dict(row)
        if row.get("scores") is not None:
            row["scores"] = _dumps(row["scores"])
        row.setdefault("created_at", time.time())
        cols = ",".join(row)
        with self.conn:
            self.conn.execute(f"INSERT OR IGNORE INTO judgments({cols}) VALUES ({','.join('?' * len(row))})",
                              list(row.values()))

    def judgments(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM judgments WHERE run_id=? ORDER BY section, prompt_id, sample_index, "
                                 "judge, order_index", (run_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["scores"] = json.loads(d["scores"]) if d["scores"] else None
            out.append(d)
        return out

    def iter_judgments_with_texts(self, run_id: str) -> Iterator[dict[str, Any]]:
        q = ("SELECT j.*, ga.text AS text_a, gb.text AS text_b FROM judgments j "
             "JOIN generations ga ON ga.key=j.gen_key_a JOIN generations gb ON gb.key=j.gen_key_b "
             "WHERE j.run_id=? ORDER BY j.section, j.prompt_id, j.sample_index, j.judge, j.order_index")
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
                "VALUES (?,?,?,?,?,?)", (run_id, judge, batch_id, _dumps(list(unit_keys)), "open", time.time()))

    def open_batches(self, run_id: str, judge: str) -> list[tuple[str, list[str]]]:
        rows = self.conn.execute("SELECT batch_id, unit_keys FROM batches WHERE run_id=? AND judge=? AND "
                                 "status='open' ORDER BY submitted_at", (run_id, judge)).fetchall()
        return [(r["batch_id"], json.loads(r["unit_keys"])) for r in rows]

    def finish_batch(self, run_id: str, batch_id: str, status: str = "done") -> None:
        with self.conn:
            self.conn.execute("UPDATE batches SET status=?, finished_at=? WHERE run_id=? AND batch_id=?",
                              (status, time.time(), run_id, batch_id))

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
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
