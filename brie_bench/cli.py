"""The `brie-bench` command line.

Exit codes: 0 success, 1 the run finished with failed units, 2 bad input
(one line naming file, field and line; never a traceback; a damaged, foreign or
newer-schema database is bad input too, and so is a database deleted or replaced
during a run), 130 interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (the same
message for all three: everything finished is stored; a rerun resumes).
"""

from __future__ import annotations

import sqlite3
import sys
from gettext import gettext
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from brie_bench import __version__
from brie_bench.errors import BrieBenchError, InputError, StopRun
from brie_bench.cli_options import common_options, db_option, plugins_dir_from, plugins_dir_option
from brie_bench.textsafe import normalise_prompt, safe_text

if TYPE_CHECKING:  # start-up time: rich, pydantic and the plugins load only in the commands that use them
    from rich.console import Console

    from brie_bench.plugin_manager import PluginClass, Registry

EXIT_OK, EXIT_FAILED_UNITS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
INTERRUPTED_MESSAGE = "interrupted: everything finished so far is stored; rerun the same command to resume"


def out_console() -> Console:
    """A console made per command, so it sees the current stdout and terminal width."""
    from rich.console import Console

    return Console(highlight=False)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def default_db() -> str:
    from brie_bench import envvars

    return envvars.db_path() or "brie-bench.db"


