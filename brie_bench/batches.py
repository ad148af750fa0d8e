"""Judging through a provider's batch API (`batch: true` on a judge): submit once, store the id, poll.

Split from `brie_bench.engine` because it is a phase of its own with one rule
the direct path does not have: the batch id is stored (`Store.save_batch`)
the moment the provider answers the submission, *before* any poll. A run that
crashes while the provider works polls the stored batches when it is rerun,
instead of submitting (and paying for) the same requests again.

The backend's side of it is the `brie_bench.api.BatchBackend` protocol; the
engine's side is `brie_bench.judging_port.JudgingPort`: its retry loop, leases and
the ways it stores a verdict or a failure, so a batch verdict is stored exactly like
a direct one. This module uses nothing else of the engine, and does not import it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from brie_bench import outputs
from brie_bench.api import BatchBackend
from brie_bench.batch_poll import BatchPoll
from brie_bench.errors import CallError, ErrorKind
from brie_bench.judging_port import JudgingPort
from brie_bench.call_result import Done, Failed
from brie_bench.plan import JudgmentUnit


async def judge_in_batches_leased(engine: JudgingPort, judge_name: str, units: list[JudgmentUnit],
                                  texts: dict[str, str]) -> None:
    """A batch judge's units are handled by one process at a time: the one holding its lease.

    The peers wait; whatever the holder leaves unstored (it died, or failed) the next
    holder takes on.
    """
    lease_keys = [f"b:{engine.run_id}:{judge_name}"]

    def left() -> list[JudgmentUnit]:
        stored = engine.store.stored_judgment_keys(engine.run_id)
        return [u for u in units if u.key not in stored]

    while True:
        todo = left()
        if not todo:
            return
        status = engine.claim(lease_keys)
        if status == "claimed":
            try:
                await judge_in_batches(engine, judge_name, todo, texts)
            finally:
                engine.release(lease_keys)
            return
        await engine.wait(lease_keys, lambda: not left())


async def judge_in_batches(engine: JudgingPort, judge_name: str, units: list[JudgmentUnit],
                           texts: dict[str, str]) -> None:
    """Judge through the provider's batch API: submit once, record the batch id at once, poll.

    A rerun after a crash polls the batches already recorded instead of submitting again.
    Pairs the judge cannot put in a batch (`batch_request` answers None) are judged directly.
    """
    judge = engine.runtime.judges[judge_name]
    backend = judge.backend
    if not isinstance(backend, BatchBackend):  # runtime.py refuses such suites; never reached from a suite
        raise TypeError(f"judge {judge_name!r}: its backend has no batch API (submit_batch, poll_batch)")
    by_key = {u.key: u for u in units}
    pairs = {u.key: engine.pair(u, texts) for u in units}
    open_batches = engine.store.open_batches(engine.run_id, judge_name)
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
    await engine.judge_directly(direct, texts)
    if items:
        called = await engine.call(judge_name, "batch_submit", [k for k, _ in items],
                                    lambda: backend.submit_batch(items), check=outputs.batch_id)
        if isinstance(called, Failed):
            for key, _ in items:
                engine.count_failed(by_key[key])
        elif isinstance(called, Done):
            batch_id = called.result
            # Stored before the first poll: from here on a crash resumes by polling, never resubmitting.
            engine.store.save_batch(engine.run_id, judge_name, batch_id, [k for k, _ in items])
            open_batches.append((batch_id, [k for k, _ in items]))
    done: set[str] = set()
    poll_s = engine.runtime.batch[judge_name]
    while open_batches:
        for batch_id, keys in list(open_batches):
            called = await engine.call(judge_name, "batch_poll", [batch_id],
                                        lambda b=batch_id: backend.poll_batch(b), check=check_poll)
            if not isinstance(called, Done):  # polling failed for good this time: leave the batch open for a rerun
                open_batches.remove((batch_id, keys))
                for key in keys:
                    if key in by_key and key not in done:
                        engine.count_failed(by_key[key])
                continue
            poll = called.result
            for custom_id, result in poll.results.items():
                unit = by_key.get(custom_id)
                if unit is None or custom_id in done:
                    continue
                done.add(custom_id)
                if isinstance(result, CallError):
                    engine.fail(unit, result.kind, str(result), transient=result.transient)
                else:
                    try:
                        answer, notes = engine.check_answer(result)  # capped like every stored text
                        verdict = judge.batch_result(pairs[custom_id], answer)
                    except outputs.MalformedOutput as exc:
                        engine.fail(unit, exc.kind, str(exc))
                        continue
                    except Exception as exc:  # noqa: BLE001 - never a verdict from a failure
                        engine.fail(unit, ErrorKind.PLUGIN_ERROR, f"{type(exc).__name__}: {exc}")
                        continue
                    engine.save(unit, verdict, notes=[f"the batch answer: {n}" for n in notes])
            if poll.done:
                engine.store.finish_batch(engine.run_id, batch_id, poll.status or "done")
                open_batches.remove((batch_id, keys))
                for key in keys:
                    if key in by_key and key not in done:
                        done.add(key)
                        engine.fail(by_key[key], ErrorKind.BATCH_MISSING,
                                    f"batch {batch_id} ended without it", transient=True)
        if open_batches:
            await asyncio.sleep(poll_s)


def check_poll(poll: Any) -> BatchPoll:
    """`poll_batch`'s answer, refused (kind ``malformed``) unless it is a `BatchPoll` with a results dict."""
    if not isinstance(poll, BatchPoll) or not isinstance(poll.results, dict):
        raise outputs.MalformedOutput(f"poll_batch returned {type(poll).__name__}, not BatchPoll")
    return poll
