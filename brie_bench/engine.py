"""Run a plan: generate every missing answer, then judge every missing pair, committing each unit.

Transient failures (`TransientError`, timeouts) are retried with backoff and
every failed attempt is written to the store's error log; permanent ones are
recorded and the unit is left undone, so a rerun tries it again. A failure is
never turned into a verdict. Local backends receive batches of requests that
share sampling parameters. Judges with `batch: true` go through the provider's
batch API instead (`brie_bench.batches`).

Everything a plugin returns passes `brie_bench.outputs` before it is stored: a
value that cannot be stored fails its unit (kind ``malformed``), never the run.
Each unit is leased in the store before it is called (`brie_bench.leases`), so
several processes on one database share the work and call each unit once. The
counts in `EngineStats` are read back from the store when a phase ends.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from brie_bench import calls, global_limits, outputs, signals
from brie_bench.api import Limits
from brie_bench.batches import judge_in_batches_leased
from brie_bench.blinding import blind, unblind
from brie_bench.errors import CallError, ErrorKind, StopRun, TransientError
from brie_bench.leases import Leases
from brie_bench.limits import RateLimiter, RetryPolicy, estimate_tokens
from brie_bench.call_result import Done, Failed, CallResult, Skipped
from brie_bench.plan import GenerationUnit, JudgmentUnit, Plan
from brie_bench.records import BlindedPair, JudgeResult
from brie_bench.rows import GenerationRow, JudgmentRow
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


async def run_all(coroutines: Iterable[Coroutine[Any, Any, Any]]) -> None:
    """Run coroutines concurrently; the first failure cancels the rest and is raised as itself.

    A failure here is never a model error (those are recorded by `_call`), but
    something that must stop the run: a store write that failed (disk full,
    read-only file) or `StopRun`. Cancelling the rest at once keeps other units
    from failing the same way and leaves no task running into shutdown.
    """
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def judgment_row(run_id: str, unit: JudgmentUnit, result: JudgeResult, *, judge_type: str,
                 judge_model: str | None, latency: float | None) -> JudgmentRow:
    """The stored row of one verdict: the label verdict, and its winner through `unblind`.

    Shared by the engine and the browser judging page (`brie_bench.web`), so
    every judge's verdicts are unblinded and stored the same way.
    """
    a, b = unit.assignment.a, unit.assignment.b
    return JudgmentRow(
        run_id=run_id, unit_key=unit.key, section=unit.section, prompt_id=unit.prompt.id,
        sample_index=unit.sample_index, judge=unit.judge, judge_type=judge_type,
        judge_model=judge_model, baseline=unit.baseline,
        candidate=unit.candidate, presentation_order=unit.presentation_order, label_a=a, label_b=b,
        gen_key_a=unit.gen_key(a), gen_key_b=unit.gen_key(b), verdict=result.label,
        winner=unblind(result.label, unit.assignment), p_a=result.p_a,
        scores=dict(result.scores) if result.scores else None, reasoning=result.reasoning,
        invalid_reason=result.invalid_reason, raw=result.raw,
        input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
        latency_s=latency,
    )


class Pacer:
    """Spaces the starts of one judge's calls at least `gap_s` apart, so their answers do not bunch.

    Why: calls started together are answered together, and their answers then queue on
    the one event loop (reading, parsing, storing and sending the next request take a
    few milliseconds of CPU each). Bunched once, they stay bunched: every wave of C
    calls took L plus the whole wave's processing, where calls a few milliseconds apart
    each find the loop free (measured: 16 slots at L = 200 ms, about 212 ms a call when
    bunched, 204 ms when spread). So the first C starts are `max_gap_s` apart (a ramp of
    C x 4 ms), and later starts closer than `gap_s` wait the difference. The gap never
    exceeds half the even spacing of the slots over a unit's typical time (its moving
    average divided by 2 x slots), so pacing never caps throughput below the concurrency
    limit's, and once a fast judge is seen it is small: instant units are not slowed.
    """

    def __init__(self, slots: int, max_gap_s: float = 0.004) -> None:
        self.slots = max(1, slots)
        self.max_gap_s = max_gap_s
        self.typical_s: float | None = None
        self._next = 0.0

    @property
    def gap_s(self) -> float:
        if self.typical_s is None:
            return self.max_gap_s
        return min(self.max_gap_s, self.typical_s / (2 * self.slots))

    async def wait(self) -> None:
        """Return at this start's turn; at once (no yield to the loop) when it is already due."""
        now = time.monotonic()
        at = max(now, self._next)
        self._next = at + self.gap_s
        if at > now:
            await asyncio.sleep(at - now)

    def observe(self, seconds: float) -> None:
        """One unit took `seconds` from its start to its stored verdict (or failure)."""
        self.typical_s = seconds if self.typical_s is None else 0.8 * self.typical_s + 0.2 * seconds


