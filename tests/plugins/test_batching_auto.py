"""`batch_size: auto` and the out-of-memory back-off of the `hf` backend, on the tiny random Qwen2.

Out-of-memory is simulated by wrapping the shared model's `generate` so it raises
`torch.OutOfMemoryError` (CUDA's error) or the CPU allocator's RuntimeError above
a chosen batch size; everything else is the real transformers code path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brie_bench.api import BackendContext, GenerationRequest, Message, SamplingParams, TransientError
from brie_bench.plugins import hf
from brie_bench.plugins.hf import HFBackend, HFOptions

TOPICS = ["being", "silence", "attention", "freedom", "time", "grief", "wonder", "solitude"]
SAMPLED = SamplingParams(temperature=0.7, max_tokens=10, seed=11)
GREEDY = SamplingParams(temperature=0.0, max_tokens=10)


def _requests(params: SamplingParams, n: int = 8) -> list[GenerationRequest]:
    return [GenerationRequest((Message("user", f"Write about {TOPICS[i % len(TOPICS)]}, take {i}."),), params)
            for i in range(n)]


def _texts(backend: HFBackend, requests: list[GenerationRequest]) -> list[str]:
    return [r.text for r in asyncio.run(backend.generate_batch(requests))]


@pytest.fixture
def backend(tiny_cache: Path) -> Iterator[HFBackend]:
    made = HFBackend("tiny:qwen2", HFOptions(device="cpu"), BackendContext("contender", "c", str(tiny_cache)))
    yield made
    asyncio.run(made.aclose())


def _fail_above(backend: HFBackend, monkeypatch: pytest.MonkeyPatch, limit: int,
                error: Callable[[], BaseException]) -> list[int]:
    """Make the shared model's generate raise `error()` for batches above `limit`; returns every batch size tried."""
    model = backend.load().model
    real = model.generate
    tried: list[int] = []

    def generate(*args: Any, **kwargs: Any) -> Any:
        rows = int(kwargs["input_ids"].shape[0])
        tried.append(rows)
        if rows > limit:
            raise error()
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)
    return tried


def test_auto_is_the_default_and_takes_the_whole_group_when_it_fits(backend: HFBackend) -> None:
    assert HFOptions().batch_size == "auto"
    assert backend.plan_batch_size(_requests(SAMPLED, 20)) == 20  # a tiny model: everything fits
    assert backend.batch_size == hf.MAX_BATCH  # the engine's bound; plan_batch_size gives the size
    assert HFBackend("tiny:qwen2", HFOptions(batch_size=4), backend.context).plan_batch_size(
        _requests(SAMPLED, 20)) == 4


def test_auto_takes_the_largest_batch_the_memory_budget_holds(backend: HFBackend,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    requests = _requests(GREEDY, 20)
    model = backend.load().model
    prompt = max(len(backend.load().tokenizer(backend._prompt_text(backend.load(), r.messages),
                                              add_special_tokens=False)["input_ids"]) for r in requests)
    row = hf._row_bytes(model.config, 4, prompt, GREEDY.max_tokens)
    monkeypatch.setattr(hf, "_memory_budget", lambda device, weights: 7 * row + row // 2)
    assert backend.plan_batch_size(requests) == 7
    monkeypatch.setattr(hf, "_memory_budget", lambda device, weights: 0)
    assert backend.plan_batch_size(requests) == 1  # never less than one
    # Longer answers need more memory per row, so fewer rows fit the same budget.
    assert hf._row_bytes(model.config, 4, prompt, 400) > row


def test_the_budget_is_a_share_of_total_memory_not_of_free_memory() -> None:
    total = hf._total_memory("cpu")
    assert total > 0
    assert hf._memory_budget("cpu", 0) == int(total * hf._MEMORY_SHARE["cpu"])
    assert hf._memory_budget("cpu", 10 * total) == 0


@pytest.mark.parametrize("error", [
    lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
], ids=["cuda", "cpu"])
def test_out_of_memory_backs_off_and_returns_every_answer(backend: HFBackend, monkeypatch: pytest.MonkeyPatch,
                                                          error: Callable[[], BaseException]) -> None:
    requests = _requests(SAMPLED, 8)
    # What batches of two sample, with nothing failing: the back-off must end up exactly there.
    expected = [t for i in range(0, 8, 2) for t in _texts(backend, requests[i:i + 2])]
    tried = _fail_above(backend, monkeypatch, 3, error)
    texts = _texts(backend, requests)
    assert len(texts) == 8 and texts == expected
    # 8 and then 4 ran out of memory; the second half is cut to the 2 that fitted before it runs.
    assert tried == [8, 4, 2, 2, 2, 2]
    assert backend.fits == 2
    tried.clear()  # later batches are cut to what fitted before they run out of memory again
    assert _texts(backend, requests[:6]) == expected[:6]
    assert tried == [2, 2, 2]


def test_a_single_prompt_out_of_memory_is_a_transient_error(backend: HFBackend,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    _fail_above(backend, monkeypatch, 0, lambda: torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(TransientError, match="out of memory") as caught:
        _texts(backend, _requests(GREEDY, 2))
    assert caught.value.kind == "oom"


def test_other_errors_are_not_taken_for_out_of_memory(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    tried = _fail_above(backend, monkeypatch, 0, lambda: RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _texts(backend, _requests(GREEDY, 4))
    assert tried == [4] and backend.fits is None


def test_auto_batches_resume_to_the_same_samples(tmp_path: Path, tiny_cache: Path, tiny_base_path: Path,
                                                 tiny_adapter_path: Path, tiny_judge_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto batches smaller than a plan group: the engine hands them out, and a resumed run samples the same."""
    from rich.console import Console

    from brie_bench.plugin_manager import load_plugins
    from brie_bench.run import execute_run
    from brie_bench.suite import load_suite
    from helpers import crashed_copy, generation_texts

    monkeypatch.setattr(hf, "_row_bytes", lambda *args: 1)
    monkeypatch.setattr(hf, "_memory_budget", lambda device, weights: 4)  # four rows fit
    sizes: list[int] = []
    real = HFBackend.generate_batch

    async def spy(self: HFBackend, requests: Any) -> Any:
        sizes.append(len(requests))
        return await real(self, requests)

    monkeypatch.setattr(HFBackend, "generate_batch", spy)
    suite, registry = load_suite(Path(__file__).parents[2] / "suites" / "smoke.yaml"), load_plugins()

    full = tmp_path / "full.db"
    assert execute_run(suite, registry, db=str(full), console=Console(quiet=True)) == 0
    assert sorted(sizes) == [2, 2, 4, 4]  # 6 prompts per contender: a batch of 4, then one of 2
    reference = generation_texts(full)
    partial = crashed_copy(full, tmp_path / "partial.db", keep_generations=7)
    sizes.clear()
    assert execute_run(suite, registry, db=str(partial), console=Console(quiet=True)) == 0
    assert generation_texts(partial) == reference
    assert all(size in (2, 4) for size in sizes) and sizes  # the planned batches, never the leftovers alone
