"""Run a plan: generate every missing answer, then judge every missing pair, committing each unit.

Transient failures (`TransientError`, timeouts) are retried with backoff and
every failed attempt is written to the store's error log; permanent ones are
recorded and the unit is left undone, so a rerun tries it again. A failure is
never turned into a verdict. Local backends receive batches of requests that
share sampling parameters.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol, Sequence

from brie_bench.api import Limits
from brie_bench.blinding import blind, unblind
from brie_bench.errors import CallError, StopRun, TransientError
from brie_bench.limits import RateLimiter, RetryPolicy, estimate_tokens
from brie_bench.plan import GenerationUnit, JudgmentUnit, Plan
from brie_bench.records import BlindedPair, GenerationResult, JudgeResult
from brie_bench.runtime import Runtime
from brie_bench.store import Store


class Reporter(Protocol):
    """Receives progress; the CLI draws rich progress bars from it."""

    def phase(self, name: str, total: int, done: int) -> None: ...
    def advance(self, name: str, ok: bool) -> None: ...
    def finish(self, name: str) -> None: ...


class NullReporter:
    def phase(self, name: str, total: int, done: int) -> None:
        pass

    def advance(self, name: str, ok: bool) -> None:
        pass

    def finish(self, name: str) -> None:
        pass


@dataclass
class EngineStats:
    generations_total: int = 0
    generations_cached: int = 0
    generations_done: int = 0
    generations_failed: int = 0
    judgments_total: int = 0
    judgments_cached: int = 0
    judgments_done: int = 0
    judgments_failed: int = 0
    judgments_blocked: int = 0
    retries: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.generations_failed + self.judgments_failed + self.judgments_blocked


async def run_all(coroutines: Iterable[Awaitable[Any]]) -> None:
    """Run coroutines concurrently; the first failure cancels the rest and is raised as itself.

    A failure here is never a model error (those are recorded by `_call`), but
    something that must stop the run: a store write that failed (disk full,
    read-only file) or `StopRun`. Cancelling the rest at once keeps other units
    from failing the same way and leaves no task running into shutdown.
    """
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)  # type: ignore[arg-type]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


class Engine:
    def __init__(self, store: Store, run_id: str, runtime: Runtime, *, run_seed: int,
                 reporter: Reporter | None = None, retry: RetryPolicy | None = None,
                 concurrency: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.runtime = runtime
        self.run_seed = run_seed
        self.reporter = reporter or NullReporter()
        self.retry = retry or RetryPolicy()
        self.rng = random.Random(run_seed)
        self.stats = EngineStats()
        self.limiters: dict[str, RateLimiter] = {}
        for name, limits in runtime.limits.items():
            if concurrency is not None:
                limits = limits.model_copy(update={"max_concurrency": min(limits.max_concurrency, concurrency)})
            self.limiters[name] = RateLimiter(limits)

    # -- retry loop --------------------------------------------------------------------
    async def _call(self, name: str, unit_kind: str, unit_keys: Sequence[str], tokens: int,
                    fn: Callable[[], Awaitable[Any]]) -> Any | None:
        """Call `fn` under `name`'s limits with retries; None when it finally failed."""
        limiter = self.limiters[name]
        limits: Limits = limiter.limits
        for attempt in range(1, limits.max_attempts + 1):
            started = time.monotonic()
            try:
                async with limiter.slot(tokens):
                    self.stats.calls += 1
                    return await asyncio.wait_for(fn(), timeout=limits.timeout_s), time.monotonic() - started
            except asyncio.TimeoutError:
                error: CallError = TransientError(f"timed out after {limits.timeout_s:g} s", kind="timeout")
            except CallError as exc:
                error = exc
            except StopRun:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin bug: record it, never a verdict
                error = CallError(f"{type(exc).__name__}: {exc}", kind="plugin_error")
            final = not error.transient or attempt == limits.max_attempts
            for key in unit_keys:
                self.store.save_error(run_id=self.run_id, unit_key=key, unit_kind=unit_kind, name=name,
                                      attempt=attempt, kind=error.kind, transient=error.transient, final=final,
                                      message=str(error))
            if final:
                self.stats.failures.append(f"{unit_kind} {name}: {error.kind}: {error}")
                return None
            self.stats.retries += 1
            await asyncio.sleep(self.retry.delay(attempt, error.retry_after, self.rng))
        return None

    # -- generation --------------------------------------------------------------------
    async def _generate_batch(self, units: list[GenerationUnit], stored: set[str]) -> None:
        """Generate one batch; store the results of the units not stored yet (see `run_generations`)."""
        contender = units[0].contender
        backend = self.runtime.contenders[contender]
        requests = [u.request for u in units]
        tokens = sum(estimate_tokens([m.content for m in r.messages], r.params.max_tokens) for r in requests)
        outcome = await self._call(contender, "generation", [u.key for u in units], tokens,
                                   lambda: backend.generate_batch(requests))
        if outcome is not None:
            results, latency = outcome
            if not isinstance(results, list) or len(results) != len(units) or \
                    not all(isinstance(r, GenerationResult) for r in results):
                for u in units:
                    self.store.save_error(run_id=self.run_id, unit_key=u.key, unit_kind="generation",
                                          name=contender, attempt=1, kind="plugin_error", transient=False,
                                          final=True, message="backend returned a malformed batch")
                outcome = None
        for i, unit in enumerate(units):
            if unit.key in stored:
                continue  # regenerated only to keep the batch as planned; the stored answer stays
            if outcome is None:
                self.stats.generations_failed += 1
                self.reporter.advance("generation", False)
                continue
            result: GenerationResult = results[i]
            self.store.save_generation(
                key=unit.key, backend=backend.name, model=backend.model, spec=backend.identity(),
                messages=[m.to_dict() for m in unit.request.messages], params=unit.request.params.to_dict(),
                sample_index=unit.sample_index, text=result.text, finish_reason=result.finish_reason,
                input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
                latency_s=latency / len(units))
            self.stats.generations_done += 1
            self.reporter.advance("generation", True)

    async def run_generations(self, plan: Plan) -> None:
        stored = self.store.stored_generation_keys([u.key for u in plan.generations])
        todo = [u for u in plan.generations if u.key not in stored]
        self.stats.generations_total = len(plan.generations)
        self.stats.generations_cached = len(plan.generations) - len(todo)
        self.reporter.phase("generation", len(plan.generations), self.stats.generations_cached)
        # Batches are cut from the whole plan, not from what is left to do: a sampled answer
        # depends on which requests share its batch (they share one seeded random stream), so
        # fixed batches make a resumed run produce exactly the answers an uninterrupted one
        # would. A batch with any missing unit is generated whole; a local backend repeats
        # at most batch_size - 1 stored answers, a remote one (batch_size 1) none.
        groups: dict[tuple[str, Any], list[GenerationUnit]] = defaultdict(list)
        for unit in plan.generations:
            groups[(unit.contender, unit.request.params)].append(unit)
        batches: list[list[GenerationUnit]] = []
        for (contender, _), units in groups.items():
            size = max(1, int(getattr(self.runtime.contenders[contender], "batch_size", 1) or 1))
            chunks = (units[i:i + size] for i in range(0, len(units), size))
            batches.extend(c for c in chunks if any(u.key not in stored for u in c))
        await run_all(self._generate_batch(b, stored) for b in batches)
        self.store.link_generations(self.run_id, [(l.section, l.prompt_id, l.sample_index, l.contender, l.key)
                                                  for l in plan.links])
        self.reporter.finish("generation")

    # -- judging -----------------------------------------------------------------------
    def _pair(self, unit: JudgmentUnit, texts: dict[str, str]) -> BlindedPair:
        by_contender = {c: texts[k] for c, k in unit.gen_keys}
        return blind(unit.prompt.text, by_contender, unit.assignment, criteria=unit.criteria,
                     system_prompt=unit.system_prompt)

    def _fail_judgment(self, unit: JudgmentUnit, kind: str, message: str, *, transient: bool = False) -> None:
        self.store.save_error(run_id=self.run_id, unit_key=unit.key, unit_kind="judgment", name=unit.judge,
                              attempt=1, kind=kind, transient=transient, final=True, message=message)
        self.stats.failures.append(f"judgment {unit.judge}: {kind}: {message}")
        self._count_failed_judgment()

    def _count_failed_judgment(self) -> None:
        """A judgment that produced no verdict this time (its errors are already recorded)."""
        self.stats.judgments_failed += 1
        self.reporter.advance("judging", False)

    def _save_judgment(self, unit: JudgmentUnit, result: Any, latency: float | None) -> None:
        judge = self.runtime.judges[unit.judge]
        if not isinstance(result, JudgeResult):
            self._fail_judgment(unit, "plugin_error", f"judge returned {type(result).__name__}, not JudgeResult")
            return
        a, b = unit.assignment.a, unit.assignment.b
        self.store.save_judgment({
            "run_id": self.run_id, "unit_key": unit.key, "section": unit.section, "prompt_id": unit.prompt.id,
            "sample_index": unit.sample_index, "judge": unit.judge, "judge_type": judge.name,
            "judge_model": self.runtime.judge_model(unit.judge), "baseline": unit.baseline,
            "candidate": unit.candidate, "order_index": unit.order_index, "label_a": a, "label_b": b,
            "gen_key_a": unit.gen_key(a), "gen_key_b": unit.gen_key(b), "verdict": result.label,
            "winner": unblind(result.label, unit.assignment), "p_a": result.p_a,
            "scores": dict(result.scores) if result.scores else None, "reasoning": result.reasoning,
            "invalid_reason": result.invalid_reason, "raw": result.raw,
            "input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens,
            "latency_s": latency,
        })
        self.stats.judgments_done += 1
        self.reporter.advance("judging", True)

    async def _judge_one(self, unit: JudgmentUnit, texts: dict[str, str]) -> None:
        judge = self.runtime.judges[unit.judge]
        pair = self._pair(unit, texts)
        tokens = estimate_tokens([pair.prompt, pair.answer_a, pair.answer_b], 512)
        outcome = await self._call(unit.judge, "judgment", [unit.key], tokens, lambda: judge.judge(pair))
        if outcome is None:
            self._count_failed_judgment()
            return
        self._save_judgment(unit, outcome[0], outcome[1])

    async def _judge_in_batches(self, judge_name: str, units: list[JudgmentUnit], texts: dict[str, str]) -> None:
        """Judge through the provider's batch API: submit once, record the batch id at once, poll.

        A rerun after a crash polls the batches already recorded instead of submitting again.
        """
        judge = self.runtime.judges[judge_name]
        backend = judge.backend
        assert backend is not None
        by_key = {u.key: u for u in units}
        pairs = {u.key: self._pair(u, texts) for u in units}
        open_batches = self.store.open_batches(self.run_id, judge_name)
        in_flight = {k for _, keys in open_batches for k in keys}
        items, direct = [], []
        for u in units:
            if u.key in in_flight:
                continue
            request = judge.batch_request(pairs[u.key])
            if request is None:  # this judge cannot batch this pair (e.g. logprob mode): judge it directly
                direct.append(u)
            else:
                items.append((u.key, request))
        await run_all(self._judge_one(u, texts) for u in direct)
        if items:
            outcome = await self._call(judge_name, "batch_submit", [k for k, _ in items], 0,
                                       lambda: backend.submit_batch(items))  # type: ignore[attr-defined]
            if outcome is None:
                for _ in items:
                    self._count_failed_judgment()
            else:
                batch_id = outcome[0]
                self.store.save_batch(self.run_id, judge_name, batch_id, [k for k, _ in items])
                open_batches.append((batch_id, [k for k, _ in items]))
        done: set[str] = set()
        poll_s = self.runtime.batch[judge_name]
        while open_batches:
            for batch_id, keys in list(open_batches):
                outcome = await self._call(judge_name, "batch_poll", [batch_id], 0,
                                           lambda b=batch_id: backend.poll_batch(b))  # type: ignore[attr-defined]
                if outcome is None:  # polling failed for good this time: leave the batch open for a rerun
                    open_batches.remove((batch_id, keys))
                    for key in keys:
                        if key in by_key and key not in done:
                            self._count_failed_judgment()
                    continue
                poll = outcome[0]
                for custom_id, result in poll.results.items():
                    unit = by_key.get(custom_id)
                    if unit is None or custom_id in done:
                        continue
                    done.add(custom_id)
                    if isinstance(result, CallError):
                        self._fail_judgment(unit, result.kind, str(result), transient=result.transient)
                    else:
                        try:
                            verdict = judge.batch_result(pairs[custom_id], result)
                        except Exception as exc:  # noqa: BLE001 - never a verdict from a failure
                            self._fail_judgment(unit, "plugin_error", f"{type(exc).__name__}: {exc}")
                            continue
                        self._save_judgment(unit, verdict, None)
                if poll.done:
                    self.store.finish_batch(self.run_id, batch_id, poll.status or "done")
                    open_batches.remove((batch_id, keys))
                    for key in keys:
                        if key in by_key and key not in done:
                            done.add(key)
                            self._fail_judgment(by_key[key], "batch_missing", f"batch {batch_id} ended without it",
                                                transient=True)
            if open_batches:
                await asyncio.sleep(poll_s)

    async def run_judgments(self, plan: Plan) -> None:
        stored = self.store.stored_judgment_keys(self.run_id)
        todo = [u for u in plan.judgments if u.key not in stored]
        self.stats.judgments_total = len(plan.judgments)
        self.stats.judgments_cached = len(plan.judgments) - len(todo)
        texts = self.store.generation_texts({k for u in todo for _, k in u.gen_keys})
        ready = [u for u in todo if all(k in texts for _, k in u.gen_keys)]
        self.stats.judgments_blocked = len(todo) - len(ready)
        self.reporter.phase("judging", len(plan.judgments), self.stats.judgments_cached)
        batched: dict[str, list[JudgmentUnit]] = defaultdict(list)
        direct: list[JudgmentUnit] = []
        for u in ready:
            (batched[u.judge] if u.judge in self.runtime.batch else direct).append(u)
        await run_all([*(self._judge_one(u, texts) for u in direct),
                       *(self._judge_in_batches(j, units, texts) for j, units in batched.items())])
        self.reporter.finish("judging")

    async def run(self, plan: Plan) -> EngineStats:
        await self.run_generations(plan)
        await self.run_judgments(plan)
        return self.stats
