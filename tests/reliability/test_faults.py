"""Provider faults under load: 20% of model calls fail at random and the run still ends right.

The loopback provider is given an explicit, seeded fault script (one entry per model
call, in arrival order: 20% of them 429 / 500 / timeout / connection reset / truncated
JSON / 400, the rest answered normally), so the test knows exactly which faults were
injected. Everything goes through the real engine, the real `openai` backend and the
official SDK over HTTP.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from hostile.kit import loopback_suite, model_calls, query, loopback, summary, write_suite

#: Loopback fault -> the error kind the openai backend must record for it.
TRANSIENT = {"rate_limit:0": "rate_limit", "server": "server", "slow:4": "timeout", "reset": "connection",
             "truncated": "malformed"}
PERMANENT = {"bad_request": "bad_request"}
FAULT_RATE = 0.2


def fault_script(n: int, seed: int) -> list[str]:
    """`n` entries: a fault with probability FAULT_RATE (kinds drawn uniformly), else a normal answer.

    "slow:0" is a fault that sleeps 0 s and then answers normally: a no-op placeholder, so the
    script can say "this call succeeds".
    """
    rng = random.Random(seed)
    kinds = list(TRANSIENT) + list(PERMANENT)
    return [rng.choice(kinds) if rng.random() < FAULT_RATE else "slow:0" for _ in range(n)]


def run(path: Path, db: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = execute_run(load_suite(path), load_plugins(None), db=str(db),
                       console=Console(file=out, width=400, color_system=None))
    return code, out.getvalue()


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIE_BENCH_RETRY_BASE_S", "0.01")
    monkeypatch.setenv("BRIE_BENCH_RETRY_CAP_S", "0.05")


def test_random_faults_are_retried_recorded_and_counted_exactly(tmp_path: Path) -> None:
    script = fault_script(200, seed=20251018)
    injected = Counter(s for s in script if s != "slow:0")
    # The script must exercise every fault kind, or the test proves less than it says.
    assert set(injected) == set(TRANSIENT) | set(PERMANENT)
    assert 0.15 < sum(injected.values()) / len(script) < 0.25
    with loopback(faults=script, max_lifetime_s=120) as srv:
        data = loopback_suite(srv, prompts=36, sections=2, both=True, limits={"max_concurrency": 6})
        for c in data["contenders"].values():
            c["options"]["timeout_s"] = 1.5  # the "slow" fault outlasts this: a client-side timeout
        data["judges"]["judge"]["backend_options"]["timeout_s"] = 1.5
        path = write_suite(tmp_path / "suite.yaml", data)
        db = tmp_path / "faults.db"
        code, out = run(path, db)
        requests = len(model_calls(srv))
        assert requests >= len(script), "the run made fewer calls than the fault script: faults left unused"

        counts = summary(out)
        errors = query(db, "SELECT * FROM errors ORDER BY id")
        generations = query(db, "SELECT key FROM generations")
        judgments = query(db, "SELECT * FROM judgments")

        # Every injected fault is in the error log once, with the kind the backend must give it.
        expected = Counter({TRANSIENT.get(k) or PERMANENT[k]: n for k, n in injected.items()})
        assert Counter(e["kind"] for e in errors) == expected
        # Transient faults are retried (never final here: no unit saw six in a row); permanent ones are not.
        for e in errors:
            assert bool(e["transient"]) == (e["kind"] != "bad_request"), e
            assert bool(e["final"]) == (not e["transient"]), e
        failed_keys = {e["unit_key"] for e in errors if e["final"]}
        for e in errors:
            later = [x for x in errors if x["unit_key"] == e["unit_key"] and x["attempt"] > e["attempt"]]
            if e["final"]:
                assert not later, f"a permanent failure was retried: {e}"
        stored = {g["key"] for g in generations} | {j["unit_key"] for j in judgments}
        for key in {e["unit_key"] for e in errors if not e["final"]}:
            assert key in stored or key in failed_keys, f"unit {key} was never retried to the end"
        # The summary's counts are the store's counts.
        assert counts["gen_new"] == len(generations)
        assert counts["judg_new"] == len(judgments)
        assert counts["gen_failed"] == sum(1 for e in errors if e["final"] and e["unit_kind"] == "generation")
        assert counts["judg_failed"] == sum(1 for e in errors if e["final"] and e["unit_kind"] == "judgment")
        assert counts["retries"] == sum(1 for e in errors if not e["final"])
        # One HTTP request per attempt (SDK retries are off): successes plus logged failures.
        assert counts["calls"] == requests == len(generations) + len(judgments) + len(errors)
        # A failure is never a verdict; a permanent failure leaves the run incomplete (exit 1).
        assert all(j["verdict"] in ("A", "B", "tie") for j in judgments)
        assert code == 1 and injected["bad_request"] > 0
        assert query(db, "SELECT status FROM runs")[0]["status"] == "incomplete"
        waiting = counts["judg_waiting"]
        planned = 36 * 2 + 36  # section 0 in both orders, section 1 once
        assert len(judgments) + counts["judg_failed"] + waiting == planned

        # The faults are over: a rerun does exactly the units that failed, and nothing twice.
        code2, out2 = run(path, db)
        again = summary(out2)
        assert code2 == 0, out2
        assert again["gen_new"] == counts["gen_failed"] and again["gen_cached"] == len(generations)
        assert again["judg_stored"] == len(judgments)
        assert again["judg_new"] == counts["judg_failed"] + waiting
        assert again["retries"] == 0 and again["calls"] == again["gen_new"] + again["judg_new"]
        assert len(query(db, "SELECT * FROM judgments")) == planned
        assert query(db, "SELECT status FROM runs")[0]["status"] == "complete"


def test_a_fault_storm_beyond_max_attempts_fails_the_unit_and_is_never_a_verdict(tmp_path: Path) -> None:
    # Six 500s in a row for the only judging call: max_attempts (6) is spent, the unit fails.
    with loopback(max_lifetime_s=60) as srv:
        data = loopback_suite(srv, prompts=1)
        path = write_suite(tmp_path / "suite.yaml", data)
        db = tmp_path / "storm.db"
        srv.add_faults(*(["slow:0"] * 2 + ["server"] * 6))  # the two generations succeed, then the storm
        code, out = run(path, db)
        counts = summary(out)
        assert code == 1
        errors = query(db, "SELECT * FROM errors ORDER BY attempt")
        assert [e["attempt"] for e in errors] == [1, 2, 3, 4, 5, 6]
        assert [e["final"] for e in errors] == [0, 0, 0, 0, 0, 1]
        assert all(e["transient"] and e["unit_kind"] == "judgment" for e in errors)
        assert query(db, "SELECT * FROM judgments") == []
        assert counts["judg_failed"] == 1 and counts["retries"] == 5 and counts["calls"] == 2 + 6
        assert "judge: server" in " ".join(out.split())