def _runs_on_this_machine(runtime: Runtime, name: str) -> bool:
    """Whether contender or judge `name` runs in this process on this machine's hardware (`ModelBackend.local`,
    e.g. `hf`): its `max_concurrency` is what one machine's GPU takes, so it stays per worker on PostgreSQL
    too; four GPU boxes on one run are four times as fast, not capped at one box's limit."""
    backend = runtime.contenders.get(name)
    if backend is None and name in runtime.judges:
        backend = runtime.judges[name].backend
    return bool(backend is not None and backend.local)


class Engine:
    def __init__(self, store: Store, run_id: str, runtime: Runtime, *, run_seed: int,
                 reporter: Reporter | None = None, retry: RetryPolicy | None = None,
                 concurrency: int | None = None, lease_s: float | None = None,
                 max_stored_chars: int = outputs.DEFAULT_MAX_STORED_CHARS) -> None:
        self.store = store
        self.max_stored_chars = max_stored_chars
        self.lease_s = lease_s
        self.leases: Leases | None = None
        self.run_id = run_id
        self.runtime = runtime
        self.run_seed = run_seed
        self.reporter = reporter or NullReporter()
        self.retry = retry or RetryPolicy()
        self.rng = random.Random(run_seed)
        self.stats = EngineStats()
        self.limiters: dict[str, RateLimiter] = {}
        # On PostgreSQL the suite's limits hold across every worker of the run (`brie_bench.global_limits`);
        # `concurrency` caps this process only.
        self.global_slots = global_limits.for_store(store, run_id)
        for name, limits in runtime.limits.items():
            shared = (self.global_slots.limit(name, limits)
                      if self.global_slots is not None and not _runs_on_this_machine(runtime, name) else None)
            if concurrency is not None:
                limits = limits.model_copy(update={"max_concurrency": min(limits.max_concurrency, concurrency)})
            self.limiters[name] = RateLimiter(limits, shared=shared)

    # -- retry loop --------------------------------------------------------------------
    async def _call(self, name: str, unit_kind: str, unit_keys: Sequence[str], tokens: int,
                    fn: Callable[[], Awaitable[Any]], *, check: Callable[[Any], Any] | None = None,
                    claim: Callable[[], str] | None = None) -> CallResult:
        """Call `fn` under `name`'s limits with retries: `Done(result, latency)`, or `Failed(kind)` at the end.

        `check` validates and normalises the result (`brie_bench.outputs`); a `CallError` it
        raises fails the attempt like one from the call. `claim` leases the unit once a slot
        is free, right before the first attempt; when it does not answer "claimed" nothing
        is called and `Skipped(status)` is returned.
        """
        limiter = self.limiters[name]
        limits: Limits = limiter.limits
        for attempt in range(1, limits.max_attempts + 1):
            claim_error: BaseException | None = None
            try:
                async with limiter.slot(tokens):
                    if claim is not None and attempt == 1:
                        try:
                            status = claim()
                        except BaseException as exc:  # the store failed, not the plugin: stop the run
                            claim_error = exc
                            raise
                        if status != "claimed":
                            return Skipped(status)
                    # The run-wide slot (PostgreSQL; nothing on SQLite) is taken after the claim, so a
                    # unit that a peer holds never occupies one of the run's slots to find that out.
                    async with limiter.global_slot():
                        # One call per answer or verdict asked for (`brie_bench.calls`): a batch of 8 is 8.
                        self.stats.calls += calls.weight(unit_kind, unit_keys)
                        started = time.monotonic()
                        # asyncio.timeout, not wait_for: the call runs in this task (wait_for in 3.11
                        # wraps it in a new one), so it starts at once instead of after every task
                        # already queued on the loop, and costs no task per call.
                        async with asyncio.timeout(limits.timeout_s):
                            result = await _guarded(fn)
                    latency = time.monotonic() - started
                    if latency > limits.timeout_s:
                        # The timeout could not cancel it: the plugin ran synchronous code on the event loop.
                        raise TransientError(f"answered after {latency:.1f} s, past timeout_s "
                                             f"{limits.timeout_s:g} s: the plugin blocked the event loop (run "
                                             f"synchronous work with asyncio.to_thread)", kind="timeout")
                    return Done(check(result) if check is not None else result, latency)
            except TimeoutError:
                error: CallError = TransientError(f"timed out after {limits.timeout_s:g} s", kind="timeout")
            except CallError as exc:
                error = exc
            except StopRun:
                raise
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or signals.stopping():
                    raise  # the run itself is being cancelled (Ctrl-C, a failed store write)
                error = CallError("the plugin raised CancelledError", kind=ErrorKind.PLUGIN_ERROR)
            except KeyboardInterrupt as exc:  # a real stop signal (a plugin's own is a CallError by now)
                if not signals.is_real(exc):
                    raise
                # The main task's cancellation is on its way (`signals.StopOnSignal`): end this unit
                # as cancelled, so the run unwinds in order instead of the loop stopping mid-step.
                raise asyncio.CancelledError() from None
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin bug: record it, never a verdict
                if exc is claim_error:
                    raise
                error = CallError(f"{type(exc).__name__}: {exc}", kind=ErrorKind.PLUGIN_ERROR)
            final = not error.transient or attempt == limits.max_attempts
            for key in unit_keys:
                self.store.save_error(run_id=self.run_id, unit_key=key, unit_kind=unit_kind, name=name,
                                      attempt=attempt, kind=error.kind, transient=error.transient, final=final,
                                      message=str(error))
            if final:
                self.stats.failures.append(f"{unit_kind} {name}: {error.kind}: {error}")
                return Failed(error.kind)
            self.stats.retries += calls.weight(unit_kind, unit_keys)
            await asyncio.sleep(self.retry.delay(attempt, error.retry_after, self.rng))
        raise AssertionError("unreachable: the last attempt is final")  # max_attempts >= 1 (Limits)

    # -- leases ------------------------------------------------------------------------
    def _lease(self) -> Leases:
        if self.leases is None:
            self.leases = Leases(self.store, ttl_s=self.lease_s)
        return self.leases

    async def _until_free(self, keys: Sequence[str], stored: Callable[[], bool]) -> str:
        """Wait while a peer holds `keys`: "stored", "failed" (by the peer) or "free" (claim it again)."""
        leases = self._lease()
        while True:
            await asyncio.sleep(leases.poll_s * self.rng.uniform(0.5, 1.0))
            if stored():
                return "stored"
            state = leases.state(keys)
            if state != "held":
                return state

    # -- generation --------------------------------------------------------------------
    async def _generate_batch(self, units: list[GenerationUnit], stored: set[str]) -> None:
        """Generate one batch; store the results of the units not stored yet (see `run_generations`).

        The batch's missing units are leased together; while a peer holds them this waits,
        and takes them over if the peer's lease lapses.
        """
        contender = units[0].contender
        backend = self.runtime.contenders[contender]
        requests = [u.request for u in units]
        missing = [u.key for u in units if u.key not in stored]
        lease_keys = [f"g:{k}" for k in missing]
        tokens = sum(estimate_tokens([m.content for m in r.messages], r.params.max_tokens) for r in requests)

        def all_stored() -> bool:
            return len(self.store.stored_generation_keys(missing)) == len(missing)

        def check(results: Any) -> list[Any]:
            if not isinstance(results, list) or len(results) != len(units):
                got = f"{len(results)} results" if isinstance(results, list) else type(results).__name__
                raise outputs.MalformedOutput(f"backend returned {got} for a batch of {len(units)} requests")
            return results

        while True:
            called = await self._call(contender, "generation", [u.key for u in units], tokens,
                                       lambda: backend.generate_batch(requests), check=check,
                                       claim=lambda: self._lease().claim(lease_keys, all_stored))
            if not isinstance(called, Skipped):
                break
            status = called.status
            if status == "held":
                status = await self._until_free(lease_keys, all_stored)
                if status == "free":
                    continue
            for _key in missing:  # a peer stored (or gave up on) these
                self.reporter.advance("generation", status == "stored")
            return
        stored_now: list[str] = []
        failed_now: list[str] = []
        for i, unit in enumerate(units):
            if unit.key in stored:
                continue  # regenerated only to keep the batch as planned; the stored answer stays
            if isinstance(called, Failed):
                failed_now.append(unit.key)
                self.reporter.advance("generation", False)
                continue
            results, latency = called.result, called.latency
            try:
                result, notes = self._check_generation(results[i], f"result {i + 1} of {len(units)}"
                                                       if len(units) > 1 else "the backend's result")
            except outputs.MalformedOutput as exc:
                self.store.save_error(run_id=self.run_id, unit_key=unit.key, unit_kind="generation",
                                      name=contender, attempt=1, kind=exc.kind, transient=False, final=True,
                                      message=str(exc))
                self.stats.failures.append(f"generation {contender}: {exc.kind}: {exc}")
                failed_now.append(unit.key)
                self.reporter.advance("generation", False)
                continue
            self.note_truncated(unit.key, "generation", contender, notes)
            if self.store.save_generation(GenerationRow(
                    key=unit.key, backend=backend.name, model=backend.model, spec=backend.identity(),
                    messages=[m.to_dict() for m in unit.request.messages], params=unit.request.params.to_dict(),
                    sample_index=unit.sample_index, text=result.text, finish_reason=result.finish_reason,
                    input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
                    latency_s=latency / len(units))):
                self.stats.generations_done += 1
            stored_now.append(unit.key)
            self.reporter.advance("generation", True)
        self._lease().done([f"g:{k}" for k in stored_now])
        self._lease().failed([f"g:{k}" for k in failed_now])

    async def _batch_size(self, contender: str, units: list[GenerationUnit]) -> int:
        """The size of `contender`'s batches for one plan group (all of its units that share parameters).

        A backend that sizes batches itself (`hf` with ``batch_size: auto``) answers
        `plan_batch_size(requests)` for the whole group, in a worker thread (it may load the
        model); the others give their `batch_size`. Either way a function of the plan, never
        of what is left to do. Should sizing fail (the model does not load), the backend's
        `batch_size` is used and its generate calls record the failure.
        """
        backend = self.runtime.contenders[contender]
        plan_size = getattr(backend, "plan_batch_size", None)
        try:
            size = (await asyncio.to_thread(plan_size, [u.request for u in units]) if callable(plan_size)
                    else getattr(backend, "batch_size", 1))
        except Exception:  # noqa: BLE001 - recorded by the generate calls, which fail the same way
            size = getattr(backend, "batch_size", 1)
        return max(1, int(size or 1))

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
            if all(u.key in stored for u in units):
                continue
            size = await self._batch_size(contender, units)
            chunks = (units[i:i + size] for i in range(0, len(units), size))
            batches.extend(c for c in chunks if any(u.key not in stored for u in c))
        await run_all(self._generate_batch(b, stored) for b in batches)
        self.store.link_generations(self.run_id, [(l.section, l.prompt_id, l.sample_index, l.contender, l.key)
                                                  for l in plan.links])
        # The counts are what the store holds now: stored by this process ("new"), by an earlier
        # run or a peer ("cached"), or not stored ("failed").
        in_store = len(self.store.stored_generation_keys([u.key for u in plan.generations]))
        self.stats.generations_cached = in_store - self.stats.generations_done
        self.stats.generations_failed = len(plan.generations) - in_store
        self.reporter.finish("generation")

    # -- judging -----------------------------------------------------------------------
    def _pair(self, unit: JudgmentUnit, texts: dict[str, str]) -> BlindedPair:
        by_contender = {c: texts[k] for c, k in unit.gen_keys}
        return blind(unit.prompt.text, by_contender, unit.assignment, criteria=unit.criteria,
                     system_prompt=unit.system_prompt)

    def _fail_judgment(self, unit: JudgmentUnit, kind: ErrorKind, message: str, *, transient: bool = False) -> None:
        self.store.save_error(run_id=self.run_id, unit_key=unit.key, unit_kind="judgment", name=unit.judge,
                              attempt=1, kind=kind, transient=transient, final=True, message=message)
        self.stats.failures.append(f"judgment {unit.judge}: {kind}: {message}")
        self._count_failed_judgment(unit)

    def _count_failed_judgment(self, unit: JudgmentUnit) -> None:
        """A judgment that produced no verdict this time (its errors are already recorded)."""
        self._lease().failed([self._judgment_lease(unit)])
        self.reporter.advance("judging", False)

    def _judgment_lease(self, unit: JudgmentUnit) -> str:
        return f"j:{self.run_id}:{unit.key}"

    def _save_judgment(self, unit: JudgmentUnit, result: Any, latency: float | None, *,
                       checked: bool = False, notes: Sequence[str] = ()) -> None:
        """Store a verdict and give its lease back, in one transaction.

        `checked`: `result` is `(verdict, notes)` from `_check_judgment` already; `notes` are
        earlier cuts of the same unit (a batch judge's answer) to record with it.
        """
        judge = self.runtime.judges[unit.judge]
        try:
            result, cut = result if checked else self._check_judgment(result)
        except outputs.MalformedOutput as exc:
            self._fail_judgment(unit, exc.kind, str(exc))
            return
        self.note_truncated(unit.key, "judgment", unit.judge, [*notes, *cut])
        leases = self._lease()
        if self.store.save_judgment(judgment_row(self.run_id, unit, result, judge_type=judge.name,
                                                 judge_model=self.runtime.judge_model(unit.judge), latency=latency),
                                    release=(leases.owner, [self._judgment_lease(unit)])):
            self.stats.judgments_done += 1
        self.reporter.advance("judging", True)

    def _judgment_stored(self, unit: JudgmentUnit) -> Callable[[], bool]:
        return lambda: self.store.judgment_stored(self.run_id, unit.key)

    async def _judge_one(self, unit: JudgmentUnit, texts: dict[str, str],
                         held: list[JudgmentUnit] | None = None) -> None:
        """Judge one unit and store its verdict (or its failure).

        When a peer holds the unit's lease and `held` is given, the unit is put on it and
        this returns at once, so a judging worker (`_judge_direct`) goes on with other units;
        without `held` this waits for the peer as long as it takes.
        """
        judge = self.runtime.judges[unit.judge]
        pair = self._pair(unit, texts)
        tokens = estimate_tokens([pair.prompt, pair.answer_a, pair.answer_b], 512)
        lease_keys = [self._judgment_lease(unit)]
        stored = self._judgment_stored(unit)
        while True:
            called = await self._call(unit.judge, "judgment", [unit.key], tokens, lambda: judge.judge(pair),
                                       check=self._check_judgment,
                                       claim=lambda: self._lease().claim(lease_keys, stored))
            if not isinstance(called, Skipped):
                break
            status = called.status
            if status == "held" and held is not None:
                held.append(unit)
                return
            if status == "held":
                status = await self._until_free(lease_keys, stored)
                if status == "free":
                    continue
            self.reporter.advance("judging", status == "stored")
            return
        if isinstance(called, Failed):
            self._count_failed_judgment(unit)
            return
        self._save_judgment(unit, called.result, called.latency, checked=True)  # `_call` ran _check_judgment

    async def _judge_direct(self, units: Sequence[JudgmentUnit], texts: dict[str, str]) -> None:
        """Judge `units` with a fixed pool of workers: one per concurrency slot of each judge.

        Why a pool and not one task per unit: a task per unit waits on the judge's
        semaphore, and a freed slot wakes the next one only after every callback already
        queued on the event loop has run. When the answers of a whole wave arrive
        together, no next call could start until the whole wave was processed, so the
        waves stayed in lockstep and each one paid for all of them. A worker goes on to
        its next unit in the same task step, so a slot is busy again as soon as its answer
        is stored; units still go out in plan order. The starts are spaced a little
        (`Pacer`), so the answers do not all arrive, and wait for one another, at once.
        A unit a peer process holds is set aside and waited for (as before) once the pool
        has run dry.
        """
        queues: dict[str, collections.deque[JudgmentUnit]] = defaultdict(collections.deque)
        for unit in units:
            queues[unit.judge].append(unit)
        held: list[JudgmentUnit] = []
        workers = {name: min(len(queue), self.limiters[name].limits.max_concurrency) for name, queue in queues.items()}
        pacers = {name: Pacer(n) for name, n in workers.items()}

        async def worker(queue: collections.deque[JudgmentUnit], pacer: Pacer) -> None:
            while queue:
                await pacer.wait()
                if not queue:  # another worker took the last unit while this one waited its turn
                    return
                began = time.monotonic()
                await self._judge_one(queue.popleft(), texts, held)
                pacer.observe(time.monotonic() - began)

        await run_all(worker(queues[name], pacers[name]) for name, n in workers.items() for _ in range(n))
        if held:
            await run_all(self._judge_one(u, texts) for u in held)

    async def run_judgments(self, plan: Plan) -> None:
        stored = self.store.stored_judgment_keys(self.run_id)
        todo = [u for u in plan.judgments if u.key not in stored]
        self.stats.judgments_total = len(plan.judgments)
        self.stats.judgments_cached = len(plan.judgments) - len(todo)
        texts = self.store.generation_texts({k for u in todo for _, k in u.gen_keys})
        ready = [u for u in todo if all(k in texts for _, k in u.gen_keys)]
        self.reporter.phase("judging", len(plan.judgments), self.stats.judgments_cached)
        batched: dict[str, list[JudgmentUnit]] = defaultdict(list)
        direct: list[JudgmentUnit] = []
        for u in ready:
            (batched[u.judge] if u.judge in self.runtime.batch else direct).append(u)
        await run_all([self._judge_direct(direct, texts),
                       *(judge_in_batches_leased(self, j, units, texts) for j, units in batched.items())])
        # As for generations, the counts are what the store holds now.
        stored = self.store.stored_judgment_keys(self.run_id)
        planned = {u.key for u in plan.judgments}
        in_store = len(stored & planned)
        have_texts = self.store.stored_generation_keys({k for u in plan.judgments for _, k in u.gen_keys})
        unstored = [u for u in plan.judgments if u.key not in stored]
        self.stats.judgments_cached = in_store - self.stats.judgments_done
        self.stats.judgments_blocked = sum(1 for u in unstored if not all(k in have_texts for _, k in u.gen_keys))
        self.stats.judgments_failed = len(unstored) - self.stats.judgments_blocked
        self.reporter.finish("judging")

    # -- what batch judging may use (`brie_bench.judging_port.JudgingPort`) -------------------
    def claim(self, keys: Sequence[str]) -> str:
        return self._lease().claim(keys)

    def release(self, keys: Sequence[str]) -> None:
        self._lease().done(keys)

    async def wait(self, keys: Sequence[str], stored: Callable[[], bool]) -> str:
        return await self._until_free(keys, stored)

    def pair(self, unit: JudgmentUnit, texts: dict[str, str]) -> BlindedPair:
        return self._pair(unit, texts)

    async def judge_directly(self, units: Sequence[JudgmentUnit], texts: dict[str, str]) -> None:
        await run_all(self._judge_one(u, texts) for u in units)

    async def call(self, name: str, unit_kind: str, unit_keys: Sequence[str], fn: Callable[[], Awaitable[Any]], *,
                   check: Callable[[Any], Any]) -> CallResult:
        return await self._call(name, unit_kind, unit_keys, 0, fn, check=check)

    def check_answer(self, value: Any) -> tuple[Any, list[str]]:
        return self._check_generation(value)

    def save(self, unit: JudgmentUnit, verdict: Any, *, notes: Sequence[str] = ()) -> None:
        self._save_judgment(unit, verdict, None, notes=notes)

    def fail(self, unit: JudgmentUnit, kind: ErrorKind, message: str, *, transient: bool = False) -> None:
        self._fail_judgment(unit, kind, message, transient=transient)

    def count_failed(self, unit: JudgmentUnit) -> None:
        self._count_failed_judgment(unit)

    # -- stored text caps ------------------------------------------------------------------
    def _check_generation(self, value: Any, what: str = "the backend's result") -> tuple[Any, list[str]]:
        notes: list[str] = []
        return outputs.generation(value, what, max_chars=self.max_stored_chars, notes=notes), notes

    def _check_judgment(self, value: Any) -> tuple[Any, list[str]]:
        notes: list[str] = []
        return outputs.judgment(value, max_chars=self.max_stored_chars, notes=notes), notes

    def note_truncated(self, unit_key: str, unit_kind: str, name: str, notes: Sequence[str]) -> None:
        """Record each text of a unit that was cut (`outputs.cap_text`), before the unit is stored.

        Recorded first: a crash between the two leaves a note about a unit not stored (harmless),
        never a cut text without its note. Kind ``truncated``: a note, not a failure.
        """
        for note in notes:
            self.store.save_error(run_id=self.run_id, unit_key=unit_key, unit_kind=unit_kind, name=name, attempt=1,
                                  kind=outputs.TRUNCATED, transient=False, final=False, message=note)

    async def run(self, plan: Plan) -> EngineStats:
        try:
            await self.run_generations(plan)
            await self.run_judgments(plan)
        finally:
            if self.leases is not None:
                self.leases.close()
                self.leases = None
            if self.global_slots is not None:
                await self.global_slots.aclose()
        return self.stats


async def _guarded(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Await a plugin call, turning its `sys.exit()`, or any other `BaseException` it raises, into a failed call.

    asyncio lets SystemExit and KeyboardInterrupt out of a task straight through the event
    loop, ending the whole run with a traceback; caught here, inside the coroutine, each is
    one failed unit like any bug (`GeneratorExit` and custom `BaseException`s too). Two are
    not the plugin's: a cancellation (the timeout, or the run stopping) and the interruption
    of a real stop signal (`signals.is_real`), which still stops the run.
    """
    try:
        return await fn()
    except SystemExit as exc:
        raise CallError(f"SystemExit: the plugin called sys.exit({exc.code!r})", kind=ErrorKind.PLUGIN_ERROR) from None
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as exc:
        if signals.is_real(exc):
            raise
        raise CallError(f"{type(exc).__name__}: the plugin raised it{f' ({exc})' if str(exc) else ''}",
                        kind=ErrorKind.PLUGIN_ERROR) from None

