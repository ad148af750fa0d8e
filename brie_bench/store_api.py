"""The one storage interface: what the rest of Brie Bench may ask of a results store.

Two implementations stand behind it, and only they (and this module) contain SQL:

* `brie_bench.store.SQLiteStore`: one embedded SQLite file, the default (a path or
  ``sqlite:///PATH``);
* `brie_bench.store_pg.PostgresStore`: a shared PostgreSQL database
  (``postgresql://...`` or ``postgres://...``), so workers on many machines share one run and
  a team keeps one history. It needs the optional ``psycopg`` extra, imported only when such
  a URL is opened: the SQLite path never imports it.

`Store(target)` (or `open_store`) picks the implementation from the target, so every
``Store(db)`` call site works with both and every ``store: Store`` annotation covers both.
The base class's methods define the contract (each says what both stores guarantee) and
raise `NotImplementedError`; `tests/store/test_store_contract.py` runs the same tests on both.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from brie_bench.errors import InputError
from brie_bench.rows import GenerationRow, JudgmentRow

#: Version 2 added `leases`; version 3 renamed `judgments.order_index` to `presentation_order`;
#: version 4 added `generations.features` (`brie_bench.answer_features`). Both stores carry the
#: same numbering; bump it with every schema change and add the step to each store's migrations
#: (and a renamed column to `RENAMED_COLUMNS`, an added one to `ADDED_COLUMNS`).
SCHEMA_VERSION = 4

#: Columns renamed since they were first stored: (table, name now) -> (the schema version that
#: renamed it, the name before). A writing open migrates (each store's ``MIGRATIONS`` renames the
#: column); a reading open never writes, so it reads an older database's column under its name
#: now (`stored_name`, `selected`), and both stores' column checks expect the old name there.
#: One rename per column: a second rename of the same column would need the chain here.
RENAMED_COLUMNS: dict[tuple[str, str], tuple[int, str]] = {
    ("judgments", "presentation_order"): (3, "order_index"),
}

#: Columns added to a table after it was first stored: (table, column) -> the schema version that
#: added it. A reading open of an older database reads the column as NULL (`selected`), and both
#: stores' column checks do not expect it there.
ADDED_COLUMNS: dict[tuple[str, str], int] = {
    ("generations", "features"): 4,
}

#: Columns a store works out from the row's others as it writes it (`generations.features`, from `text`:
#: `brie_bench.answer_features`). `export_rows` leaves them out and `import_rows` works them out
#: again, so a copied run never carries a stale or hand-made value.
DERIVED_COLUMNS: dict[str, tuple[str, ...]] = {"generations": ("features",)}


def copied_columns(table: str, columns: Iterable[str]) -> list[str]:
    """`columns` of `table` without the ones the store derives (`DERIVED_COLUMNS`): what a copy moves."""
    derived = DERIVED_COLUMNS.get(table, ())
    return [c for c in columns if c not in derived]


#: The tables `db copy` moves for one run, in the order it moves them (the run row first:
#: PostgreSQL checks that every row of a run names a stored run).
RUN_TABLES = ("runs", "generations", "run_generations", "judgments", "errors", "batches")

_PG_SCHEMES = ("postgresql", "postgres")

#: kind -> (module, class) of each implementation. Named, not imported: this module depends on
#: neither (they depend on it), and only a postgresql:// target ever loads psycopg.
IMPLEMENTATIONS = {"sqlite": ("brie_bench.store", "SQLiteStore"), "postgres": ("brie_bench.store_pg", "PostgresStore")}


def database_errors(target: str) -> tuple[type[Exception], ...]:
    """The exception classes a store for `target` raises from its driver (for a web page's error
    handler): SQLite's always, psycopg's only for a PostgreSQL target, so the SQLite path never
    imports psycopg."""
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    if is_postgres_target(str(target)):
        try:
            import psycopg
        except ImportError:
            return errors
        errors += (psycopg.Error,)
    return errors


def is_postgres_target(target: str) -> bool:
    """Whether `target` names a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL)."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    return scheme in _PG_SCHEMES


def sqlite_path(target: str) -> str:
    """The file path a SQLite target names: ``sqlite:///PATH`` or a plain path."""
    if target.lower().startswith("sqlite:///"):
        return target[len("sqlite:///"):]  # sqlite:///rel.db, or sqlite:////abs/path.db
    if target.lower().startswith("sqlite://"):
        raise InputError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path (no host)",
                         path=target)
    if "://" in target and target.split("://", 1)[0].isalpha():
        raise InputError(f"unknown database URL scheme {target.split('://', 1)[0]!r}: use a file path, "
                         f"sqlite:///PATH or postgresql://USER@HOST/DBNAME", path=display_target(target))
    return target


