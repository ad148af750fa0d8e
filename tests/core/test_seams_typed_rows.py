"""The typed seams between modules: stored rows, the engine's call outcome, the closed set of error kinds.

Each check fails if the rule it guards drifts: a column added to the schema but not to
`JudgmentRow`, a plugin raising a kind the table does not list, `_call` answering a bare
tuple again, or the documented table disagreeing with `ErrorKind`.
"""

from __future__ import annotations

import ast
import asyncio
import random
import re
from pathlib import Path
from typing import Any

import pytest

from brie_bench.api import Limits
from brie_bench.engine import Engine, EngineStats
from brie_bench.errors import CallError, ErrorKind, PermanentError, TransientError
from brie_bench.limits import RateLimiter, RetryPolicy
from brie_bench.call_result import Done, Failed, Skipped
from brie_bench.rows import GENERATION_COLUMNS, JUDGMENT_COLUMNS, GenerationRow, JudgmentRow
from brie_bench.store import EXPECTED_COLUMNS, Store

ROOT = Path(__file__).resolve().parents[2]


def test_rows_name_exactly_the_columns_of_their_tables() -> None:
    assert set(JUDGMENT_COLUMNS) == EXPECTED_COLUMNS["judgments"]
    assert set(GENERATION_COLUMNS) == EXPECTED_COLUMNS["generations"]


def test_a_row_from_a_mapping_refuses_an_unknown_column_by_name() -> None:
    with pytest.raises(ValueError, match="'verdikt'"):
        JudgmentRow.from_mapping({"run_id": "r", "verdikt": "A"})
    with pytest.raises(ValueError, match="'txt'"):
        GenerationRow.from_mapping({"key": "k", "txt": "t"})


def _judgment(run_id: str, **over: Any) -> JudgmentRow:
    base: dict[str, Any] = dict(run_id=run_id, unit_key="u1", section="s", prompt_id="p1", sample_index=0,
                                judge="j", judge_type="llm", baseline="base", candidate="ft", presentation_order=1,
                                label_a="ft", label_b="base", gen_key_a="ga", gen_key_b="gb", verdict="A",
                                winner="ft", raw="Winner: A", p_a=0.75, scores={"A": {"depth": 4}, "B": {"depth": 2}},
                                reasoning="why", input_tokens=7, output_tokens=3, latency_s=0.5)
    base.update(over)
    return JudgmentRow(**base)


def test_a_judgment_row_round_trips_through_the_store(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        run_id = store.create_run(suite_name="s", suite_path="s.yaml", fingerprint="f", snapshot={}, seed=0,
                                  versions={})
        row = _judgment(run_id)
        assert store.save_judgment(row) is True
        assert store.save_judgment(row) is False
        (stored,) = store.judgments(run_id)
        assert isinstance(stored, JudgmentRow)
        back = stored.columns()
        assert back["created_at"] > 0
        del back["created_at"]
        expected = row.columns()
        del expected["created_at"]
        assert back == expected
        gen = GenerationRow(key="k1", backend="b", model="m", spec={"x": 1},
                            messages=[{"role": "user", "content": "q"}], params={"temperature": 0.5},
                            sample_index=2, text="answer", finish_reason="stop", input_tokens=1, output_tokens=2,
                            latency_s=0.25)
        assert store.save_generation(gen) is True
        assert store.generation_texts(["k1"]) == {"k1": "answer"}
        stored = store.conn.execute("SELECT spec, params, sample_index, latency_s FROM generations").fetchone()
        assert tuple(stored) == ('{"x": 1}', '{"temperature": 0.5}', 2, 0.25)


def test_an_unknown_error_kind_is_mapped_to_error_and_named() -> None:
    known = TransientError("slow", kind="timeout")
    assert known.kind is ErrorKind.TIMEOUT and known.kind == "timeout" and str(known) == "slow"
    odd = PermanentError("boom", kind="kaboom")
    assert odd.kind is ErrorKind.ERROR
    assert "unknown error kind 'kaboom'" in str(odd)
    assert CallError("plain").kind is ErrorKind.ERROR


def _kinds_in_source() -> set[str]:
    """Every literal error kind the core and the built-in plugins raise or map a status to."""
    found: set[str] = set()
    files = [*ROOT.joinpath("brie_bench").rglob("*.py"), *ROOT.joinpath("plugins").glob("*.py")]
    for path in files:
        if "testing" in path.parts and "loopback" in path.parts:
            continue  # the loopback server's fault names are wire faults, not error kinds
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            sorting = isinstance(func, ast.Attribute) and func.attr in ("argsort", "sort")  # numpy's kind="stable"
            warning = isinstance(func, ast.Name) and func.id == "ReportWarning"  # a report warning's kind, not an error's
            if isinstance(node, ast.Call) and not sorting and not warning:
                for kw in node.keywords:
                    if kw.arg == "kind" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        found.add(kw.value.value)
            # (kind, transient) pairs of the HTTP status table and the providers' overrides
            if (isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant)
                    and isinstance(node.elts[0].value, str) and isinstance(node.elts[1], ast.Constant)
                    and isinstance(node.elts[1].value, bool)):
                found.add(node.elts[0].value)
    return found


def test_every_kind_in_the_source_is_an_error_kind() -> None:
    kinds = _kinds_in_source()
    assert {"timeout", "refusal", "malformed", "rate_limit", "auth", "quota", "oom"} <= kinds  # the scan sees them
    assert sorted(k for k in kinds if ErrorKind.parse(k) is None) == []


def test_the_documented_table_lists_exactly_the_error_kinds() -> None:
    text = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    section = text.split("### Error kinds", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert sorted(documented) == sorted(k.value for k in ErrorKind)
    assert len(documented) == len(set(documented))


def _engine(tmp_path: Path) -> tuple[Engine, Store]:
    store = Store(tmp_path / "db.sqlite")
    run_id = store.create_run(suite_name="s", suite_path="s.yaml", fingerprint="f", snapshot={}, seed=0, versions={})
    engine = Engine.__new__(Engine)  # only what `_call` uses
    engine.store, engine.run_id = store, run_id
    engine.limiters = {"x": RateLimiter(Limits(max_attempts=2))}
    engine.stats = EngineStats()
    engine.retry = RetryPolicy(base_s=0.0, cap_s=0.0)
    engine.rng = random.Random(0)
    return engine, store


def test_call_answers_done_failed_or_skipped(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path)

    async def answer() -> str:
        return "ok"

    async def refuse() -> str:
        raise PermanentError("no", kind="auth")

    async def main() -> tuple[Any, Any, Any]:
        done = await engine._call("x", "generation", ["k"], 0, answer, check=str.upper)
        failed = await engine._call("x", "generation", ["k"], 0, refuse)
        skipped = await engine._call("x", "generation", ["k"], 0, answer, claim=lambda: "held")
        return done, failed, skipped

    with store:
        done, failed, skipped = asyncio.run(main())
        assert isinstance(done, Done) and done.result == "OK" and done.latency >= 0.0
        assert failed == Failed(ErrorKind.AUTH)
        assert skipped == Skipped("held")
        assert [e["kind"] for e in store.errors(engine.run_id)] == ["auth"]
