"""The `human` judge: a person judges blind at the terminal; here the person is a list of key presses."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from collections.abc import Iterator

import pytest
from rich.console import Console

from brie_bench.api import BlindedPair, JudgeContext, StopRun
from brie_bench.errors import InputError
from brie_bench.plugins import human_judge
from brie_bench.plugins.human_judge import HumanJudge, HumanJudgeOptions, paginate, terminal_safe
from brie_bench.store import Store
from helpers import FIXTURE_PLUGINS, rows, run_suite, scripted_suite, write_yaml

REPO = Path(__file__).parents[2]


@pytest.fixture
def screen() -> Iterator[io.StringIO]:
    """What the person sees; the key source is reset after each test."""
    out = io.StringIO()
    human_judge.set_console(Console(file=out, width=100, height=30))
    yield out
    human_judge.set_key_source(None)
    human_judge.set_console(None)


def human_suite(**options: object) -> dict:
    """Three prompts judged in both orders: six comparisons for one person."""
    return scripted_suite(
        judges={"alice": {"type": "human", "options": {"judge_name": "alice", **options}}},
        sections=[{"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(3)],
                   "orders": "both"}])


def judgments(db: Path) -> list:
    return rows(db, "SELECT unit_key, verdict, invalid_reason, raw, scores, judge FROM judgments ORDER BY rowid")


def make_judge(**options: object) -> HumanJudge:
    return HumanJudge(HumanJudgeOptions(**options), None, JudgeContext("person"))


def test_six_comparisons_from_key_presses(tmp_path: Path, screen: io.StringIO) -> None:
    human_judge.set_key_source(["a", "b", "t", "s", "a", "b"])
    db = tmp_path / "h.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", human_suite()), db) == 0
    got = judgments(db)
    assert sorted(r["verdict"] for r in got) == ["A", "A", "B", "B", "invalid", "tie"]
    assert [r["invalid_reason"] for r in got if r["verdict"] == "invalid"] == ["skipped"]
    assert all(r["raw"].startswith("alice: ") for r in got)
    shown = screen.getvalue()
    assert "Comparison 6 for alice (5 judged in this session)" in shown
    assert "Answer A" in shown and "Answer B" in shown and "What is being number 2?" in shown
    # Blind: the screen never names a contender or its backend options.
    for secret in ("baseline", "brie", "scripted", "marker"):
        assert secret not in shown


def test_quit_stops_cleanly_and_a_rerun_continues(tmp_path: Path, screen: io.StringIO) -> None:
    path, db = write_yaml(tmp_path / "s.yaml", human_suite()), tmp_path / "h.db"
    human_judge.set_key_source(["a", "b", "q"])
    with pytest.raises(StopRun):
        run_suite(path, db)
    first = judgments(db)
    assert [r["verdict"] for r in first] == ["A", "B"]  # the comparison in hand is not recorded
    assert rows(db, "SELECT status FROM runs")[0]["status"] == "interrupted"
    assert "rerun the same command to continue" in screen.getvalue()

    # The rerun asks only the four comparisons left; a fifth key request would end the keys and stop it.
    human_judge.set_key_source(["t", "a", "b", "s"])
    assert run_suite(path, db) == 0
    after = judgments(db)
    assert len(after) == 6 and len({r["unit_key"] for r in after}) == 6
    assert [(r["unit_key"], r["verdict"]) for r in after[:2]] == [(r["unit_key"], r["verdict"]) for r in first]
    assert len(rows(db, "SELECT id FROM runs")) == 1 and rows(db, "SELECT status FROM runs")[0]["status"] == "complete"


def test_keys_running_out_is_a_quit(tmp_path: Path, screen: io.StringIO) -> None:
    human_judge.set_key_source(["a"])
    with pytest.raises(StopRun):
        run_suite(write_yaml(tmp_path / "s.yaml", human_suite()), tmp_path / "h.db")
    assert [r["verdict"] for r in judgments(tmp_path / "h.db")] == ["A"]


def test_scores_per_criterion(tmp_path: Path, screen: io.StringIO) -> None:
    judge = make_judge(judge_name="bo", scores=True)
    pair = BlindedPair("Q?", "first", "second", criteria=("clarity", "depth"))
    # verdict, then clarity A, clarity B, depth A (a typo, then 5), depth B left out
    human_judge.set_key_source(["b", "2", "4", "9", "5", ""])
    result = asyncio.run(judge.judge(pair))
    assert result.label == "B"
    assert result.scores == {"A": {"clarity": 2, "depth": 5}, "B": {"clarity": 4}}
    assert result.raw == "bo: b scores 2 4 5 -"
    assert "a score is 1 to 5, not '9'" in screen.getvalue()


def test_scores_reach_the_store(tmp_path: Path, screen: io.StringIO) -> None:
    suite = human_suite(scores=True)
    suite["defaults"] = {"criteria": ["depth"]}
    human_judge.set_key_source(["a", "5", "1"] + ["t", "", ""] * 5)
    db = tmp_path / "h.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", suite), db) == 0
    stored = [json.loads(r["scores"]) for r in judgments(db) if r["scores"]]
    assert stored == [{"A": {"depth": 5}, "B": {"depth": 1}}]


def test_long_answers_are_paged(screen: io.StringIO) -> None:
    judge = make_judge(page_lines=3)
    long_answer = "\n".join(f"line {i}" for i in range(10))  # 4 pages of 3 lines
    human_judge.set_key_source(["", "n", "", "t"])  # three pages on, then the verdict
    result = asyncio.run(judge.judge(BlindedPair("Q?", long_answer, "short")))
    assert result.label == "tie"
    shown = screen.getvalue()
    assert "Answer A (page 1/4)" in shown and "Answer A (page 4/4)" in shown and "line 9" in shown
    assert shown.index("Answer A (page 4/4)") < shown.index("Answer B")


def test_verdict_can_be_given_on_any_page_and_unknown_keys_ask_again(screen: io.StringIO) -> None:
    judge = make_judge(page_lines=2)
    human_judge.set_key_source(["x", "b"])
    result = asyncio.run(judge.judge(BlindedPair("Q?", "1\n2\n3\n4\n5", "short")))
    assert result.label == "B"
    assert "unknown key 'x'" in screen.getvalue() and "page 2/3" not in screen.getvalue()


def test_after_quit_every_call_stops_without_asking(screen: io.StringIO) -> None:
    judge = make_judge()
    human_judge.set_key_source(["q", "a"])
    with pytest.raises(StopRun):
        asyncio.run(judge.judge(BlindedPair("Q?", "x", "y")))
    with pytest.raises(StopRun):
        asyncio.run(judge.judge(BlindedPair("Q2?", "x", "y")))
    assert screen.getvalue().count("Comparison 1") == 1  # the second call showed nothing


def test_a_retried_call_picks_up_the_session_on_screen(screen: io.StringIO) -> None:
    """The engine's timeout cancels the call; its retry must not show the same pair twice."""
    import threading

    gate = threading.Event()

    def keys():
        gate.wait(5)
        yield "a"

    judge = make_judge()
    pair = BlindedPair("Q?", "x", "y")
    human_judge.set_key_source(keys())

    async def timeout_then_retry():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(judge.judge(pair), timeout=0.05)
        gate.set()
        return await judge.judge(pair)

    assert asyncio.run(timeout_then_retry()).label == "A"
    assert screen.getvalue().count("Comparison 1") == 1


