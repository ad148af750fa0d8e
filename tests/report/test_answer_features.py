"""Each answer's figures (length, markdown counts, verdict-like passage) are stored with it, and a
report built from them is the report built from the texts.

`brie_bench.answer_features` works the figures out as the store saves an answer; `report --json`
loads a run with ``lazy=True`` and then reads no answer text at all, only those figures. They
are a cache: a value that is missing (a store written before schema 4), made by other rules
(another `FEATURES_VERSION`) or unreadable is worked out from the text again, and a text
edited in place clears its value (a trigger: tests/store/test_store_contract.py). So a report
from stored figures must equal, byte for byte, a report whose figures were all worked out from
the texts, and the figures themselves must equal the one-text-at-a-time rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brie_bench.answer_features import FEATURES_VERSION, feature_table, parse_stored, stored_features
from brie_bench.report.jsonout import render_json
from brie_bench.report.model import build_report_from_data
from brie_bench.report.rows import load_run
from brie_bench.stats.style import STYLE_FEATURES, style_counts
from brie_bench.store import Store
from brie_bench.verdicts import verdict_like_text
from helpers import synthetic_run

_STAMP = re.compile(r'^\s*"generated_at": .*\n', re.M)

#: Answers every rule has something to say about: markdown of each kind, fenced code, verdict-like
#: text in several spellings, non-ASCII, a NUL, nothing at all.
CORPUS = [
    "",
    "Plain prose about being and time.",
    "# Title\n## Sub\n- one\n* two\n+ three\n1. first\n2) second\n**bold** and __also__\n---\n* * *",
    "```python\n# not a header\n- not a list\n```\nafter the fence **b**",
    "~~~\n**x**\n~~~",
    "Fine.\nWinner: B [[B]]",
    'As JSON: {"winner": "A"}',
    "Ｗｉｎｎｅｒ： Ａ",
    "zero\u200bwidth Win\u200bner: A",
    "nul\x00inside **b**",
    "ünïcödé — «quotes» and verdicts nowhere",
    "The verdict is in: [[A]] wins.",
]

#: sha256 of the figures of CORPUS under each FEATURES_VERSION. A change to `style_counts` or
#: `verdict_like_text` that alters a figure fails `test_the_rules_version_is_bumped_when_a_rule_changes`:
#: bump FEATURES_VERSION (so stored figures made by the old rules are worked out again) and record
#: the new digest under it.
DIGESTS = {1: "ed5c5372a2372fecd6066d9c55228ce894e0d8731e901e6235ef4a0156e3b8a1"}


def _digest() -> str:
    return hashlib.sha256("\n".join(stored_features(t) for t in CORPUS).encode()).hexdigest()


def test_the_rules_version_is_bumped_when_a_rule_changes() -> None:
    assert DIGESTS.get(FEATURES_VERSION) == _digest(), (
        "the figures of an answer changed: bump answer_features.FEATURES_VERSION and record "
        f"DIGESTS[{FEATURES_VERSION + 1}] = {_digest()!r}")


def test_stored_figures_are_the_one_text_rules() -> None:
    table, redo = parse_stored([stored_features(t) for t in CORPUS])
    assert redo == []
    for i, text in enumerate(CORPUS):
        counts = style_counts(text)
        assert table.chars[i] == len(text)
        assert table.style[i].tolist() == [getattr(counts, name) for name in STYLE_FEATURES]
        assert table.verdict_like[i] == verdict_like_text(text)
    bulk = feature_table(CORPUS)  # the report's pass over many answers at once
    assert np.array_equal(bulk.chars, table.chars) and np.array_equal(bulk.style, table.style)
    assert bulk.verdict_like == table.verdict_like
    assert any(table.verdict_like) and table.style[:, 1:].any()  # the corpus exercises both


def test_values_that_cannot_be_used_are_worked_out_again() -> None:
    good = stored_features("# T\nWinner: A")
    other_rules = json.dumps({**json.loads(good), "version": FEATURES_VERSION + 1})
    short = json.dumps({**json.loads(good), "style": [1, 2]})
    floats = json.dumps({**json.loads(good), "chars": 3.5})
    values = [good, None, "", "not json", other_rules, short, floats, "[1, 2]", good]
    table, redo = parse_stored(values)
    assert redo == [1, 2, 3, 4, 5, 6, 7]
    assert table.chars[0] == table.chars[8] == len("# T\nWinner: A")
    assert table.verdict_like[0] == "Winner: A"


#: What the fixture's run shows in three of its answers: markdown, and verdict-like text twice.
SHOWN = (CORPUS[2], CORPUS[5], CORPUS[11])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 300-judgment synthetic run whose answers include markdown and verdict-like text."""
    db = tmp_path_factory.mktemp("features") / "r.db"
    run_id = synthetic_run(db, 300, seed=5)
    with Store(db) as store:
        keys = [r[0] for r in store.conn.execute("SELECT key FROM generations ORDER BY key LIMIT 3")]
    conn = sqlite3.connect(db)
    with conn:  # edited in place: the trigger clears these answers' figures
        for key, text in zip(keys, SHOWN):
            conn.execute("UPDATE generations SET text=? WHERE key=?", (text, key))
    with conn:  # and worked out again, as a new save would have
        for key, text in zip(keys, SHOWN):
            conn.execute("UPDATE generations SET features=? WHERE key=?", (stored_features(text), key))
    conn.close()
    return db, run_id


