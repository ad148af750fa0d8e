"""Claims racing on one database: each unit worked once, and no key ever held by two owners at once.

A claim of keys nobody has leased yet takes them in one statement and checks for stored work
afterwards (`PostgresStore._claim_new`); where that race is lost it falls back to the locking
claim. Here several threads, each with its own store connection and owner, claim the same
units at the same moment, on both stores: every unit must be called exactly once (the
verdict and its lease release commit together), and overlapping claims must never hand one
key to two owners nor leave a loser holding part of what it asked for.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections import Counter

from brie_bench.rows import JudgmentRow
from brie_bench.store_api import Store, open_store

THREADS = 4


def _verdict(run_id: str, key: str) -> JudgmentRow:
    return JudgmentRow(run_id=run_id, unit_key=key, section="s", prompt_id=key, sample_index=0, judge="j",
                       judge_type="llm", baseline="a", candidate="b", presentation_order=0, label_a="a", label_b="b",
                       gen_key_a="ga", gen_key_b="gb", verdict="A", winner="a", raw="Winner: A")


def _in_threads(target: str, work: object) -> None:
    """Run `work(store, owner, index)` in THREADS threads at once, each with its own store; re-raise the first error."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def body(i: int) -> None:
        try:
            with open_store(target) as store:
                start.wait(timeout=30)
                work(store, f"owner-{i}", i)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]


def test_racing_claimers_call_each_unit_exactly_once(store_target: str) -> None:
    with open_store(store_target) as store:
        run_id = store.create_run(suite_name="s", suite_path="s.yaml", fingerprint="fp", snapshot={}, seed=1,
                                  versions={}, metadata={})
    units = [f"u{i}" for i in range(60)]
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def work(store: Store, owner: str, i: int) -> None:
        since = store.clock() - 1
        order = units[:]
        random.Random(i % 2).shuffle(order)  # two pairs of threads race on the same unit at the same moment
        for unit in order:
            lease = f"j:{run_id}:{unit}"
            status = store.claim(owner, [lease], ttl_s=60, since=since,
                                 stored=functools.partial(store.judgment_stored, run_id, unit))
            if status == "claimed":
                with lock:
                    calls[unit] += 1
                store.save_judgment(_verdict(run_id, unit), release=(owner, [lease]))

    for _round in range(2):  # the second round finds everything stored: nothing is called again
        _in_threads(store_target, work)
    assert set(calls) == set(units) and set(calls.values()) == {1}, calls
    with open_store(store_target) as store:
        assert store.count_judgments(run_id) == len(units)
        assert store.lease_state("someone", [f"j:{run_id}:{u}" for u in units], since=0) == "free"


def test_overlapping_claims_never_share_a_key(store_target: str) -> None:
    keys = [f"g:{i}" for i in range(8)]
    holders: dict[str, str] = {}
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def work(store: Store, owner: str, i: int) -> None:
        rng = random.Random(i)
        since = store.clock() - 1
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            want = sorted(rng.sample(keys, rng.choice((1, 2, 3))))
            if store.claim(owner, want, ttl_s=60, since=since) != "claimed":
                continue
            with lock:
                shared = {k: holders[k] for k in want if k in holders}
                assert not shared, f"{owner} got {want}, held by {shared}"
                holders.update(dict.fromkeys(want, owner))
                claimed[owner] += 1
            time.sleep(0.001)
            with lock:
                for k in want:
                    del holders[k]
            store.release(owner, want)

    _in_threads(store_target, work)
    assert sum(claimed.values()) > 20, claimed  # the claims really raced, and mostly succeeded
    with open_store(store_target) as store:
        # Nobody holds anything now: a claim that lost part of its keys gave back the rest.
        assert store.claim("late", keys, ttl_s=60, since=0) == "claimed"
