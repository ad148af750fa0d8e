"""`--db` and `--plugins-dir`: defined once, for every command that takes them.

Each command accepts both options after its name as well as before it (on the
`brie-bench` group). The group, `brie_bench.cli`, and the command modules it
loads (`report/cli.py`, `web/cli.py`) all take the options from here; this
module imports nothing of theirs, so the command modules can use it while
`brie_bench.cli` is still being built. `plugins_dir_from` finds the folder
before click parses, so that `main` loads the plugins once per command (plugin
files may add commands); the command then reuses that registry.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import click

DB_HELP = ("SQLite file (or sqlite:///PATH), or a PostgreSQL URL postgresql://USER@HOST/DBNAME shared by "
           "many machines (default: $BRIE_BENCH_DB or ./brie-bench.db).")
PLUGINS_DIR_HELP = "Folder of local plugin .py files."


def plugins_dir_option(dest: str = "plugins_dir_opt") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--plugins-dir` option, stored as `dest`."""
    return click.option("--plugins-dir", dest, type=click.Path(file_okay=False), default=None, help=PLUGINS_DIR_HELP)


def db_option(dest: str = "db_opt") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The `--db` option, stored as `dest`."""
    return click.option("--db", dest, default=None, help=DB_HELP)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--db and --plugins-dir after a subcommand (as `db_opt`, `plugins_dir_opt`)."""
    return db_option()(plugins_dir_option()(fn))


def plugins_dir_from(argv: list[str]) -> str | None:
    """Find --plugins-dir in the arguments before click parses them (the last one given wins, as in click)."""
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--plugins-dir" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--plugins-dir="):
            found = arg.split("=", 1)[1]
    return found
