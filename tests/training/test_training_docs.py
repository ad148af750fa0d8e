"""Figures the docs take from the shipped training configs and data are the configs' own.

docs/training.md once said every recipe used "24 training and 4 validation" examples while
mini-Brie used 168 and 16; this reads the sentences and counts the examples in the files each
config names.
"""

from __future__ import annotations

import re
from pathlib import Path

from brie_bench.training import config_path, load_config

REPO = Path(__file__).resolve().parents[2]


def _examples(files: list[str]) -> int:
    return sum(1 for f in files for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip())


def test_training_doc_example_counts_match_the_configs() -> None:
    text = " ".join((REPO / "docs" / "training.md").read_text(encoding="utf-8").split())
    found = {(int(a), int(b)) for a, b in re.findall(r"(\d+) training and (\d+) validation", text)}
    counts = {}
    for name in ("smoke", "brie-v2-3b", "brie-v2-0.5b", "mini-brie"):
        config = load_config(config_path(name))
        counts[name] = (_examples(config.data.train), _examples(config.data.validation))
    assert counts["smoke"] == counts["brie-v2-3b"] == counts["brie-v2-0.5b"]
    assert found == {counts["smoke"], counts["mini-brie"]}, (found, counts)
    mini = " ".join((REPO / "docs" / "mini-brie.md").read_text(encoding="utf-8").split())
    assert f"{counts['mini-brie'][0]} " in mini
