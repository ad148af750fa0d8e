"""The training round trip: train the smoke config, then evaluate that adapter with the smoke suite, offline."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).parents[2]


def test_train_smoke_adapter_then_run_smoke_suite_against_it(tmp_path, tiny_cache, tiny_base_path, tiny_judge_path):
    env = {**__import__("os").environ, "BRIE_BENCH_CACHE": str(tiny_cache), "COLUMNS": "200"}
    adapter = tmp_path / "adapter"
    trained = subprocess.run([sys.executable, "-m", "brie_bench", "train", str(REPO / "training/configs/smoke.yaml"),
                              "--output", str(adapter)], capture_output=True, text=True, env=env, timeout=600)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    manifest = json.loads((adapter / "brie_manifest.json").read_text())
    suite = yaml.safe_load((REPO / "suites/smoke.yaml").read_text())
    suite["contenders"]["brie"]["options"]["adapter"] = "adapter"  # relative to the suite file
    for section in suite["sections"]:
        section["prompts_file"] = str(REPO / "suites" / section["prompts_file"])
        section["take"] = 2
    # prompts files must sit inside the suite's folder: copy them next to it
    (tmp_path / "prompts").mkdir()
    for section in suite["sections"]:
        src = Path(section["prompts_file"])
        (tmp_path / "prompts" / src.name).write_text(src.read_text())
        section["prompts_file"] = f"prompts/{src.name}"
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    db = tmp_path / "eval.db"
    ran = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite_path)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    conn = sqlite3.connect(db)
    metadata = json.loads(conn.execute("SELECT metadata FROM runs").fetchone()[0])
    stored = metadata["contenders"]["brie"]["provenance"]
    assert stored["steps"] == manifest["steps"] and stored["base_model"] == manifest["base_model"]
    assert metadata["contenders"]["brie"]["adapter_sha256"]
    n = conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    assert n == 2 + 2 * 2  # philosophy (random order) + brainstorming (both orders)
