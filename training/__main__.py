"""`python -m brie_bench.training CONFIG ...`: the train command on its own.

This is the entry point for `accelerate launch -m brie_bench.training CONFIG`,
which starts one process per GPU (see docs/training.md). Bad input exits 2
with a one-line message, as under `brie-bench train`.
"""

from __future__ import annotations

import sys


from brie_bench.training.cli import run_standalone, train_command


def main(argv: list[str] | None = None) -> int:
    return run_standalone(train_command, argv, "brie-bench train")


if __name__ == "__main__":
    sys.exit(main())
