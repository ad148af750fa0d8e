"""Malformed plugin output: one unit fails with kind `malformed`, the run goes on.

A backend and a judge (tests/reliability_plugins/hostile_output.py, loaded with
--plugins-dir) return, for prompts marked "[bad]", each kind of value that cannot be
stored: lone surrogates, None text or raw, non-string fields, dicts, huge or negative
usage, non-result objects, and a raised `asyncio.CancelledError`. For each: no
traceback, exit code 1 (the rest of the run is stored), the failure is recorded, every
printed count equals what the store holds, and a rerun behaves the same way.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from brie_bench import outputs
from brie_bench.cli import cli
from brie_bench.records import GenerationResult, JudgeResult, Usage
from brie_bench.rows import GenerationRow, JudgmentRow
from brie_bench.store import Store
from hostile.kit import query, summary

PLUGINS = Path(__file__).parents[1] / "reliability_plugins"
PROMPTS = ["Good question one?", "Good question two?", "A [bad] question?"]

GENERATION_MODES = {  # mode -> the kind recorded and a fragment of its message
    "surrogate_text": ("malformed", "UTF-8 cannot store"),
    "none_text": ("malformed", "text is NoneType, not a string"),
    "int_text": ("malformed", "text is int, not a string"),
    "dict_text": ("malformed", "text is dict, not a string"),
    "dict_finish_reason": ("malformed", "finish_reason is dict"),
    "huge_usage": ("malformed", "input_tokens is 1000000000000000000000000000000, outside"),
    "negative_usage": ("malformed", "input_tokens is -5, outside"),
    "str_usage": ("malformed", "not a whole number"),
    "not_a_result": ("malformed", "str, not GenerationResult"),
    "cancelled": ("plugin_error", "CancelledError"),
    "sys_exit": ("plugin_error", "SystemExit"),
}
JUDGE_MODES = {
    "surrogate_raw": ("malformed", "raw holds a character UTF-8 cannot store"),
    "none_raw": ("malformed", "raw is NoneType, not a string"),
    "bytes_raw": ("malformed", "raw is bytes, not a string"),
    "dict_reasoning": ("malformed", "reasoning is dict, not a string"),
    "surrogate_reasoning": ("malformed", "reasoning holds a character"),
    "list_invalid_reason": ("malformed", "invalid_reason is list"),
    "text_scores": ("malformed", "is 'high', not a finite number"),
    "unknown_label_scores": ("malformed", "has label 'C'"),
    "string_scores": ("malformed", "scores is str"),
    "huge_usage": ("malformed", "output_tokens is 1000000000000000000000000000000, outside"),
    "negative_usage": ("malformed", "output_tokens is -1, outside"),
    "not_a_result": ("malformed", "dict, not JudgeResult"),
    "cancelled": ("plugin_error", "CancelledError"),
}


def suite(tmp: Path, *, backend_mode: str = "ok", judge_mode: str = "ok") -> Path:
    data = {
        "name": "malformed", "seed": 3, "baseline": "baseline",
        "contenders": {"baseline": {"backend": "malformed", "model": "base", "options": {"mode": backend_mode}},
                       "brie": {"backend": "malformed", "model": "brie", "options": {"mode": backend_mode}}},
        "judges": {"j": {"type": "malformed", "options": {"mode": judge_mode},
                         "limits": {"max_attempts": 2, "max_concurrency": 2}}},
        "sections": [{"name": "s", "prompts": PROMPTS}],
    }
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run(tmp: Path, path: Path) -> Any:
    return CliRunner().invoke(cli, ["--db", str(tmp / "db.sqlite"), "--plugins-dir", str(PLUGINS), "run", str(path)],
                              env={"COLUMNS": "200", "BRIE_BENCH_RETRY_BASE_S": "0.01"})


def check_counts_match_store(tmp: Path, output: str) -> dict[str, int]:
    counts = summary(output)
    db = tmp / "db.sqlite"
    (run_id,) = [r["id"] for r in query(db, "SELECT id FROM runs")]
    gens = query(db, "SELECT COUNT(DISTINCT gen_key) AS n FROM run_generations rg JOIN generations g "
                     "ON g.key = rg.gen_key WHERE rg.run_id=?", run_id)[0]["n"]
    judgments = query(db, "SELECT COUNT(*) AS n FROM judgments WHERE run_id=?", run_id)[0]["n"]
    assert counts["gen_new"] + counts["gen_cached"] == gens, (counts, gens)
    assert counts["gen_new"] + counts["gen_cached"] + counts["gen_failed"] == 2 * len(PROMPTS)
    assert counts["judg_new"] + counts["judg_stored"] == judgments, (counts, judgments)
    assert counts["judg_new"] + counts["judg_stored"] + counts["judg_failed"] + counts["judg_waiting"] == len(PROMPTS)
    return counts


def check_clean_failure(result: Any) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_a_malformed_generation_fails_only_its_unit(tmp_path: Path, mode: str) -> None:
    kind, fragment = GENERATION_MODES[mode]
    path = suite(tmp_path, backend_mode=mode)
    first = run(tmp_path, path)
    check_clean_failure(first)
    counts = check_counts_match_store(tmp_path, first.stdout)
    assert (counts["gen_new"], counts["gen_failed"]) == (4, 2)
    assert (counts["judg_new"], counts["judg_waiting"]) == (2, 1)
    db = tmp_path / "db.sqlite"
    assert query(db, "SELECT status FROM runs")[0]["status"] == "incomplete"
    errors = query(db, "SELECT kind, message FROM errors WHERE final=1")
    assert len(errors) == 2 and {e["kind"] for e in errors} == {kind}, errors
    assert all(fragment in e["message"] for e in errors), errors
    # The rerun tries just the failed units again and ends the same way: never a crash loop.
    again = run(tmp_path, path)
    check_clean_failure(again)
    counts = check_counts_match_store(tmp_path, again.stdout)
    assert (counts["gen_new"], counts["gen_cached"], counts["gen_failed"], counts["calls"]) == (0, 4, 2, 2)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", sorted(JUDGE_MODES))
def test_a_malformed_verdict_fails_only_its_unit(tmp_path: Path, mode: str) -> None:
    kind, fragment = JUDGE_MODES[mode]
    path = suite(tmp_path, judge_mode=mode)
    first = run(tmp_path, path)
    check_clean_failure(first)
    counts = check_counts_match_store(tmp_path, first.stdout)
    assert (counts["gen_new"], counts["judg_new"], counts["judg_failed"]) == (6, 2, 1)
    db = tmp_path / "db.sqlite"
    errors = query(db, "SELECT kind, message FROM errors WHERE final=1")
    assert len(errors) == 1 and errors[0]["kind"] == kind and fragment in errors[0]["message"], errors
    again = run(tmp_path, path)
    check_clean_failure(again)
    counts = check_counts_match_store(tmp_path, again.stdout)
    assert (counts["judg_new"], counts["judg_stored"], counts["judg_failed"]) == (0, 2, 1)


def test_the_store_refuses_a_row_it_cannot_hold_instead_of_skipping_it(tmp_path: Path) -> None:
    # INSERT OR IGNORE used to drop a NOT NULL violation silently ("2 new judgments", 0 stored).
    with Store(tmp_path / "db.sqlite") as store:
        run_id = store.create_run(suite_name="s", suite_path="s.yaml", fingerprint="f", snapshot={}, seed=0,
                                  versions={})
        row = {"run_id": run_id, "unit_key": "u", "section": "s", "prompt_id": "p", "sample_index": 0, "judge": "j",
               "judge_type": "t", "baseline": "a", "candidate": "b", "presentation_order": 0, "label_a": "a",
               "label_b": "b", "gen_key_a": "ga", "gen_key_b": "gb", "verdict": "A", "winner": "a", "raw": None}
        with pytest.raises(sqlite3.IntegrityError):
            store.save_judgment(JudgmentRow.from_mapping(row))
        assert store.save_judgment(JudgmentRow.from_mapping({**row, "raw": "Winner: A"})) is True
        assert store.save_judgment(JudgmentRow.from_mapping({**row, "raw": "Winner: A"})) is False  # not new
        assert store.count_judgments(run_id) == 1
        common = dict(key="k", backend="b", model="m", spec={}, messages=[], params={}, sample_index=0,
                      finish_reason=None, input_tokens=0, output_tokens=0, latency_s=0.0)
        with pytest.raises(sqlite3.IntegrityError):
            store.save_generation(GenerationRow.from_mapping({"text": None, **common}))
        assert store.save_generation(GenerationRow.from_mapping({"text": "t", **common})) is True
        assert store.save_generation(GenerationRow.from_mapping({"text": "t", **common})) is False


def test_outputs_normalises_near_types_and_refuses_the_rest() -> None:
    import numpy as np

    result = outputs.generation(GenerationResult(text="ok", usage=Usage(np.int64(3), 4.0)))  # type: ignore[arg-type]
    assert type(result.usage.input_tokens) is int and result.usage.output_tokens == 4
    verdict = outputs.judgment(JudgeResult("A", raw="x", p_a=np.float64(0.25), scores={"A": {"d": np.int32(3)}}))
    assert type(verdict.p_a) is float and verdict.scores == {"A": {"d": 3}}
    assert outputs.generation(GenerationResult(text="nul\x00 and ünïcode")).text == "nul\x00 and ünïcode"
    for bad in (GenerationResult(text="x", usage=Usage(True, 0)), GenerationResult(text="x", usage=Usage(2.5, 0)),
                GenerationResult(text="x", structured={1: "a"}), GenerationResult(text="x", model=3)):  # type: ignore
        with pytest.raises(outputs.MalformedOutput):
            outputs.generation(bad)
    with pytest.raises(outputs.MalformedOutput):
        outputs.judgment(JudgeResult("A", raw="x", scores={"A": {"d": float("nan")}}))
    with pytest.raises(outputs.MalformedOutput):
        outputs.batch_id(None)


def test_a_cancelled_run_is_still_cancelled() -> None:
    # A plugin's own CancelledError fails its unit; cancelling the run itself (Ctrl-C) still cancels it.
    from brie_bench.api import Limits
    from brie_bench.engine import Engine, EngineStats
    from brie_bench.limits import RateLimiter, RetryPolicy

    async def main() -> None:
        started = asyncio.Event()

        async def slow() -> None:
            started.set()
            await asyncio.sleep(60)

        engine = Engine.__new__(Engine)  # only what `_call` uses
        engine.limiters = {"x": RateLimiter(Limits())}
        engine.stats = EngineStats()
        engine.retry = RetryPolicy()
        task = asyncio.create_task(engine._call("x", "generation", [], 0, slow))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
