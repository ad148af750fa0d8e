"""`brie-bench judge RUN --web --name NAME`: one person judges a stored run blind in the browser."""

from __future__ import annotations

import click

from brie_bench.cli_options import common_options
from brie_bench.errors import InputError


@click.command("judge")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--web", is_flag=True, help="Serve a local judging page (the only mode for now).")
@click.option("--name", required=True, help="Who is judging; their verdicts are the judge NAME in the run.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the page to the network.")
@click.option("--idle-exit", "idle_exit", type=click.FloatRange(0, None), default=0.0,
              help="Stop after this many seconds without a request (0: never).")
@common_options
@click.pass_context
def judge_command(ctx: click.Context, run_id: str | None, web: bool, name: str, port: int, host: str, idle_exit: float,
                  db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Judge a stored run's comparisons (default: the latest run) blind, in the browser, as NAME.

    Prints the page's URL (with its access token) on the first line. Several
    people can judge the same run at once: each runs this command with their
    own --name (and --port). Stopping and starting again continues where
    that person stopped.
    """
    from pathlib import Path

    from brie_bench.cli import err_console, resolve_common
    from brie_bench.textsafe import safe_text

    if not web:
        raise InputError("only the browser page exists so far: add --web (to judge at the terminal, add a "
                         "`human` judge to the suite and use `brie-bench run`)", field="--web")
    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    if not Path(db).exists():
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    try:
        from brie_bench.web.server import is_loopback, serve
        from brie_bench.web.session import JudgingSession
    except ModuleNotFoundError as exc:
        raise InputError(f"the judging page needs {exc.name}: pip install 'brie-bench[web]'") from None
    if not is_loopback(host):
        err_console().print(safe_text(f"warning: listening on {host}: anyone who can reach it and has the URL's "
                                      "token can judge as you; stay on 127.0.0.1 unless you need the network"),
                            soft_wrap=True)
    session = JudgingSession(db, run_id, name)
    try:
        serve(session, host=host, port=port, idle_exit_s=idle_exit, say=lambda line: click.echo(line))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from None
    finally:
        session.close()
