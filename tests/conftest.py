"""Shared test setup: no network, a private HF cache, and the helpers most tests use."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="brie-bench-hf-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
    os.environ.pop(_key, None)

pytest_plugins = ["conftest_tiny"]  # the tiny-model fixtures (tests/conftest_tiny.py)

TESTS = Path(__file__).parent
REPO = TESTS.parent
FIXTURE_PLUGINS = TESTS / "fixture_plugins"


@pytest.fixture
def fixture_plugins_dir() -> Path:
    return FIXTURE_PLUGINS


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a suite YAML (text) into tmp_path and return its path."""

    def _write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def server(request: pytest.FixtureRequest):
    """A loopback provider server; it accepts only the test module's `KEY` when the module sets one."""
    from brie_bench.testing.loopback import LoopbackProvider

    with LoopbackProvider(api_key=getattr(request.module, "KEY", None), max_lifetime_s=60) as srv:
        yield srv


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server for the session (brie_bench.testing.pg_server), or a skip."""
    from brie_bench.testing.pg_server import LocalPostgres, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with LocalPostgres() as pg:
        yield pg


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty PostgreSQL database on the session's server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path) -> str:
    """A new store of each kind: a SQLite path, then a fresh PostgreSQL database's URL (or a skip)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")
