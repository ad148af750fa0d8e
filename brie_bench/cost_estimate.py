"""What a plan's calls will cost before they are made, and which backends run on the user's own hardware.

Kept apart from `brie_bench.run` so that planning (`brie_bench.planning`, the `--power`
cost line) and the run itself share one estimate without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from brie_bench.prices import Cost, UsageLine, costs_by_name, price_table

if TYPE_CHECKING:
    from brie_bench.api import ModelBackend
    from brie_bench.plan import Plan
    from brie_bench.runtime import Runtime
    from brie_bench.suite import Suite


def estimate_costs(suite: Suite, runtime: Runtime, plan: Plan, stored_gen: set[str],
                   stored_judg: set[str]) -> dict[str, Cost]:
    """A rough cost of the calls not yet stored: 4 characters a token, answers at full max_tokens,
    a judging template of about 500 tokens and judge answers of up to 400 tokens."""
    lines: list[UsageLine] = []
    for gen in plan.generations:
        if gen.key in stored_gen:
            continue
        contender = runtime.contenders[gen.contender]
        tokens_in = sum(len(m.content) for m in gen.request.messages) // 4
        lines.append(UsageLine(gen.contender, contender.model, tokens_in, gen.request.params.max_tokens,
                               is_local(contender)))
    max_tokens = {s.name: s.settings.max_tokens for s in suite.sections}
    for judgment in plan.judgments:
        if judgment.key in stored_judg:
            continue
        judge = runtime.judges[judgment.judge]
        judge_backend = judge.backend
        tokens_in = 500 + len(judgment.prompt.text) // 4 + 2 * max_tokens[judgment.section]
        tokens_out = min(int(getattr(judge.options, "max_tokens", 400) or 400), 400)
        lines.append(UsageLine(judgment.judge, judge_backend.model if judge_backend else None, tokens_in, tokens_out,
                               is_local(judge_backend)))
    return {name: c for name, (c, _) in costs_by_name(price_table(suite.spec.prices), lines).items()}


def is_local(backend: ModelBackend | None) -> bool:
    """Runs on the user's own hardware: a local backend, or a server on this machine (vLLM, Ollama)."""
    if backend is None:
        return True
    if backend.local:
        return True
    base_url = getattr(backend.options, "base_url", None)
    if not base_url:
        return False
    host = (urlsplit(str(base_url)).hostname or "").lower()
    return host in _LOOPBACK_HOSTS


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
