"""What one call through the engine's retry loop (`Engine._call`) came to: done, failed or skipped.

A module of its own so that `brie_bench.batches`, which borrows the engine's retry
loop, can match on the call result without importing the engine (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brie_bench.errors import ErrorKind

__all__ = ["Done", "Failed", "Skipped", "CallResult"]


@dataclass(frozen=True)
class Done:
    """A call that answered: its result (already through `check`) and how long it took."""

    result: Any
    latency: float


@dataclass(frozen=True)
class Failed:
    """A call that failed for good (every attempt is already in the store's error log)."""

    kind: ErrorKind


@dataclass(frozen=True)
class Skipped:
    """A unit this process did not call: "stored" or "failed" by a peer, or "held" by one now."""

    status: str


#: What `Engine._call` returns: exactly one of the three, never a bare None or tuple.
CallResult = Done | Failed | Skipped
