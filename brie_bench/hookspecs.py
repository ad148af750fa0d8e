"""The whole plugin contract on one page.

Each hook receives a `register` callable; call it once per class you provide.
Built-in plugins are registered through the same plugin manager as
third-party ones, so they follow exactly these rules.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("brie_bench")


@hookspec
def register_backends(register: Callable[[type], None]) -> None:
    """Register model backend classes (subclasses of brie_bench.api.ModelBackend)."""


@hookspec
def register_judges(register: Callable[[type], None]) -> None:
    """Register judge classes (subclasses of brie_bench.api.Judge)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the `brie-bench` click group."""
