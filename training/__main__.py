"""`python -m brie_bench.training CONFIG ...`: the train command on its own.

This is the entry point for `accelerate launch -m brie_bench.training CONFIG`,
which starts one process per GPU (see docs/training.md). Bad input exits 2
with a one-line message, as under `brie-bench train`.
"""

from __future__ import annotations

import sys

import click

from brie_bench.errors import InputError
from brie_bench.training.cli import train_command


def main(argv: list[str] | None = None) -> int:
    try:
        train_command.main(args=argv, prog_name="brie-bench train", standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