class BrieGroup(click.Group):
    """A click group that turns our errors into one-line messages and exit codes.

    Commands kept in their own modules are registered as `LazyCommand`s: listed by
    `--help` without importing anything, replaced by the real command on first use.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if isinstance(command, LazyCommand):
            real = command.load()
            if real is None:
                del self.commands[cmd_name]
                return None
            self.commands[cmd_name] = real
            return real
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not yet loaded is listed from its `LazyCommand` (same short help)."""
        commands = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if isinstance(command, LazyCommand) and not command.available():
                continue
            if command is None or command.hidden:
                continue
            commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
            with formatter.section(gettext("Commands")):  # translated as click translates it
                formatter.write_dl(rows)

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
        except sqlite3.DatabaseError as exc:
            # A refused write (disk full, read-only) is the run's failure: exit 1, rerun to continue.
            # A damaged or foreign file is bad input: exit 2. Either way one line, never a traceback.
            from brie_bench.store import damaged_message

            db = (ctx.obj or {}).get("db_resolved") or (ctx.obj or {}).get("db") or default_db()
            message = damaged_message(exc)
            err_console().print(safe_text(f"error: database {db}: {message}"), soft_wrap=True)
            ctx.exit(EXIT_FAILED_UNITS if isinstance(exc, sqlite3.OperationalError) and message == str(exc)
                     else EXIT_BAD_INPUT)
        except BrieBenchError as exc:
            err_console().print(safe_text(f"error: {exc}"), soft_wrap=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt as exc:
            # click would print "Aborted!" and exit 1, the code of failed units.
            from brie_bench.signals import exit_code, ignore_stop_signals

            ignore_stop_signals()  # on the way out: a second Ctrl-C must not print a traceback
            err_console().print(INTERRUPTED_MESSAGE, soft_wrap=True)
            ctx.exit(exit_code(exc))
        except Exception as exc:
            # The PostgreSQL store's errors (psycopg is imported only for a postgresql:// --db): a lost
            # server or connection is the run's failure (exit 1, rerun to continue), anything else exit 2.
            from brie_bench.store_api import display_target, is_database_error

            if not is_database_error(exc):
                raise
            db = (ctx.obj or {}).get("db_resolved") or (ctx.obj or {}).get("db") or default_db()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            err_console().print(safe_text(f"error: database {display_target(db)}: {first}"), soft_wrap=True)
            lost = type(exc).__name__ in ("OperationalError", "InterfaceError")
            ctx.exit(EXIT_FAILED_UNITS if lost else EXIT_BAD_INPUT)


def resolve_common(ctx: click.Context, db_opt: str | None, plugins_dir_opt: str | None) -> tuple[str, str | None]:
    obj = ctx.find_root().obj or {}
    db = db_opt or obj.get("db") or default_db()
    if isinstance(ctx.find_root().obj, dict):
        ctx.find_root().obj["db_resolved"] = db  # for the one-line database errors
    return db, plugins_dir_opt or obj.get("plugins_dir")


#: The registry `main` loaded (to let plugins add commands), reused by the command itself:
#: plugin files are imported once per command, not twice. Keyed by the --plugins-dir given.
_PRELOADED: dict[str | None, Registry] = {}


def get_registry(plugins_dir: str | None, *, quiet: bool = False) -> Registry:
    from brie_bench.plugin_manager import load_plugins

    registry = _PRELOADED.get(plugins_dir) or load_plugins(plugins_dir)
    if not quiet:
        for plugin, cause in registry.failures:
            err_console().print(safe_text(f"warning: plugin {plugin} not loaded: {cause}"), soft_wrap=True)
    return registry


def option_rows(options_model: type[Any]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) of each field of a plugin's pydantic `Options`, for `plugins -v`."""
    rows = []
    for fname, finfo in options_model.model_fields.items():
        annotation = getattr(finfo.annotation, "__name__", None) or str(finfo.annotation)
        default = "required" if finfo.is_required() else repr(finfo.get_default(call_default_factory=True))
        rows.append((fname, annotation.replace("typing.", ""), default, finfo.description or ""))
    return rows


@click.group(cls=BrieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brie-bench")
@db_option("db")
@plugins_dir_option("plugins_dir")
@click.pass_context
def cli(ctx: click.Context, db: str | None, plugins_dir: str | None) -> None:
    """Brie Bench: is my fine-tuned model better than its base model, and how sure are we?"""
    from brie_bench import envvars

    envvars.check_all()  # a bad BRIE_BENCH_* is one line naming it (exit 2), before any command does work
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
    from brie_bench.suite import destination_items, load_suite  # lazy: pydantic models and YAML, not for --help
    from brie_bench.termtable import print_items

    _, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir)
    bad = 0
    for path in suites:  # every file is checked, so one bad suite does not hide the next
        try:
            suite = load_suite(path)
            runtime = build_runtime(suite, registry)
        except BrieBenchError as exc:
            bad += 1
            err_console().print(safe_text(f"error: {exc}"), soft_wrap=True)
            continue
        n_prompts = sum(len(s.prompts) for s in suite.sections)
        # Sections may share prompt texts (a temperature sweep asks the same question again): say how
        # many distinct texts the entries hold, as the power plan counts prompts by text.
        n_texts = len({normalise_prompt(p.text) for s in suite.sections for p in s.prompts})  # the plan's key
        texts = f" ({n_texts} distinct texts)" if n_texts != n_prompts else ""
        out_console().print(safe_text(
            f"ok: {path}: {plural(len(suite.sections), 'section')}, {plural(n_prompts, 'prompt')}{texts}, "
            f"{plural(len(suite.spec.contenders), 'contender')}, {plural(len(suite.spec.judges), 'judge')}"))
        for parts in destination_items(runtime):  # where each backend's calls (and keys) go
            print_items(out_console(), [f"  {parts[0]}", *parts[1:]], sep=" ", hang="    ")
    if bad:
        if len(suites) > 1:
            err_console().print(f"{bad} of {len(suites)} suites failed")
        ctx.exit(EXIT_BAD_INPUT)


def plural(n: int, word: str) -> str:
    """"1 section", "2 sections"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@cli.command()
@click.argument("suite_path", metavar="SUITE", type=click.Path(dir_okay=False))
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Run seed (default: the suite's): it draws the blinding and seeds the judges' sampling; "
                   "answers keep the suite's sampling seeds, so stored answers are reused.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None, help="Cap on concurrent calls per backend.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Only the first N prompts of each section.")
@click.option("--dry-run", is_flag=True, help="Print the plan and what is already stored; call nothing.")
@click.option("--new", "new_run", is_flag=True, help="Start a fresh run (cached generations are still reused).")
@click.option("--power", "power_flag", is_flag=True,
              help="With the plan: minimum detectable effect, prompts needed for --effect, and their cost (implies --dry-run).")
@click.option("--effect", type=click.FloatRange(0.0, 0.5, min_open=True, max_open=True), default=None,
              help="Win-rate distance from 50% to plan for with --power (default 0.10: a true win rate of 60%).")
@click.option("--pilot", default=None, metavar="RUN", help="Measure the variance for --power from this stored run.")
@common_options
@click.pass_context
def run(ctx: click.Context, suite_path: str, seed: int | None, concurrency: int | None, limit: int | None,
        dry_run: bool, new_run: bool, power_flag: bool, effect: float | None, pilot: str | None,
        db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Generate, judge blind, and store everything; rerunning resumes."""
    from brie_bench.run import execute_run
    from brie_bench.suite import load_suite

    db, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir)
    suite = load_suite(suite_path)
    power_plan = None
    if power_flag or effect is not None or pilot is not None:  # --effect / --pilot only make sense with --power
        from brie_bench.power import DEFAULT_EFFECT

        power_plan = {"effect": DEFAULT_EFFECT if effect is None else effect, "pilot": pilot}
    code = execute_run(suite, registry, db=db, seed=seed, concurrency=concurrency, limit=limit,
                       dry_run=dry_run or power_plan is not None, new_run=new_run, console=out_console(),
                       power_plan=power_plan)
    ctx.exit(code)


