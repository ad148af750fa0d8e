"""Caps on stored text.

A 50 MB answer at max_tokens 32 was stored whole (a 50 MB database, a 50 MB report), and
a plugin's 10^8-character `raw` took the run to 1.35 GB. Each stored text is now capped
(`max_stored_chars`, default 2,000,000): the head is kept, a marker says how much was
cut, and the unit gets a ``truncated`` note in the error log. The unit is stored, not
failed: nothing is cut silently, and nothing is lost but the runaway tail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

from brie_bench.errors import InputError
from brie_bench.outputs import DEFAULT_MAX_STORED_CHARS
from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from helpers import FIXTURE_PLUGINS, scripted_suite, write_yaml
from hostile.kit import query

PLUGIN = '''
from brie_bench.api import (BackendOptions, GenerationResult, Judge, JudgeOptions, JudgeResult, ModelBackend,
                            Usage, hookimpl)


class FloodOptions(BackendOptions):
    chars: int = 50_000_000


class FloodBackend(ModelBackend):
    """Ignores max_tokens: answers with `chars` characters."""

    name = "flood"
    Options = FloodOptions

    async def generate(self, request):
        return GenerationResult(text="x" * self.options.chars, usage=Usage(1, 32), finish_reason="length")


class RawFloodOptions(JudgeOptions):
    chars: int = 100_000_000


class RawFloodJudge(Judge):
    """A verdict whose raw text is `chars` characters long."""

    name = "rawflood"
    Options = RawFloodOptions
    needs_backend = False

    async def judge(self, pair):
        return JudgeResult(label="A", raw="Winner: A " + "y" * self.options.chars)


@hookimpl
def register_backends(register):
    register(FloodBackend)


@hookimpl
def register_judges(register):
    register(RawFloodJudge)
'''


@pytest.fixture()
def plugins_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(FIXTURE_PLUGINS / "scripted.py", folder / "scripted.py")
    (folder / "flood.py").write_text(PLUGIN, encoding="utf-8")
    return folder


def run(tmp_path: Path, plugins_dir: Path, suite: dict) -> tuple[int, Path]:
    path = write_yaml(tmp_path / "suite.yaml", suite)
    db = tmp_path / "db.sqlite"
    code = execute_run(load_suite(path), load_plugins(plugins_dir), db=str(db), console=Console(quiet=True))
    return code, db


def test_a_50_mb_answer_at_max_tokens_32_is_stored_cut_marked_and_noted(tmp_path: Path, plugins_dir: Path) -> None:
    suite = scripted_suite(contenders={"baseline": {"backend": "scripted", "model": "base"},
                                       "flood": {"backend": "flood", "model": "runaway"}},
                           sections=[{"name": "s", "prompts": ["What is being number 1?"]}], max_tokens=32)
    code, db = run(tmp_path, plugins_dir, suite)
    assert code == 0  # stored, not failed
    (row,) = query(db, "SELECT key, text FROM generations WHERE model='runaway'")
    assert len(row["text"]) <= DEFAULT_MAX_STORED_CHARS
    assert row["text"].startswith("x" * 1000)
    assert row["text"].endswith("[brie-bench: truncated, " + f"{len(row['text'].split(chr(10))[0]):,}"
                                + " of 50,000,000 characters kept]")
    notes = query(db, "SELECT unit_key, kind, final, message FROM errors")
    assert [(n["unit_key"], n["kind"], n["final"]) for n in notes] == [(row["key"], "truncated", 0)], notes
    assert "50,000,000" in notes[0]["message"] and "max_stored_chars" in notes[0]["message"]
    assert query(db, "SELECT status FROM runs")[0]["status"] == "complete"
    assert (tmp_path / "db.sqlite").stat().st_size < 5 * DEFAULT_MAX_STORED_CHARS


def test_a_plugins_10_to_the_8_character_raw_is_cut_to_the_suites_max_stored_chars(tmp_path: Path,
                                                                                  plugins_dir: Path) -> None:
    suite = scripted_suite(judges={"rawflood": {"type": "rawflood"}},
                           sections=[{"name": "s", "prompts": ["What is being number 1?"]}])
    suite["max_stored_chars"] = 5_000
    code, db = run(tmp_path, plugins_dir, suite)
    assert code == 0
    (verdict,) = query(db, "SELECT unit_key, verdict, raw FROM judgments")
    assert verdict["verdict"] == "A" and verdict["raw"].startswith("Winner: A yyy")
    assert len(verdict["raw"]) <= 5_000 and "of 100,000,010 characters kept]" in verdict["raw"]
    notes = query(db, "SELECT unit_key, unit_kind, kind FROM errors")
    assert notes == [{"unit_key": verdict["unit_key"], "unit_kind": "judgment", "kind": "truncated"}]


def test_a_text_within_the_cap_is_stored_whole_with_no_note(tmp_path: Path, plugins_dir: Path) -> None:
    suite = scripted_suite(contenders={"baseline": {"backend": "scripted", "model": "base"},
                                       "flood": {"backend": "flood", "model": "runaway",
                                                 "options": {"chars": 5_000}}},
                           sections=[{"name": "s", "prompts": ["What is being number 1?"]}])
    suite["max_stored_chars"] = 5_000
    code, db = run(tmp_path, plugins_dir, suite)
    assert code == 0
    assert query(db, "SELECT text FROM generations WHERE model='runaway'")[0]["text"] == "x" * 5_000
    assert not query(db, "SELECT * FROM errors")


def test_a_max_stored_chars_below_1000_is_refused_naming_the_field(tmp_path: Path) -> None:
    suite = scripted_suite()
    suite["max_stored_chars"] = 10
    path = write_yaml(tmp_path / "suite.yaml", suite)
    with pytest.raises(InputError, match="max_stored_chars"):
        load_suite(path)
