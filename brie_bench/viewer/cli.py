"""`brie-bench view`: serve every run in the database, read-only, on 127.0.0.1."""

from __future__ import annotations

import click

from brie_bench.cli_options import common_options
from brie_bench.errors import InputError


@click.command("view")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the results to the network.")
@click.option("--idle-exit", "idle_exit", type=click.FloatRange(0, None), default=0.0,
              help="Stop after this many seconds without a request (0: never).")
@common_options
@click.pass_context
def view_command(ctx: click.Context, port: int, host: str, idle_exit: float, db_opt: str | None,
                 plugins_dir_opt: str | None) -> None:
    """Browse every run in the database in the browser: runs list, reports, run against run, comparisons.

    Prints the viewer's URL (with its access token) on the first line. The
    viewer only reads the database, so it can stay open while runs write to it.
    Ctrl-C (or SIGTERM) stops it.
    """
    import secrets

    from brie_bench.cli import err_console, resolve_common
    from brie_bench.textsafe import printable, safe_text

    db, _ = resolve_common(ctx, db_opt, plugins_dir_opt)
    from brie_bench.store_api import target_missing

    if target_missing(db):
        raise InputError("database not found (run `brie-bench run SUITE` first)", path=db)
    from brie_bench.store import Store

    Store(db, readonly=True).close()  # a damaged or foreign file is refused here, in one line
    try:
        from brie_bench.viewer.app import create_viewer_app
        from brie_bench.web.server import listen, network_warning, run_app
    except ModuleNotFoundError as exc:
        raise InputError(f"the viewer needs {exc.name}: pip install 'brie-bench[web]'") from None
    if (warning := network_warning(host, "read every run")):
        err_console().print(safe_text(warning), soft_wrap=True)
    try:
        sock, url_host, port, hosts = listen(host, port)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from None
    token = secrets.token_urlsafe(24)
    app = create_viewer_app(db, token=token, allowed_hosts=hosts)
    click.echo(f"http://{url_host}:{port}/?token={token}")
    click.echo(printable(f"viewing {db} (read-only). Open the URL above; Ctrl-C stops."))
    try:
        run_app(app, sock, idle_exit_s=idle_exit, say=lambda line: click.echo(line))
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the server has shut down cleanly
        from brie_bench.signals import exit_code, ignore_stop_signals

        ignore_stop_signals()
        err_console().print("stopped: the viewer only reads, nothing to save", soft_wrap=True)
        ctx.exit(exit_code(exc))