@cli.command()
@click.option("--verbose", "-v", is_flag=True, help="Show each plugin's options and defaults.")
@common_options
@click.pass_context
def plugins(ctx: click.Context, verbose: bool, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """List every registered backend and judge, and where it came from."""
    from brie_bench.api import ModelBackend
    from brie_bench.termtable import new_table, print_table

    _, plugins_dir = resolve_common(ctx, db_opt, plugins_dir_opt)
    registry = get_registry(plugins_dir, quiet=True)
    console = out_console()
    table = new_table("Plugins")
    for col in ("kind", "name", "from", "description"):
        table.add_column(col)
    kinds: tuple[tuple[str, Mapping[str, PluginClass]], ...] = (
        ("backend", registry.backends), ("judge", registry.judges))
    for kind, entries in kinds:
        for name, cls in sorted(entries.items()):
            summary = cls.description or (cls.__doc__ or "").strip().split("\n")[0]
            table.add_row(kind, safe_text(name), safe_text(registry.origins[(kind, name)]), safe_text(summary))
    print_table(console, table)
    if verbose:
        for kind, entries in kinds:
            for name, cls in sorted(entries.items()):
                opts = new_table(f"{kind} {name}: options")
                for col in ("option", "type", "default", "description"):
                    opts.add_column(col)
                for option, type_, default, description in option_rows(cls.Options):
                    if option == "api_key_env" and default == "None" and issubclass(cls, ModelBackend) \
                            and cls.default_key_envs:
                        default = " or ".join(cls.default_key_envs)  # what is read when the option is unset
                    opts.add_row(*(safe_text(c) for c in (option, type_, default, description)))
                print_table(console, opts)
    for plugin, cause in registry.failures:
        console.print(safe_text(f"failed: {plugin}: {cause}", style="red"))


@cli.command()
@common_options
@click.pass_context
def runs(ctx: click.Context, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """List stored runs."""
    import datetime

    from brie_bench.store_api import display_target, open_store, target_missing
    from brie_bench.termtable import new_table, print_table

    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    if target_missing(db):
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    with open_store(db, readonly=True) as store:
        table = new_table(f"Runs in {display_target(db)}")
        for col in ("run", "suite", "seed", "status", "created", "judgments"):
            table.add_column(col, justify="right" if col in ("seed", "judgments") else "left",
                             no_wrap=col == "run")
        for r in store.runs():
            n = store.count_judgments(r.id)
            created = datetime.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M")
            table.add_row(safe_text(r.id), safe_text(r.suite_name), str(r.seed), safe_text(r.status), created, str(n))
        console = out_console()
        print_table(console, table)


class LazyCommand(click.Command):
    """A command that lives in its own module, standing in for it until it is invoked.

    `brie-bench --help` lists it from `short_help_source` (the first paragraph of the real
    command's docstring, so the listed line is the same); `BrieGroup.get_command` swaps
    in the real command, importing its module, only when the command is run or asked
    for its own help. `tests/core/test_startup_lazy_cli.py` checks the two stay the same.
    """

    def __init__(self, name: str, module: str, attribute: str, short_help_source: str) -> None:
        super().__init__(name, help=short_help_source)
        self.module = module
        self.attribute = attribute

    def available(self) -> bool:
        """Whether the module is installed, found without importing it."""
        import importlib.util

        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def load(self) -> click.Command | None:
        """The real command, or None when its module is not installed."""
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name == self.module:
                return None
            raise
        command = getattr(module, self.attribute, None)
        return command if isinstance(command, click.Command) else None


#: Commands that live in their own modules (training, reports, import, web judging): name ->
#: (module, attribute, first paragraph of the command's docstring, as `--help` lists it).
#: Their modules (pydantic configs, report renderers, rich tables) import only when the command runs.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("brie_bench.training.cli", "train_command",
              "Fine-tune a LoRA adapter on chat JSONL data as CONFIG describes (TRL + PEFT)."),
    "report": ("brie_bench.report.cli", "report_command",
               "Report a run (default: the latest); with two runs, compare them side by side."),
    "export": ("brie_bench.report.cli", "export_command",
               "Write one row per judgment of RUN (default: the latest) as --jsonl (the default) or --csv."),
    "import": ("brie_bench.report.cli", "import_command", "Import results written by other tools."),
    "db": ("brie_bench.db_cli", "db_command", "Move runs between stores: SQLite files and PostgreSQL databases."),
    "judge": ("brie_bench.web.cli", "judge_command",
              "Judge a stored run's comparisons (default: the latest run) blind, in the browser, as NAME."),
    "gate": ("brie_bench.gate", "gate_command",
             "Pass or fail RUN (default: the latest) on what its intervals show: exit 0 passed, 1 failed, "
             "3 cannot decide."),
    "view": ("brie_bench.viewer.cli", "view_command",
             "Browse every run in the database in the browser: runs list, reports, run against run, comparisons."),
}


