"""Per-backend limits: concurrency, requests per minute, tokens per minute, and the retry delays.

Rate limits are checked by *lower* bounds on elapsed time (a slow machine can only
make them longer) and by a fake clock, never by upper bounds.
"""

from __future__ import annotations

import asyncio
import random
import time

from brie_bench.api import Limits
from brie_bench.limits import RateLimiter, RetryPolicy, estimate_tokens


def test_concurrency_limit_is_never_exceeded():
    limiter_limits = Limits(max_concurrency=3)

    async def main() -> int:
        limiter = RateLimiter(limiter_limits)
        in_flight = peak = 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with limiter.slot():
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.01)
                in_flight -= 1

        await asyncio.gather(*(one() for _ in range(20)))
        return peak

    assert asyncio.run(main()) == 3


def test_requests_per_minute_spaces_the_requests():
    async def main() -> float:
        limiter = RateLimiter(Limits(max_concurrency=10, requests_per_minute=600))  # one per 0.1 s
        start = time.monotonic()

        async def one() -> None:
            async with limiter.slot():
                pass

        await asyncio.gather(*(one() for _ in range(5)))
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.4 - 0.01  # the 2nd..5th wait 0.1 s each


def test_tokens_per_minute_waits_for_the_window():
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def main() -> None:
        limiter = RateLimiter(Limits(max_concurrency=1, tokens_per_minute=1000), clock=lambda: now[0])
        original = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            async with limiter.slot(600):
                pass
            async with limiter.slot(300):
                pass
            assert slept == []  # 900 of 1000 tokens used: no wait
            async with limiter.slot(300):
                pass
        finally:
            asyncio.sleep = original  # type: ignore[assignment]

    asyncio.run(main())
    assert sum(slept) >= 60.0  # the third call waited for the first call's minute to pass


def test_retry_policy_honours_retry_after_and_backs_off_exponentially():
    policy = RetryPolicy(base_s=1.0, cap_s=8.0)
    rng = random.Random(0)
    assert policy.delay(3, 2.5, rng) == 2.5
    assert policy.delay(1, 10_000, rng) == policy.max_retry_after_s
    delays = [policy.delay(attempt, None, rng) for attempt in range(1, 7)]
    for attempt, d in enumerate(delays, start=1):
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= d <= ceiling  # jitter in [0.5, 1] of the exponential step, capped


def test_token_estimate_counts_prompt_and_answer():
    assert estimate_tokens(["x" * 400], 100) == 200
