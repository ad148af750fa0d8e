"""The wheel holds everything under `brie_bench/` (no generic top-level `plugins` or `training`) plus its data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_wheel_maps_plugins_and_training_under_brie_bench(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("brie_bench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert all(t == "brie_bench" or t.endswith(".dist-info") for t in top), top
    for expected in ("brie_bench/plugins/hf.py", "brie_bench/plugins/llm_judge.py",
                     "brie_bench/training/configs/smoke.yaml", "brie_bench/training/samples/sample.jsonl",
                     "brie_bench/templates/judge_default.j2", "brie_bench/report/templates/report.html.j2",
                     "brie_bench/data/prices.yaml", "brie_bench/web/app.py",
                     "brie_bench/web/templates/judge.html.j2", "brie_bench/testing/tiny.py",
                     "brie_bench/testing/data/tiny_corpus.json", "brie_bench/batch_poll.py",
                     "brie_bench/testing/loopback/server.py", "brie_bench/testing/loopback/openai_backend.py",
                     "brie_bench/stats/special.py"):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "brie-bench = brie_bench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_generic_names_are_not_importable_outside_the_checkout(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                            "print(u.find_spec('plugins'), u.find_spec('training'))"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert probe.stdout.strip() == "None None", probe.stdout + probe.stderr
