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
@click.option("--sample", "sample", type=int, default=None, metavar="N",
              help="Show only the comparisons of N prompts drawn at random (seeded by run seed, name and N; "
                   "stored in the run), the random labelled subset the human-calibrated win rate needs.")
@click.option("--idle-exit", "idle_exit", type=click.FloatRange(0, None), default=0.0,
              help="Stop after this many seconds without a request (0: never).")
@common_options
@click.pass_context
def judge_command(ctx: click.Context, run_id: str | None, web: bool, name: str, port: int, host: str,
                  sample: int | None, idle_exit: float, db_opt: str | None, plugins_dir_opt: str | None) -> None:
    """Judge a stored run's comparisons (default: the latest run) blind, in the browser, as NAME.

    Prints the page's URL (with its access token) on the first line. Several
    people can judge the same run at once: each runs this command with their
    own --name (and --port). Stopping and starting again continues where
    that person stopped. Ctrl-C (or SIGTERM) says how many verdicts were
    stored and the command that resumes, and exits 130 (143), like `run`.
    """
    from brie_bench.cli import err_console, resolve_common
    from brie_bench.textsafe import safe_text

    if not web:
        raise InputError("only the browser page exists so far: add --web (to judge at the terminal, add a "
                         "`human` judge to the suite and use `brie-bench run`)", field="--web")
    from brie_bench.web.session import check_sample

    check_sample(sample)
    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    from brie_bench.store_api import target_missing

    if target_missing(db):
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    try:
        from brie_bench.web.server import network_warning, serve
        from brie_bench.web.session import JudgingSession
    except ModuleNotFoundError as exc:
        raise InputError(f"the judging page needs {exc.name}: pip install 'brie-bench[web]'") from None
    if (warning := network_warning(host, "judge as you")):
        err_console().print(safe_text(warning), soft_wrap=True)
    session = JudgingSession(db, run_id, name, sample=sample)
    judged_before = session.progress().judged
    try:
        serve(session, host=host, port=port, idle_exit_s=idle_exit, say=lambda line: click.echo(line))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from None
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the server has shut down cleanly
        from brie_bench.signals import exit_code, ignore_stop_signals

        ignore_stop_signals()  # on the way out: a second Ctrl-C must not print a traceback
        progress = session.progress()
        command = resume_command(db, session.run_id, name, sample=sample, port=port, host=host,
                                 idle_exit=idle_exit)
        stored = progress.judged - judged_before
        err_console().print(safe_text(
            f"stopped: {name} stored {stored} verdict{'s' if stored != 1 else ''} this session, "
            f"{progress.judged} of {progress.total} comparisons judged in run {session.run_id}; every verdict is "
            f"stored. To resume: {command}"), soft_wrap=True)
        ctx.exit(exit_code(exc))
    finally:
        session.close()


def resume_command(db: str, run_id: str, name: str, *, sample: int | None, port: int, host: str,
                   idle_exit: float) -> str:
    """The exact command that continues this person's judging, ready to paste into a shell.

    It names the run by id (not "the latest", which a later run would change) and
    repeats `--sample N`, which picks the same prompts again; the database (unless
    it is ./brie-bench.db), port, host and idle stop only when not the defaults.
    """
    import shlex

    words = ["brie-bench"] + (["--db", db] if db != "brie-bench.db" else []) + ["judge", run_id, "--web", "--name", name]
    if sample is not None:
        words += ["--sample", str(sample)]
    if port != 8765:
        words += ["--port", str(port)]
    if host != "127.0.0.1":
        words += ["--host", host]
    if idle_exit:
        words += ["--idle-exit", f"{idle_exit:g}"]
    return shlex.join(words)
