"""`brie-bench db`: commands on whole stores. `db copy SRC DST` moves runs between SQLite and PostgreSQL."""

from __future__ import annotations

import click


@click.group("db")
def db_command() -> None:
    """Move runs between stores: SQLite files and PostgreSQL databases."""


@db_command.command("copy")
@click.argument("source")
@click.argument("target")
@click.option("--run", "run_ids", multiple=True, metavar="ID",
              help="Copy this run (an id or unique prefix; repeatable). Default: every run in SOURCE.")
def copy_command(source: str, target: str, run_ids: tuple[str, ...]) -> None:
    """Copy runs from SOURCE to TARGET (each a SQLite path, sqlite:///PATH or postgresql://USER@HOST/DBNAME).

    Rows already in TARGET are skipped, never doubled, so a copy that was killed is finished by
    running it again. A run being copied shows status "copying" in TARGET until it is complete.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from brie_bench.cli import err_console, out_console
    from brie_bench.dbcopy import copy_runs
    from brie_bench.store_api import display_target
    from brie_bench.textsafe import safe_text

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console(), transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(run_id: str, done: int, total: int) -> None:
            if run_id not in tasks:
                tasks[run_id] = progress.add_task(f"run {run_id}", total=total)
            progress.update(tasks[run_id], completed=done, total=total)

        result = copy_runs(source, target, run_ids, advance)
    console = out_console()
    parts = [f"{table} {result.written.get(table, 0)} new, {result.present.get(table, 0)} already there"
             for table in ("generations", "run_generations", "judgments", "errors", "batches")]
    console.print(safe_text(f"copied {len(result.runs)} run(s) to {display_target(target)}: " + "; ".join(parts)),
                  soft_wrap=True)