def display_target(target: str) -> str:
    """The target as it may be printed: a URL's password is replaced by ``***``."""
    if "://" not in target:
        return target
    try:
        parts = urlsplit(target)
    except ValueError:
        return target.split("://", 1)[0] + "://***"
    if parts.password is None:
        return target
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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


class DatabaseGone(InputError):
    """The database file (or its -wal) was deleted or replaced while this process had it open.

    SQLite goes on writing into the open, unlinked file without a word, and everything
    written there vanishes when the connection closes: a run would print its counts and
    exit 0 with its results gone. Raised at the next commit instead (exit 2, one line).
    """

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"the database {what} while this run was writing to it; what the run stored since then is "
                         f"lost, and its counts are not reported. Rerun the same command to redo that work",
                         path=path)


def newer_schema_message(version: int) -> str:
    """The one line both stores give for a database written by a newer brie-bench."""
    return (f"the database has schema version {version}, newer than this brie-bench understands "
            f"({SCHEMA_VERSION}); upgrade brie-bench, or pass --db with another file")


def stored_json(obj: Any) -> str:
    """How both stores write a JSON column: the same bytes in SQLite and PostgreSQL, so a run copied
    between them (`brie-bench db copy`) reads back, and reports, the same."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def new_run_id() -> str:
    """A new run's id in both stores: its local start time, then 6 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def stored_name(table: str, column: str, version: int) -> str:
    """What a database of schema `version` calls the column of `table` named `column` now."""
    renamed_in, before = RENAMED_COLUMNS.get((table, column), (0, column))
    return before if version < renamed_in else column


def stored_columns(table: str, columns: Iterable[str], version: int) -> set[str]:
    """The names a database of schema `version` gives those of `columns` of `table` it has (the columns
    added since are left out): what each store's column check expects to find."""
    return {stored_name(table, c, version) for c in columns if ADDED_COLUMNS.get((table, c), 0) <= version}


def judgment_order(version: int, prefix: str = "") -> str:
    """The ORDER BY columns of a run's verdicts in a database of schema `version`: (section, prompt,
    sample, judge, presentation order), the order every reader of a run's judgments sees in both stores."""
    order = stored_name("judgments", "presentation_order", version)
    return ", ".join(prefix + c for c in ("section", "prompt_id", "sample_index", "judge", order))


def selected(table: str, columns: Iterable[str], version: int, prefix: str = "") -> str:
    """A select list of `columns` (names now) of `table` in a database of schema `version`.

    A column an older database stores under its former name is read ``AS`` its name now, and
    one it does not have yet is read as NULL, so a reading command gets the same rows from a
    database it may not migrate; on a current database this is the plain column list.
    `prefix` is a table alias with its dot (``"j."``).
    """
    names = []
    for column in columns:
        if ADDED_COLUMNS.get((table, column), 0) > version:
            names.append(f"NULL AS {column}")
            continue
        name = stored_name(table, column, version)
        names.append(f"{prefix}{column}" if name == column else f"{prefix}{name} AS {column}")
    return ", ".join(names)


NO_VERSION_MESSAGE = "not a Brie Bench database (it has tables, but no schema version)"


def checked_schema_version(tables: set[str], stored: Any, *, missing: int, path: str) -> int:
    """The schema version a database's ``meta`` row holds (`missing` when it has none), or the one
    line both stores give for a database that is not ours or is newer than this code.

    `tables` are the database's tables and `stored` the row's value, read by each store its own way.
    """
    if "meta" not in tables:
        raise InputError(NO_VERSION_MESSAGE, path=path)
    try:
        version = int(stored) if stored is not None else missing
    except (TypeError, ValueError):
        version = 0
    if version < 1:
        shown = stored if stored is not None else "missing"
        raise InputError(f"not a Brie Bench database (schema version {shown!r})", path=path)
    if version > SCHEMA_VERSION:
        raise InputError(newer_schema_message(version), path=path)
    return version


class EmptyDatabase(InputError):
    """A database opened for reading holds no tables: nothing was ever stored there."""

    def __init__(self, path: str) -> None:
        super().__init__("not a Brie Bench database: it is empty (no tables); run `brie-bench run SUITE` to fill it",
                         path=path)