def test_terminal_safe_shows_controls_and_keeps_right_to_left_letters() -> None:
    text = "ok\x1b[2J\x07 مرحبا שלום \u202eevil\u202c\ttab\nline"
    safe = terminal_safe(text)
    assert "\x1b" not in safe and "\u202e" not in safe and "\x07" not in safe
    assert "⟨U+001B⟩" in safe and "⟨U+202E⟩" in safe
    assert "مرحبا שלום" in safe and "\ttab\nline" in safe


def test_escape_sequences_in_answers_do_not_reach_the_terminal(screen: io.StringIO) -> None:
    human_judge.set_key_source(["a"])
    asyncio.run(make_judge().judge(BlindedPair("Q?", "\x1b[2Jcleared?", "fine")))
    assert "\x1b" not in screen.getvalue() and "⟨U+001B⟩[2Jcleared?" in screen.getvalue()


def test_paginate_wraps_and_splits() -> None:
    pages = paginate("x" * 25 + "\nshort", width=10, page_lines=2)
    assert pages == ["xxxxxxxxxx\nxxxxxxxxxx", "xxxxx\nshort"]
    assert paginate("", width=10, page_lines=5) == [""]


def test_identity_names_the_person_not_the_paging() -> None:
    assert make_judge(judge_name="alice").identity() != make_judge(judge_name="bob").identity()
    assert make_judge(judge_name="alice", page_lines=5).identity() == make_judge(judge_name="alice").identity()
    assert make_judge(judge_name="alice", scores=True).identity() != make_judge(judge_name="alice").identity()


