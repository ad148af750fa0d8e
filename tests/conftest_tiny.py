"""Pytest fixtures for the tiny local models (a plugin module; tests/conftest.py loads it).

Load it from tests/conftest.py with ``from conftest_tiny import *`` (tests/ is on
sys.path because it has no __init__.py) or ``pytest_plugins = ["conftest_tiny"]``
in the top-level conftest.

Importing this module makes the whole test session offline: HF_HUB_OFFLINE=1 and a
throw-away HF_HOME, set before transformers/huggingface_hub read them at import.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Iterator

import pytest

# Never the user's real hub cache: a throw-away folder, unless conftest.py already made one.
if not os.environ.get("HF_HOME", "").startswith(tempfile.gettempdir()):
    _HF_HOME = tempfile.mkdtemp(prefix="brie-hf-home-")
    atexit.register(shutil.rmtree, _HF_HOME, True)
    os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__all__ = ["tiny_cache", "tiny_base_path", "tiny_adapter_path", "tiny_judge_path"]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session-wide Brie Bench cache folder; BRIE_BENCH_CACHE points at it for the session."""
    path = tmp_path_factory.mktemp("brie-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("BRIE_BENCH_CACHE", str(path))
    try:
        yield path
    finally:
        patch.undo()


@pytest.fixture(scope="session")
def tiny_base_path(tiny_cache: Path) -> Path:
    """Folder of `tiny:qwen2` (random Qwen2, hidden 64, 2 layers), built once per session."""
    from brie_bench.testing import tiny

    return tiny.resolve("tiny:qwen2", tiny_cache)


@pytest.fixture(scope="session")
def tiny_adapter_path(tiny_cache: Path) -> Path:
    """Folder of `tiny:qwen2-lora` (random non-zero LoRA r=8 on tiny:qwen2)."""
    from brie_bench.testing import tiny

    return tiny.resolve("tiny:qwen2-lora", tiny_cache)


@pytest.fixture(scope="session")
def tiny_judge_path(tiny_cache: Path) -> Path:
    """Folder of `tiny:qwen2-judge` (same shape as tiny:qwen2, another seed)."""
    from brie_bench.testing import tiny

    return tiny.resolve("tiny:qwen2-judge", tiny_cache)