class LeaseKeeper:
    """One process's lease renewals, on a connection of their own (`Store.lease_keeper`).

    `renew` is called from the leases' keeper thread every ``ttl/3`` seconds; a failure is
    swallowed there and retried next time. On PostgreSQL the keeper's session also *is* the
    owner's liveness: while it is open, the owner's leases are its own; when the process
    dies, the server ends the session and its leases are free at once.
    """

    def renew(self, ttl_s: float, now: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Store:
    """A results store. ``Store(target, readonly=...)`` opens the right implementation.

    One instance per process and thread. `path` is the target as it may be printed (a
    URL's password hidden). Every write commits before it returns, so a crash loses at
    most the calls in flight.
    """

    path: str
    schema_version: int
    #: Whether `Leases` needs a keeper thread: False only for a throw-away in-memory store.
    persistent: bool = True

    def __new__(cls, target: Any = None, *, readonly: bool = False) -> Store:  # noqa: D102
        if cls is not Store:
            return super().__new__(cls)
        module, name = IMPLEMENTATIONS["postgres" if is_postgres_target(str(target)) else "sqlite"]
        implementation: type[Store] = getattr(importlib.import_module(module), name)
        return super().__new__(implementation)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_present(self) -> None:
        """Raise `DatabaseGone` when the database this store opened is no longer there."""
        raise NotImplementedError

    def integrity_check(self) -> str:
        """``"ok"``, or what the database's own check found."""
        raise NotImplementedError

    def clock(self) -> float:
        """The time leases are measured in (seconds since the epoch): this machine's, or the server's."""
        return time.time()

    def set_busy_timeout(self, seconds: float) -> None:
        """Wait at most `seconds` for another writer's lock (the judging page answers "busy" after that)."""
        raise NotImplementedError

    # -- runs ------------------------------------------------------------------------------
    def create_run(self, *, suite_name: str, suite_path: str, fingerprint: str, snapshot: dict[str, Any],
                   seed: int, versions: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
        raise NotImplementedError

    def resume_or_create_run(self, *, new: bool, suite_name: str, suite_path: str, fingerprint: str,
                             snapshot: dict[str, Any], seed: int, versions: dict[str, Any],
                             metadata: dict[str, Any] | None = None) -> tuple[str, bool]:
        """The run to work on, and whether it was created now: looked for and created atomically,
        so workers started at once (without `new`) all join the same run."""
        raise NotImplementedError

    def find_resumable_run(self, fingerprint: str, seed: int) -> str | None:
        raise NotImplementedError

    def mark_run(self, run_id: str, status: str) -> None:
        raise NotImplementedError

    def update_run_metadata(self, run_id: str, metadata: dict[str, Any]) -> None:
        raise NotImplementedError

    def change_run_metadata(self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Read, change and write a run's metadata in one locked transaction (`change` returns the
        new metadata, or None to leave it as it is), so two writers never overwrite each other."""
        raise NotImplementedError

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def runs(self) -> list[RunRow]:
        raise NotImplementedError

    def run(self, run_id: str | None = None) -> RunRow:
        """A run by id (or unique id prefix), or the latest run when run_id is None."""
        raise NotImplementedError

    def suite_snapshot(self, run_id: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- generations -----------------------------------------------------------------------
    def stored_generation_keys(self, keys: Iterable[str]) -> set[str]:
        raise NotImplementedError

    def generation_texts(self, keys: Iterable[str]) -> dict[str, str]:
        raise NotImplementedError

    def generation_features(self, keys: Iterable[str]) -> dict[str, str | None]:
        """key -> the stored `features` (`brie_bench.answer_features`) of each stored answer among `keys`:
        None where it has none (stored before schema 4). A report reads these instead of the texts."""
        raise NotImplementedError

    def save_generation(self, row: GenerationRow) -> bool:
        """Store one answer; True when this call stored it, False when the key was already stored."""
        raise NotImplementedError

    def link_generations(self, run_id: str, rows: Sequence[tuple[str, str, int, str, str]]) -> None:
        raise NotImplementedError

    def run_generations(self, run_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run_generation_figures(self, run_id: str) -> list[tuple[Any, ...]]:
        """(section, prompt_id, sample_index, contender, gen_key, input_tokens, output_tokens,
        finish_reason, model, backend, features) per linked generation, without its text (the report's
        costs, and the answers' stored figures: `brie_bench.answer_features`)."""
        raise NotImplementedError

    # -- judgments -------------------------------------------------------------------------
    def stored_judgment_keys(self, run_id: str) -> set[str]:
        raise NotImplementedError

    def judgment_stored(self, run_id: str, unit_key: str) -> bool:
        raise NotImplementedError

    def save_judgment(self, row: JudgmentRow, *, release: tuple[str, Sequence[str]] | None = None) -> bool:
        """Store one verdict; `release` ``(owner, lease keys)`` gives those leases back in the same transaction."""
        raise NotImplementedError

    def count_judgments(self, run_id: str, keys: Sequence[str] | None = None) -> int:
        raise NotImplementedError

    def judgments(self, run_id: str) -> list[JudgmentRow]:
        raise NotImplementedError

    def iter_judgments_with_texts(self, run_id: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def judgment_tuples(self, run_id: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """(insertion order, *columns) per stored verdict, in (section, prompt, sample, judge, order)
        order: the report's one read of a run, as plain tuples."""
        raise NotImplementedError

    def judgment_values(self, run_id: str, seqs: Sequence[int], columns: Sequence[str]) -> dict[int, tuple[Any, ...]]:
        """insertion order -> `columns` of the run's verdicts `seqs` (the first value of `judgment_tuples`):
        what a report reads of a verdict only when it lists that one."""
        raise NotImplementedError

    def judged_answer_texts(self, run_id: str) -> dict[str, str]:
        """gen_key -> text of every answer a verdict of this run refers to."""
        raise NotImplementedError

    def other_judge_type(self, run_id: str, judge: str) -> str | None:
        """The type of a non-human judge of this run called `judge`, if it has stored a verdict."""
        raise NotImplementedError

    def delete_latest_judgment(self, run_id: str, unit_keys: Sequence[str]) -> str | None:
        raise NotImplementedError

    # -- provider batches ------------------------------------------------------------------
    def save_batch(self, run_id: str, judge: str, batch_id: str, unit_keys: Sequence[str]) -> None:
        raise NotImplementedError

    def open_batches(self, run_id: str, judge: str) -> list[tuple[str, list[str]]]:
        raise NotImplementedError

    def finish_batch(self, run_id: str, batch_id: str, status: str = "done") -> None:
        raise NotImplementedError

    # -- unit leases -----------------------------------------------------------------------
    def claim(self, owner: str, keys: Sequence[str], *, ttl_s: float, since: float,
              stored: Callable[[], bool] | None = None, gone: Callable[[str], bool] | None = None,
              live: Callable[[str], bool] | None = None, now: float | None = None) -> str:
        """Lease `keys` together, atomically: "claimed", "stored", "held" or "failed" (see `SQLiteStore.claim`)."""
        raise NotImplementedError

    def lease_state(self, owner: str, keys: Sequence[str], *, since: float,
                    gone: Callable[[str], bool] | None = None, live: Callable[[str], bool] | None = None,
                    now: float | None = None) -> str:
        raise NotImplementedError

    def release(self, owner: str, keys: Sequence[str], *, failed: bool = False, now: float | None = None) -> None:
        raise NotImplementedError

    def release_all(self, owner: str) -> None:
        raise NotImplementedError

    def renew(self, owner: str, ttl_s: float) -> int:
        raise NotImplementedError

    def lease_keeper(self, owner: str) -> LeaseKeeper:
        """A renewer for `owner`'s leases, on its own connection (used from another thread)."""
        raise NotImplementedError

    # -- errors ----------------------------------------------------------------------------
    def save_error(self, *, run_id: str, unit_key: str, unit_kind: str, name: str, attempt: int, kind: str,
                   transient: bool, final: bool, message: str) -> None:
        raise NotImplementedError

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- moving runs between stores (`brie-bench db copy`) -----------------------------------
    def count_rows(self, table: str, run_id: str) -> int:
        """How many rows of `table` (one of `RUN_TABLES`) belong to the run."""
        raise NotImplementedError

    def export_rows(self, table: str, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's rows of `table` as stored (JSON columns as their stored text), in insertion order."""
        raise NotImplementedError

    def import_rows(self, table: str, run_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows from `export_rows` in one transaction, skipping those already stored (by content
        key); returns how many were new. A run's `errors` have no content key: they are written only
        while the run holds none here, all in one call, so a repeated copy never doubles them."""
        raise NotImplementedError


def open_store(target: str, *, readonly: bool = False) -> Store:
    """The store `target` names: a PostgreSQL URL, or a SQLite path or ``sqlite:///`` URL."""
    return Store(target, readonly=readonly)


def target_missing(target: str) -> bool:
    """Whether `target` is a SQLite file that does not exist (a server's database is checked on opening)."""
    return not is_postgres_target(target) and not Path(sqlite_path(target)).exists()


def open_if_stored(target: str) -> Store | None:
    """A read-only store for `target`, or None when nothing was stored there yet (no file, an empty database)."""
    if target_missing(target):
        return None
    try:
        return Store(target, readonly=True)
    except EmptyDatabase:
        if is_postgres_target(target):
            return None
        raise


def log_path_for(target: str) -> Path:
    """The run log next to the database (brie-bench.db -> brie-bench.log); for a server, in this folder."""
    if is_postgres_target(target):
        return Path("brie-bench.log")
    path = Path(sqlite_path(target))
    return path.with_suffix(".log") if path.suffix else path.with_name(path.name + ".log")


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` came from a store's database driver (sqlite3, or psycopg when loaded)."""
    import sqlite3
    import sys

    if isinstance(exc, sqlite3.DatabaseError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
