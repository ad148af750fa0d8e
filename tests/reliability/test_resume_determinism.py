"""A resumed run samples exactly what an uninterrupted run samples, also for local batched models."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from helpers import crashed_copy, generation_texts

SMOKE = Path(__file__).parents[2] / "suites" / "smoke.yaml"


def test_partially_stored_batch_resumes_to_the_same_samples(tmp_path, tiny_cache, tiny_base_path,
                                                            tiny_adapter_path, tiny_judge_path):
    suite, registry = load_suite(SMOKE), load_plugins()
    full = tmp_path / "full.db"
    assert execute_run(suite, registry, db=str(full), console=Console(quiet=True)) == 0
    reference = generation_texts(full)
    assert len(reference) == 12 and len(set(reference.values())) > 1  # sampled at temperature 0.7

    # A "crashed" store: the schema and only some of the generations survived.
    partial = crashed_copy(full, tmp_path / "partial.db", keep_generations=5)

    assert execute_run(suite, registry, db=str(partial), console=Console(quiet=True)) == 0
    assert generation_texts(partial) == reference
