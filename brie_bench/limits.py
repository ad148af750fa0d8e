"""Per-backend concurrency and rate limits, and the retry policy.

Each contender and judge gets one `RateLimiter`: a semaphore for
`max_concurrency`, request spacing for `requests_per_minute`, and a sliding
one-minute window for `tokens_per_minute` (estimated before the call).

These are per process. On a PostgreSQL store the engine also gives each limiter the
run-wide side of the same limits (`brie_bench.global_limits.GlobalLimit`): a call then
takes a slot of its own process first (`slot`), claims its unit, and takes a global slot
second (`global_slot`), waiting its turn in both request spacings, so N workers together stay within the suite's `max_concurrency`
and `requests_per_minute` (docs/scaling.md, "Many machines").
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from collections.abc import AsyncIterator, Callable

from typing import TYPE_CHECKING

from brie_bench import envvars
from brie_bench.api import Limits

if TYPE_CHECKING:  # psycopg is imported only when a PostgreSQL store asks for global limits
    from brie_bench.global_limits import GlobalLimit


class RateLimiter:
    """One contender's or judge's limits in this process, and across all workers when `shared` is given."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic, *,
                 shared: GlobalLimit | None = None) -> None:
        self.limits = limits
        self.shared = shared
        self._sem = asyncio.Semaphore(limits.max_concurrency)
        self._clock = clock
        self._next_request = 0.0
        self._lock = asyncio.Lock()
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()

    async def _wait_rate(self, tokens: int) -> None:
        async with self._lock:
            rpm = self.limits.requests_per_minute
            if rpm:
                now = self._clock()
                wait = self._next_request - now
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_request = max(now, self._next_request) + 60.0 / rpm
            tpm = self.limits.tokens_per_minute
            if tpm:
                tokens = min(tokens, tpm)
                while True:
                    now = self._clock()
                    while self._tokens and now - self._tokens[0][0] >= 60.0:
                        self._tokens.popleft()
                    used = sum(t for _, t in self._tokens)
                    if used + tokens <= tpm:
                        break
                    await asyncio.sleep(max(0.01, 60.0 - (now - self._tokens[0][0])))
                self._tokens.append((self._clock(), tokens))

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        """This process's slot and its turn in this process's request spacing."""
        async with self._sem:
            await self._wait_rate(tokens)
            yield

    @asynccontextmanager
    async def global_slot(self) -> AsyncIterator[None]:
        """The run-wide slot and turn (PostgreSQL), taken inside `slot` right around the call; nothing without one.

        Inside, not together with `slot`: the engine claims the unit's lease in between, so a
        unit a peer already holds is skipped without taking one of the run's slots, and a
        process never holds a run-wide slot it has no free process slot for.
        """
        if self.shared is None:
            yield
            return
        async with self.shared.slot():
            yield


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's retry-after wins (capped).

    `BRIE_BENCH_RETRY_BASE_S` and `BRIE_BENCH_RETRY_CAP_S` change the defaults
    (tests and benchmarks use short waits).
    """

    base_s: float = field(default_factory=envvars.retry_base_s)
    cap_s: float = field(default_factory=envvars.retry_cap_s)
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        return min(self.cap_s, self.base_s * 2.0 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


def estimate_tokens(texts: list[str], max_tokens: int) -> int:
    """A cheap token estimate (4 characters a token) for tokens-per-minute budgeting."""
    return sum(len(t) for t in texts) // 4 + max_tokens
