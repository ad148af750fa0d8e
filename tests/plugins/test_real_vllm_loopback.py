"""The path past one machine: suites/examples/vllm.yaml against servers that behave like vLLM.

vLLM started with ``--enable-lora --lora-modules brie=PATH`` serves the base model and
the adapter from one process: ``GET /v1/models`` lists both names (the adapter with its
base as ``parent``), each request is routed by its ``model`` field, unknown names get a
404, and chat completions return ``logprobs``/``top_logprobs``. The loopback server is
scripted to do exactly that, and the shipped example suite runs against it with nothing
changed but where the two servers live.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import Answer, Call, LoopbackProvider
from hostile.kit import fenced, query, summary

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "suites" / "examples" / "vllm.yaml"
BASE, ADAPTER, JUDGE = "Qwen/Qwen2.5-3B-Instruct", "brie", "Qwen/Qwen2.5-7B-Instruct"


def _base_model(call: Call) -> str:
    return f"A plain answer about: {call.prompt[:50]}"


def _adapter(call: Call) -> str:
    return f"A contemplative answer, slower and stranger, about: {call.prompt[:50]} [brie]"


def _judge(call: Call) -> Answer | str:
    """Prefers the answer the adapter wrote, whichever label it has; logprobs when asked for."""
    labels: dict[str, str] = {}
    for _, text in call.messages:
        labels.update(fenced(text))
    assert set(labels) == {"A", "B"}, "the judge server only ever sees judging prompts"
    winner = "A" if "[brie]" in labels["A"] else "B"
    if call.body.get("logprobs"):
        other = "B" if winner == "A" else "A"
        return Answer(text=winner, top_logprobs={winner: math.log(0.8), f" {other}": math.log(0.15),
                                                 "tie": math.log(0.05)})
    return f"Reasoning: one answer goes further.\nWinner: {winner}"


@pytest.fixture
def vllm() -> Any:
    with LoopbackProvider(lora_modules={ADAPTER: BASE}, routes={BASE: _base_model, ADAPTER: _adapter},
                          max_lifetime_s=120) as srv:
        yield srv


@pytest.fixture
def judge_server() -> Any:
    with LoopbackProvider(_judge, models=[JUDGE], max_lifetime_s=120) as srv:
        yield srv


def _pointed_at(tmp_path: Path, vllm: LoopbackProvider, judge_server: LoopbackProvider) -> Path:
    """The shipped suite with its two base_url values moved to the loopbacks; nothing else changes."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count("http://127.0.0.1:8000/v1") == 2 and text.count("http://127.0.0.1:8001/v1") == 2
    moved = text.replace("http://127.0.0.1:8000/v1", vllm.openai_url).replace("http://127.0.0.1:8001/v1",
                                                                             judge_server.openai_url)
    original, changed = yaml.safe_load(text), yaml.safe_load(moved)
    for data in (original, changed):
        for spec in [*data["contenders"].values(), *data["judges"].values()]:
            opts = spec["backend_options"] if "backend_options" in spec else spec["options"]
            opts["base_url"] = "(moved)"
    assert changed == original  # only where the servers live differs
    path = tmp_path / "vllm.yaml"
    path.write_text(moved, encoding="utf-8")
    return path


def test_models_endpoint_lists_base_and_adapter_and_routes_by_model(vllm: LoopbackProvider) -> None:
    from openai import AsyncOpenAI, NotFoundError

    async def main() -> tuple[Any, str, str, Any]:
        client = AsyncOpenAI(base_url=vllm.openai_url, api_key="EMPTY", max_retries=0)
        try:
            models = await client.models.list()
            base = await client.chat.completions.create(
                model=BASE, messages=[{"role": "user", "content": "What is care?"}], max_tokens=64)
            lora = await client.chat.completions.create(
                model=ADAPTER, messages=[{"role": "user", "content": "What is care?"}], max_tokens=64,
                logprobs=True, top_logprobs=3)
            with pytest.raises(NotFoundError):
                await client.chat.completions.create(model="brie-v3", messages=[{"role": "user", "content": "x"}])
            return models, base.choices[0].message.content, lora.choices[0].message.content, lora
        finally:
            await client.close()

    models, base_text, lora_text, lora = asyncio.run(main())
    listed = {m.id: m for m in models.data}
    assert set(listed) == {BASE, ADAPTER}
    assert getattr(listed[ADAPTER], "parent", None) == BASE and getattr(listed[BASE], "parent", None) is None
    assert "[brie]" in lora_text and "[brie]" not in base_text
    assert lora.choices[0].logprobs.content and len(lora.choices[0].logprobs.content[0].top_logprobs) >= 1


def test_shipped_vllm_suite_runs_unchanged(tmp_path: Path, vllm: LoopbackProvider,
                                          judge_server: LoopbackProvider) -> None:
    path = _pointed_at(tmp_path, vllm, judge_server)
    db = tmp_path / "vllm.db"
    out = io.StringIO()
    code = execute_run(load_suite(path), load_plugins(None), db=str(db),
                       console=Console(file=out, width=300, color_system=None))
    assert code == 0, out.getvalue()
    counts = summary(out.getvalue())
    assert counts["gen_new"] == 12 and counts["judg_new"] == 24 and counts["judg_failed"] == 0

    # Routing by `model`: one server, two names, each answered by its own "weights".
    gens = query(db, "SELECT model, text FROM generations")
    by_model = Counter(g["model"] for g in gens)
    assert by_model == {BASE: 6, ADAPTER: 6}
    assert all(("[brie]" in g["text"]) == (g["model"] == ADAPTER) for g in gens)
    assert {c.model for c in vllm.calls} == {BASE, ADAPTER}

    # The logprob judge got real token probabilities; the text judge wrote verdict lines.
    judgments = query(db, "SELECT * FROM judgments")
    assert Counter(j["judge"] for j in judgments) == {"qwen7b-logprob": 12, "qwen7b-text": 12}
    lp = [j for j in judgments if j["judge"] == "qwen7b-logprob"]
    assert all(j["p_a"] is not None and j["verdict"] in ("A", "B") for j in lp)
    assert all(abs(max(j["p_a"], 1 - j["p_a"]) - 0.8 / 0.95) < 1e-6 for j in lp)
    logprob_calls = [c for c in judge_server.calls if c.body.get("logprobs")]
    assert len(logprob_calls) == 12 and all(c.body.get("top_logprobs") == 20 for c in logprob_calls)
    # Blind and unblinded correctly: the adapter wins every comparison, under either label.
    assert {j["winner"] for j in judgments} == {"brie"}
    assert 0 < Counter(j["label_a"] for j in judgments)["brie"] < 24

    # A rerun finds everything stored and calls no server.
    before = len(vllm.calls) + len(judge_server.calls)
    out = io.StringIO()
    assert execute_run(load_suite(path), load_plugins(None), db=str(db),
                       console=Console(file=out, width=300, color_system=None)) == 0
    assert summary(out.getvalue())["calls"] == 0
    assert len(vllm.calls) + len(judge_server.calls) == before
