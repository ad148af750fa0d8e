"""Test helpers for plugin authors: the plugin contract test kit (and loopback servers for tests).

`brie_bench.testing.tiny` builds the tiny random local models behind `tiny:` ids
(its corpus is `data/tiny_corpus.json`); it needs no pytest.

`from brie_bench.testing import JudgeContract` loads `brie_bench.testing.contract`,
which needs pytest. Nothing here is imported by `import brie_bench`, and even this
package loads the kit lazily, so pytest stays an optional dependency.
"""

from __future__ import annotations

from typing import Any

_CONTRACT_NAMES = frozenset({
    "JudgeContract", "BackendContract", "KitJudgeModel", "KitContender", "EDGE_PAIRS", "EDGE_PROMPTS",
    "GARBAGE_REPLIES", "CANARY_CONTENDERS", "CANARY_MODELS", "check_judge_result", "check_generation_result",
    "registered_judge", "registered_backend",
})

__all__ = sorted(_CONTRACT_NAMES)


def __getattr__(name: str) -> Any:
    """Load the contract kit (and pytest) only when one of its names is asked for."""
    if name in _CONTRACT_NAMES:
        from brie_bench.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'brie_bench.testing' has no attribute {name!r}")
