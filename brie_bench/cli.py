"""The `brie-bench` command line.

Exit codes: 0 success, 1 the run finished with failed units, 2 bad input
(one line naming file, field and line; never a traceback).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from brie_bench.textsafe import safe_text

from brie_bench import __version__
from brie_bench.errors import BrieBenchError, InputError, StopRun
from brie_bench.plugin_manager import Registry, load_plugins, register_commands
from brie_bench.suite import load_suite

EXIT_OK, EXIT_FAILED_UNITS, EXIT_BAD_INPUT = 0, 1, 2


def out_console() -> Console:
    """A console made per command, so it sees the current stdout and terminal width."""
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def default_db() -> str:
    return os.environ.get("BRIE_BENCH_DB") or "brie-bench.db"


class BrieGroup(click.Group):
    """A click group that turns our errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            err_console().print(safe_text(f"error: {exc}"), soft_wrap=True)
            ctx.exit(EXIT_BAD_INPUT)
        except StopRun as exc:
            err_console().print(safe_text(f"stopped: {exc or 'on request'}; everything finished so far is stored, "
                                     "rerun the same command to continue"), soft_wrap=True)
            ctx.exit(EXIT_FAILED_UNITS)
        except sqlite3.OperationalError as exc:
            err_console().print(safe_text(f"error: database {ctx.obj.get('db') if ctx.obj else ''}: {exc}"), soft_wrap=True)
            ctx.exit(EXIT_FAILED_UNITS)
        except BrieBenchError as exc:
            err_console().print(safe_text(f"error: {exc}"), soft_wrap=True)
            ctx.exit(EXIT_BAD_INPUT)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--db and --plugins-dir, accepted both before and after the subcommand."""
    fn = click.option("--plugins-dir", "plugins_dir_opt", type=click.Path(file_okay=False), default=None,
                      help="Folder of local plugin .py files.")(fn)
    fn = click.option("--db", "db_opt", default=None, help="SQLite file (default: $BRIE_BENCH_DB or ./brie-bench.db).")(fn)
    return fn


def resolve_common(ctx: click.Context, db_opt: str | None, plugins_dir_opt: str | None) -> tuple[str, str | None]:
    obj = ctx.find_root().obj or {}
    return db_opt or obj.get("db") or default_db(), plugins_dir_opt or obj.get("plugins_dir")


def get_registry(plugins_dir: str | None, *, quiet: bool = False) -> Registry:
    registry = load_plugins(plugins_dir)
    if not quiet:
        for plugin, cause in registry.failures:
            err_console().print(safe_text(f"warning: plugin {plugin} not loaded: {cause}"), soft_wrap=True)
    return registry


@click.group(cls=BrieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brie-bench")
@click.option("--db", default=None, help="SQLite file (default: $BRIE_BENCH_DB or ./brie-bench.db).")
@click.option("--plugins-dir", type=click.Path(file_okay=False), default=None, help="Folder of local plugin .py files.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, plugins_dir: str | None) -> None:
    """Brie Bench: is my fine-tuned model better than its base model, and how sure are we?"""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["plugins_dir"] = plugins_dir


@cli.command()
@click.argument("suites", nargs=-1, required=True, type=click.Path(dir_okay=False))
@common_options
@click.pass_context
def validate(ctx: click.Context, suites: tuple[str, ...], db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Check suite files without running anything."""
    from brie_bench.runtime import build_runtime

    _, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir)
    for path in suites:
        suite = load_suite(path)
        build_runtime(suite, registry)
        n_prompts = sum(len(s.prompts) for s in suite.sections)
        out_console().print(safe_text(f"ok: {path}: {len(suite.sections)} sections, {n_prompts} prompts, "
                           f"{len(suite.spec.contenders)} contenders, {len(suite.spec.judges)} judges"))


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=click.Path(dir_okay=False))
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="Run seed (default: the suite's).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None, help="Cap on concurrent calls per backend.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Only the first N prompts of each section.")
@click.option("--dry-run", is_flag=True, help="Print the plan and what is already stored; call nothing.")
@click.option("--new", "new_run", is_flag=True, help="Start a fresh run (cached generations are still reused).")
@common_options
@click.pass_context
def run(ctx: click.Context, suite_path: str, seed: int | None, concurrency: int | None, limit: int | None,
        dry_run: bool, new_run: bool, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Generate, judge blind, and store everything; rerunning resumes."""
    from brie_bench.run import execute_run

    db, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir)
    suite = load_suite(suite_path)
    code = execute_run(suite, registry, db=db, seed=seed, concurrency=concurrency, limit=limit,
                       dry_run=dry_run, new_run=new_run, console=out_console())
    ctx.exit(code)


@cli.command()
@click.option("--verbose", "-v", is_flag=True, help="Show each plugin's options and defaults.")
@common_options
@click.pass_context
def plugins(ctx: click.Context, verbose: bool, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """List every registered backend and judge, and where it came from."""
    from brie_bench.api import option_rows

    _, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir, quiet=True)
    table = Table(title="Plugins")
    for col in ("kind", "name", "from", "description"):
        table.add_column(col)
    for kind, entries in (("backend", registry.backends), ("judge", registry.judges)):
        for name, cls in sorted(entries.items()):
            table.add_row(kind, safe_text(name), safe_text(registry.origins[(kind, name)]), safe_text(cls.description or (cls.__doc__ or "").strip().split("\n")[0]))
    out_console().print(table)
    if verbose:
        for kind, entries in (("backend", registry.backends), ("judge", registry.judges)):
            for name, cls in sorted(entries.items()):
                opts = Table(title=safe_text(f"{kind} {name}: options"))
                for col in ("option", "type", "default", "description"):
                    opts.add_column(col)
                for row in option_rows(cls.Options):
                    opts.add_row(*(safe_text(c) for c in row))
                out_console().print(opts)
    for plugin, cause in registry.failures:
        out_console().print(safe_text(f"failed: {plugin}: {cause}", style="red"))


@cli.command()
@common_options
@click.pass_context
def runs(ctx: click.Context, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """List stored runs."""
    import datetime

    from brie_bench.store import Store

    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    if not Path(db).exists():
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    with Store(db, readonly=True) as store:
        table = Table(title=safe_text(f"Runs in {db}"))
        for col in ("run", "suite", "seed", "status", "created", "judgments"):
            table.add_column(col)
        for r in store.runs():
            n = store.conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=?", (r.id,)).fetchone()[0]
            created = datetime.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(r.id, safe_text(r.suite_name), str(r.seed), r.status, created, str(n))
        out_console().print(table)


def _add_optional_commands(group: click.Group) -> None:
    """Commands that live in their own modules (training, reports, import)."""
    import importlib

    for modname, attr in (("brie_bench.training.cli", "train_command"),
                          ("brie_bench.report.cli", "report_command"),
                          ("brie_bench.report.cli", "export_command"),
                          ("brie_bench.report.cli", "import_command")):
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue
            raise
        command = getattr(module, attr, None)
        if command is not None:
            group.add_command(command)


_add_optional_commands(cli)


def _plugins_dir_from(argv: list[str]) -> str | None:
    """Find --plugins-dir before click parses, so plugin files can add commands too."""
    for i, arg in enumerate(argv):
        if arg == "--plugins-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--plugins-dir="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    registry = load_plugins(_plugins_dir_from(args))
    register_commands(registry, cli, lambda plugin, cause: err_console().print(
        safe_text(f"warning: plugin {plugin} could not add commands: {cause}")))
    try:
        cli.main(args=args, prog_name="brie-bench")
    except KeyboardInterrupt:
        err_console().print("interrupted: everything finished so far is stored; rerun to resume")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