def test_two_people_judge_the_same_suite_separately(tmp_path: Path, screen: io.StringIO) -> None:
    suite = human_suite()
    suite["judges"]["bob"] = {"type": "human", "options": {"judge_name": "bob"}}
    human_judge.set_key_source(["a"] * 6 + ["b"] * 6)
    db = tmp_path / "h.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", suite), db) == 0
    got = judgments(db)
    assert sorted(r["judge"] for r in got) == ["alice"] * 6 + ["bob"] * 6
    assert {r["raw"].split(":")[0] for r in got if r["judge"] == "bob"} == {"bob"}


def test_unknown_option_lists_the_known_ones(tmp_path: Path) -> None:
    suite = scripted_suite(judges={"alice": {"type": "human", "options": {"judge_nam": "alice"}}})
    with pytest.raises(InputError) as err:
        run_suite(write_yaml(tmp_path / "s.yaml", suite), tmp_path / "h.db")
    message = str(err.value)
    assert "judges.alice.options.judge_nam" in message and "unknown key 'judge_nam'" in message
    assert "judge_name" in message and "scores" in message and "page_lines" in message


def test_cli_run_with_keys_from_the_environment_quits_and_resumes(tmp_path: Path) -> None:
    path, db = write_yaml(tmp_path / "s.yaml", human_suite()), tmp_path / "h.db"
    cmd = [sys.executable, "-m", "brie_bench", "--db", str(db), "--plugins-dir", str(FIXTURE_PLUGINS), "run", str(path)]
    env = dict(os.environ, COLUMNS="120", BRIE_BENCH_HUMAN_KEYS="a,b,t,q")
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "stopped:" in first.stderr and "alice quit judging" in first.stderr
    assert "Answer B" in first.stdout
    assert len(judgments(db)) == 3
    env["BRIE_BENCH_HUMAN_KEYS"] = "s,a,b"
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming run" in second.stdout
    with Store(str(db), readonly=True) as store:
        assert len(store.runs()) == 1
    assert len(judgments(db)) == 6


def test_human_verdicts_enter_the_reports_agreement_section(tmp_path: Path, screen: io.StringIO) -> None:
    """A person and an LLM-style judge on the same run: the report measures how often they agree."""
    from brie_bench.report import build_report

    data = human_suite()
    data["judges"]["marker"] = {"type": "marker"}  # always picks the candidate's (marked) answer
    db = tmp_path / "h.db"
    path = write_yaml(tmp_path / "s.yaml", data)

    def keys() -> Iterator[str]:
        # the candidate's answer carries the marker '*': press its label for the first two screens,
        # the other label afterwards
        for n in range(6):
            text = screen.getvalue().rsplit("Comparison", 1)[-1]
            a_part = text.split("Answer B")[0]
            candidate_is_a = "*" in a_part
            agree = n < 2
            yield "a" if candidate_is_a == agree else "b"

    human_judge.set_key_source(keys())
    assert run_suite(path, db) == 0
    with Store(db, readonly=True) as store:
        report = build_report(store).to_json_dict()
    (entry,) = report["agreement"]  # one candidate
    assert set(entry["judges"]) == {"alice", "marker"}
    (pair,) = entry["pairs"]
    assert pair["n"] == 3  # three comparisons, each judged in both orders
    assert pair["percent"] == pytest.approx(1 / 3)
