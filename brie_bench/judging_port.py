"""What batch judging (`brie_bench.batches`) may ask of the engine: the `JudgingPort` protocol.

Why a protocol: a batch verdict must be leased, called, checked, stored and failed
exactly like a direct one, so batch judging borrows the engine's own ways of doing
each. Named here, those ways are the whole of what it may use; the engine
(`brie_bench.engine.Engine`) implements them, and neither module imports the other's
internals, so the engine can change its retry loop or lease keys without breaking
batches, and the two no longer import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from brie_bench.errors import ErrorKind
from brie_bench.call_result import CallResult
from brie_bench.plan import JudgmentUnit
from brie_bench.records import BlindedPair
from brie_bench.runtime import Runtime
from brie_bench.store import Store

__all__ = ["JudgingPort"]


class JudgingPort(Protocol):
    """The engine as batch judging sees it: one run, its store and plugins, and ten verbs."""

    @property
    def run_id(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def runtime(self) -> Runtime: ...

    def claim(self, keys: Sequence[str]) -> str:
        """Lease `keys` for this process: "claimed", or what a peer left ("held", "stored", "failed")."""
        ...

    def release(self, keys: Sequence[str]) -> None:
        """Give back a lease this process holds, its work done."""
        ...

    async def wait(self, keys: Sequence[str], stored: Callable[[], bool]) -> str:
        """Wait while a peer holds `keys`: "stored" (`stored()` says so), "failed" or "free" (claim again)."""
        ...

    def pair(self, unit: JudgmentUnit, texts: dict[str, str]) -> BlindedPair:
        """The blinded pair a judge sees for `unit` (`texts`: generation key -> stored answer)."""
        ...

    async def judge_directly(self, units: Sequence[JudgmentUnit], texts: dict[str, str]) -> None:
        """Judge `units` one call each, as a judge without `batch: true` is, storing verdicts or failures."""
        ...

    async def call(self, name: str, unit_kind: str, unit_keys: Sequence[str], fn: Callable[[], Awaitable[Any]], *,
                   check: Callable[[Any], Any]) -> CallResult:
        """Call `fn` under `name`'s limits and retries; every failed attempt is logged against `unit_keys`."""
        ...

    def check_answer(self, value: Any) -> tuple[Any, list[str]]:
        """A model answer as it may be stored (capped; `outputs.MalformedOutput` if it cannot), and what was cut."""
        ...

    def save(self, unit: JudgmentUnit, verdict: Any, *, notes: Sequence[str] = ()) -> None:
        """Check and store `unit`'s verdict, releasing its lease; `notes`: earlier cuts to record with it."""
        ...

    def fail(self, unit: JudgmentUnit, kind: ErrorKind, message: str, *, transient: bool = False) -> None:
        """Record that `unit` got no verdict this time, and why (an error the engine has not logged yet)."""
        ...

    def count_failed(self, unit: JudgmentUnit) -> None:
        """`unit` got no verdict this time, and `call` has already logged why."""
        ...
