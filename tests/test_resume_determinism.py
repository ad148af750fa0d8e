"""A resumed run samples exactly what an uninterrupted run samples, also for local batched models."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rich.console import Console

from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite

SMOKE = Path(__file__).parent.parent / "suites" / "smoke.yaml"


def _texts(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT key, text FROM generations"))
    finally:
        conn.close()


def test_partially_stored_batch_resumes_to_the_same_samples(tmp_path, tiny_cache, tiny_base_path,
                                                            tiny_adapter_path, tiny_judge_path):
    suite, registry = load_suite(SMOKE), load_plugins()
    full = tmp_path / "full.db"
    assert execute_run(suite, registry, db=str(full), console=Console(quiet=True)) == 0
    reference = _texts(full)
    assert len(reference) == 12 and len(set(reference.values())) > 1  # sampled at temperature 0.7

    # A "crashed" store: the schema and only some of the generations survived.
    partial = tmp_path / "partial.db"
    conn = sqlite3.connect(partial)
    conn.execute(f"ATTACH DATABASE '{full}' AS src")
    for (sql,) in conn.execute("SELECT sql FROM src.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
        conn.execute(sql)
    conn.execute("INSERT INTO generations SELECT * FROM src.generations ORDER BY key LIMIT 5")
    conn.commit()
    conn.close()

    assert execute_run(suite, registry, db=str(partial), console=Console(quiet=True)) == 0
    assert _texts(partial) == reference