def _report(db: Path, run_id: str, *, lazy: bool) -> str:
    with Store(db, readonly=True) as store:
        data = load_run(store, run_id, texts=False, lazy=lazy)
        return _STAMP.sub("", render_json(build_report_from_data(data)))


def _copy(db: Path, to: Path, change: str) -> Path:
    conn, out = sqlite3.connect(db), sqlite3.connect(to)
    conn.backup(out)
    conn.close()
    with out:
        out.execute(change)
    out.close()
    return to


def test_a_report_from_stored_figures_equals_one_worked_out_from_the_texts(run: tuple[Path, str],
                                                                          tmp_path: Path) -> None:
    db, run_id = run
    stored = _report(db, run_id, lazy=True)
    assert json.loads(stored)["verdict_like"], "the run has verdict-like answers"
    for change in ("UPDATE generations SET features=NULL",  # a store written before schema 4
                   "UPDATE generations SET features=json_set(features, '$.version', 0)",  # older rules
                   "UPDATE generations SET features='{broken'"):
        worked_out = tmp_path / f"{hashlib.sha1(change.encode()).hexdigest()[:8]}.db"
        assert _report(_copy(db, worked_out, change), run_id, lazy=True) == stored, change
    assert _report(db, run_id, lazy=False) == stored


class _CountingStore:
    """A store that counts the answer texts it is asked for (everything else passes through)."""

    def __init__(self, store: Store) -> None:
        self._store, self.texts_read = store, 0

    def generation_texts(self, keys: Any) -> dict[str, str]:
        keys = list(keys)
        self.texts_read += len(keys)
        return self._store.generation_texts(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_lazy_report_reads_no_answer_text_until_a_row_shows_one(run: tuple[Path, str]) -> None:
    db, run_id = run
    with Store(db, readonly=True) as plain:
        store = _CountingStore(plain)
        data = load_run(store, run_id, texts=False, lazy=True)  # type: ignore[arg-type]
        build_report_from_data(data)
        made = data.rows.cols.made  # type: ignore[attr-defined]
        rows_made = sum(r is not None for r in made)
        assert rows_made < 20 and store.texts_read <= 2 * rows_made  # the texts of the few rows it named
        before = store.texts_read
        at = next(i for i in range(len(made)) if made[i] is None)
        row = data.rows[at]
        assert store.texts_read - before <= 2 and row.text_ft and row.text_base
        eager = load_run(plain, run_id, texts=False)
        assert (eager.rows[at].text_ft, eager.rows[at].text_base) == (row.text_ft, row.text_base)
        # Every row made lazily (its verdict, labels and judge model read when it is made) is the eager row.
        assert list(data.rows) == list(eager.rows)
        assert {r.verdict for r in data.rows} >= {"A", "B"} and any(r.invalid_reason for r in data.rows)


def test_an_old_store_is_reported_from_its_texts(run: tuple[Path, str], tmp_path: Path) -> None:
    """A version 3 file (no features column) opened read-only: the figures come from the texts."""
    db, run_id = run
    old = _copy(db, tmp_path / "v3.db", "UPDATE meta SET value='3' WHERE key='schema_version'")
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TRIGGER generations_features_follow_text")
        conn.execute("ALTER TABLE generations DROP COLUMN features")
    conn.close()
    assert _report(old, run_id, lazy=True) == _report(db, run_id, lazy=True)


def test_a_copied_run_carries_figures_worked_out_from_its_texts(run: tuple[Path, str], tmp_path: Path) -> None:
    """`db copy` never moves a stored value: the target works each answer's figures out again."""
    db, run_id = run
    forged = _copy(db, tmp_path / "forged.db",
                   "UPDATE generations SET features=json_set(features, '$.chars', 1, '$.verdict_like', 'Winner: A')")
    copied = tmp_path / "copied.db"
    done = subprocess.run([sys.executable, "-m", "brie_bench", "db", "copy", str(forged), str(copied)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(copied) as conn:
        rows = conn.execute("SELECT text, features FROM generations").fetchall()
    conn.close()
    assert rows and all(features == stored_features(text) for text, features in rows)
    assert _report(copied, run_id, lazy=True) == _report(db, run_id, lazy=True)