def _add_lazy_commands(group: click.Group) -> None:
    for name, (module, attribute, short_help) in LAZY_COMMANDS.items():
        group.add_command(LazyCommand(name, module, attribute, short_help))


_add_lazy_commands(cli)


def _load_plugin_commands(plugins_dir: str | None) -> None:
    """Load the plugins before click parses, when one of them may add a command.

    Built-in plugins add none (`BUILTIN_COMMAND_PLUGINS` is empty), so without a
    --plugins-dir or a `brie_bench` entry point nothing is loaded here: `--help` and
    `report` stay fast, and a command that needs the plugins loads them itself.
    Otherwise the registry loaded here is the one the command reuses (plugin files
    are imported once per command, not twice).
    """
    from brie_bench.plugin_manager import load_plugins, plugins_may_add_commands, register_commands

    if not plugins_may_add_commands(plugins_dir):
        return
    registry = load_plugins(plugins_dir)
    _PRELOADED[plugins_dir] = registry
    register_commands(registry, cli, lambda plugin, cause: err_console().print(
        safe_text(f"warning: plugin {plugin} could not add commands: {cause}")))


def main(argv: list[str] | None = None) -> None:
    from brie_bench.signals import exit_code, ignore_stop_signals, raise_on_stop_signals

    raise_on_stop_signals()  # SIGTERM and SIGHUP end like Ctrl-C (143, 129), never a silent kill
    code: int | str | None = EXIT_OK
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        plugins_dir = plugins_dir_from(args)  # before click parses, so plugin files can add commands too
        _PRELOADED.clear()
        _load_plugin_commands(plugins_dir)
        cli.main(args=args, prog_name="brie-bench")
    except KeyboardInterrupt as exc:  # before or after a command, plugin loading included (inside one, BrieGroup)
        ignore_stop_signals()
        err_console().print(INTERRUPTED_MESSAGE)
        code = exit_code(exc)
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: int | str | None) -> None:
    """Exit with `code`; at once (`os._exit`, after flushing) when a plugin's thread would keep the process alive.

    Python waits for every non-daemon thread before it exits, so a plugin thread that never
    ends kept `brie-bench` alive forever after its run had ended. By now the store is closed
    and the output written: only the flush is left to do.
    """
    import threading

    if isinstance(code, str):  # sys.exit("message"): printed, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    status = 0 if code is None else int(code)
    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
                 and t.is_alive()]
    if lingering:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
