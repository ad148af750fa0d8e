"""`brie-bench db copy SRC DST`: move runs between stores (SQLite and PostgreSQL, either direction).

A laptop run is published to the team's PostgreSQL store; a team run is taken offline into a
SQLite file. Only store methods are used (`Store.export_rows` / `import_rows`), so any pair of
stores works and no SQL lives here.

Why it can be killed and rerun: every row is written with its content key (``ON CONFLICT DO
NOTHING``), in chunks that each commit, so a rerun skips what is there and writes the rest,
never a row twice. A run's row is written first with status ``copying`` and takes its real
status only once everything else is in, so `brie-bench runs` shows an unfinished copy as such.
Verdicts are copied in the order they were stored, so the report's order-dependent figures
(and `report --json`) are the same in both stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from brie_bench.errors import InputError
from brie_bench.store_api import (RUN_TABLES, Store, display_target, is_postgres_target, open_store, sqlite_path,
                                  target_missing)

#: Rows per committed chunk: large enough to be fast, small enough that a kill loses little.
CHUNK = 500

#: The status a run has in the target while its copy is unfinished.
COPYING = "copying"


@dataclass
class CopyResult:
    """What one `copy_runs` did: per table, rows written now and rows that were already there."""

    runs: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)


def _same_target(a: str, b: str) -> bool:
    if is_postgres_target(a) or is_postgres_target(b):
        return a.rstrip("/") == b.rstrip("/")
    pa, pb = sqlite_path(a), sqlite_path(b)
    try:
        return os.path.samefile(pa, pb)
    except OSError:
        return os.path.abspath(pa) == os.path.abspath(pb)


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def copy_runs(source: str, target: str, run_ids: Sequence[str] = (),
              advance: Callable[[str, int, int], None] | None = None) -> CopyResult:
    """Copy `run_ids` (all runs when empty) from `source` to `target`; rerunning finishes a killed copy.

    `advance(run_id, rows_done, rows_total)` is called after each committed chunk (the progress bar).
    Errors are one line (exit 2): a missing source, a target that is the source, an unknown run.
    """
    if target_missing(source):
        raise InputError("database not found", path=source)
    if _same_target(source, target):
        raise InputError(f"the target is the source ({display_target(target)}): copy to another database",
                         path=display_target(source))
    result = CopyResult()
    with open_store(source, readonly=True) as src:
        runs = [src.run(run_id) for run_id in run_ids] if run_ids else src.runs()
        if not runs:
            raise InputError("no runs stored yet: nothing to copy", path=src.path)
        with open_store(target) as dst:
            for run in runs:
                _copy_run(src, dst, run.id, result, advance)
                result.runs.append(run.id)
    return result


def _copy_run(src: Store, dst: Store, run_id: str, result: CopyResult,
              advance: Callable[[str, int, int], None] | None) -> None:
    total = sum(src.count_rows(table, run_id) for table in RUN_TABLES)
    done = 0

    def record(table: str, rows: int, new: int) -> None:
        nonlocal done
        done += rows
        result.written[table] = result.written.get(table, 0) + new
        result.present[table] = result.present.get(table, 0) + rows - new
        if advance is not None:
            advance(run_id, done, total)

    run_row = next(src.export_rows("runs", run_id))
    record("runs", 0, 0)
    # The run first (as "copying"), so rows never name a run the target lacks; its status last.
    dst.import_rows("runs", run_id, [{**run_row, "status": COPYING}])
    for table in ("generations", "run_generations", "judgments", "batches"):
        for chunk in _chunks(src.export_rows(table, run_id), CHUNK):
            record(table, len(chunk), dst.import_rows(table, run_id, chunk))
    errors = list(src.export_rows("errors", run_id))  # no content key: all of them, in one transaction
    record("errors", len(errors), dst.import_rows("errors", run_id, errors))
    record("runs", 1, dst.import_rows("runs", run_id, [run_row]))
