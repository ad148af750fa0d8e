"""The plugin contract kit (brie_bench.testing), run on the built-in and test plugins.

Each `Test...(JudgeContract)` / `Test...(BackendContract)` class below is exactly
what a plugin author writes. The last tests check the kit itself: it must fail
judges that break the contract, or passing it would mean nothing.
"""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
from rich.console import Console

from brie_bench.api import BackendContext, BlindedPair, Judge, JudgeResult, TransientError
from brie_bench.testing import (BackendContract, JudgeContract, KitJudgeModel, check_judge_result,
                                registered_backend, registered_judge)

FIXTURE_PLUGINS = Path(__file__).parents[1] / "fixture_plugins"


# -- judges --------------------------------------------------------------------------------------
class TestLLMJudgeText(JudgeContract):
    """The built-in `llm` judge reading a 'Winner: X' line, over the kit's scripted model."""

    judge_class = registered_judge("llm")


class TestLLMJudgeLogprob(JudgeContract):
    """The `llm` judge deciding from token log-probabilities of 'A' and 'B'."""

    judge_class = registered_judge("llm")
    judge_options = {"mode": "logprob"}


class TestHumanJudge(JudgeContract):
    """The `human` judge with scripted key presses (a, b, tie, skip, over and over)."""

    judge_class = registered_judge("human")
    judge_options = {"judge_name": "kit-tester", "scores": False}

    @pytest.fixture(autouse=True)
    def scripted_person(self) -> Iterator[io.StringIO]:
        from brie_bench.plugins import human_judge

        screen = io.StringIO()
        human_judge.set_key_source(itertools.cycle(["a", "b", "t", "s"]))
        human_judge.set_console(Console(file=screen, width=100, height=40))
        yield screen
        human_judge.set_key_source(None)
        human_judge.set_console(None)


class TestFixedJudge(JudgeContract):
    judge_class = registered_judge("fixed", plugins_dir=FIXTURE_PLUGINS)
    judge_options = {"answer": "B"}


class TestMarkerJudge(JudgeContract):
    judge_class = registered_judge("marker", plugins_dir=FIXTURE_PLUGINS)


# -- backends ------------------------------------------------------------------------------------
class TestScriptedBackend(BackendContract):
    backend_class = registered_backend("scripted", plugins_dir=FIXTURE_PLUGINS)
    model = "base"
    backend_options = {"style": "plain"}
    deterministic = True
    batch_matches_single = True
    max_tokens = 64  # it ignores max_tokens; its answers stay short


class TestHFBackend(BackendContract):
    """The built-in `hf` backend on the tiny random Qwen2 (built locally, no download)."""

    backend_class = registered_backend("hf")
    model = "tiny:qwen2"
    backend_options = {"batch_size": 4}
    deterministic = True            # temperature 0 is greedy decoding
    long_prompt_chars = 1_500       # tiny:qwen2 has 2048 positions
    concurrent_calls = 4

    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_base_path: Path) -> None:
        """Build tiny:qwen2 once per session before the backend looks it up."""


# -- the kit must catch broken judges -------------------------------------------------------------
class GuessingJudge(Judge):
    """Broken on purpose: reads 'Winner: X' from the whole conversation, answers included."""

    name = "guessing"

    async def judge(self, pair: BlindedPair) -> JudgeResult:
        text = f"{pair.answer_a}\n{pair.answer_b}\n" + (await self.backend.generate(_request(pair))).text
        found = re.findall(r"Winner: (A|B|tie)\b", text)
        return JudgeResult(found[-1] if found else "tie", raw=text[-200:])


class SwallowingJudge(Judge):
    """Broken on purpose: turns every model failure into a tie."""

    name = "swallowing"

    async def judge(self, pair: BlindedPair) -> JudgeResult:
        try:
            text = (await self.backend.generate(_request(pair))).text
        except Exception:  # noqa: BLE001 - the bug under test
            return JudgeResult("tie", raw="error")
        label = text.removeprefix("Winner: ").strip()
        return JudgeResult(label if label in ("A", "B", "tie") else "invalid", raw=text,
                           invalid_reason=None if label in ("A", "B", "tie") else "unreadable")


def _request(pair: BlindedPair) -> Any:
    from brie_bench.api import GenerationRequest, Message

    return GenerationRequest((Message("user", f"{pair.prompt}\nA: {pair.answer_a}\nB: {pair.answer_b}"),))


def _run_contract_on(tmp_path: Path, judge_expr: str, tests: str) -> subprocess.CompletedProcess[str]:
    """Run the kit's tests, selected by -k, on a judge defined in this file, in a fresh pytest."""
    (tmp_path / "test_broken.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from brie_bench.testing import JudgeContract
        from test_contract_kit import GuessingJudge, SwallowingJudge

        class TestBroken(JudgeContract):
            judge_class = {judge_expr}
    """), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-k", tests,
                           str(tmp_path / "test_broken.py")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)


def test_kit_fails_a_judge_that_reads_the_answers_for_a_verdict(tmp_path: Path) -> None:
    result = _run_contract_on(tmp_path, "GuessingJudge", "unreadable_model_answer and says_winner_b")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "return invalid rather than guess" in result.stdout


def test_kit_fails_a_judge_that_swallows_transient_errors(tmp_path: Path) -> None:
    result = _run_contract_on(tmp_path, "SwallowingJudge", "transient_error")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DID NOT RAISE" in result.stdout and "TransientError" in result.stdout


def test_kit_detects_a_leak_of_contender_identity() -> None:
    """The canary scan itself: a pair that names a contender is caught."""
    from brie_bench.testing.contract import CANARY_CONTENDERS, _contains_canary

    assert _contains_canary(f"answer by {CANARY_CONTENDERS[1].upper()}") == CANARY_CONTENDERS[1]
    assert _contains_canary("an innocent answer") is None


def test_check_judge_result_rejects_contract_breaks() -> None:
    with pytest.raises(AssertionError, match="must return JudgeResult"):
        check_judge_result("A")
    with pytest.raises(AssertionError, match="must say why"):
        check_judge_result(JudgeResult("invalid"))
    with pytest.raises(AssertionError, match="not an integer 1..5"):
        check_judge_result(JudgeResult("A", scores={"A": {"depth": 7}}))
    with pytest.raises(AssertionError, match="keyed by label"):
        check_judge_result(JudgeResult("A", scores={"baseline": {"depth": 3}}))
    with pytest.raises(AssertionError, match="label B with P"):
        check_judge_result(JudgeResult("B", p_a=0.9))


def test_kit_model_follows_its_script() -> None:
    import asyncio

    from brie_bench.api import GenerationRequest, Message

    model = KitJudgeModel(intent="transient", context=BackendContext("judge", "kit"))
    with pytest.raises(TransientError):
        asyncio.run(model.generate(GenerationRequest((Message("user", "x"),))))
    model.intent = "garbage:no idea"
    assert asyncio.run(model.generate(GenerationRequest((Message("user", "x"),)))).text == "no idea"
    assert model.requests == ["x", "x"]


def test_importing_brie_bench_does_not_import_pytest() -> None:
    code = ("import sys, brie_bench, brie_bench.api, brie_bench.testing, brie_bench.plugin_manager\n"
            "assert 'pytest' not in sys.modules, 'pytest was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
