"""brie-bench-rubric-judge: an example third-party Brie Bench plugin.

Brie Bench finds this module through the entry point in pyproject.toml
(group "brie_bench") and calls its @hookimpl functions.
"""

from __future__ import annotations

from typing import Any

from brie_bench.api import hookimpl

from brie_bench_rubric_judge.judge import RubricJudge, RubricOptions

__all__ = ["RubricJudge", "RubricOptions", "register_judges"]


@hookimpl
def register_judges(register: Any) -> None:
    register(RubricJudge)
