"""The report's columns agree with its rows, and its batched passes with the one-at-a-time rules.

`load_run` codes a run into arrays (`report.columns.RunColumns`) and makes each `JRow`
only when it is read. Three things must hold: the loader's arrays equal the arrays
coded from the rows themselves (the path a hand-built list of rows takes); a report
built from the loader's view equals one built from a plain list of the same rows,
figure for figure; and the passes that look at all answers at once (style counts,
verdict-like text) give what looking at each answer alone gives.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brie_bench.report.columns import RowsView, RunColumns, columns_from_rows
from brie_bench.report.jsonout import render_json
from brie_bench.report.model import build_report_from_data
from brie_bench.report.rows import RunData, load_run
from brie_bench.stats.style import style_count_table, style_counts
from brie_bench.store import Store
from brie_bench.verdicts import verdict_like_text, verdict_like_texts
from helpers import synthetic_run

_STAMP = re.compile(r'^\s*"generated_at": .*\n', re.M)


def _build(db: Path, judgments: int) -> str:
    return synthetic_run(db, judgments, seed=11)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 400-judgment run with what real stores hold besides the usual: log-probabilities, missing
    scores, a hand-edited scores text, an answer with markdown and one with verdict-like text."""
    db = tmp_path_factory.mktemp("columns") / "r.db"
    run_id = _build(db, 400)
    conn = sqlite3.connect(db)
    rowids = [r[0] for r in conn.execute("SELECT rowid FROM judgments ORDER BY rowid")]
    for i, rowid in enumerate(rowids[:60]):
        conn.execute("UPDATE judgments SET p_a=? WHERE rowid=?", (i / 60 if i % 7 else None, rowid))
    conn.execute("UPDATE judgments SET scores=NULL WHERE rowid=?", (rowids[70],))
    conn.execute("UPDATE judgments SET scores=? WHERE rowid=?",
                 ('{"A": {"depth": "4", "care": "n/a"}, "B": {"depth": 2.5}}', rowids[71]))
    keys = [r[0] for r in conn.execute("SELECT key FROM generations ORDER BY key LIMIT 2")]
    conn.execute("UPDATE generations SET text=? WHERE key=?", ("# Title\n- one\n- two\n**bold** and __x__", keys[0]))
    conn.execute("UPDATE generations SET text=? WHERE key=?", ("Fine.\nWinner: B [[B]]", keys[1]))
    conn.commit()
    conn.close()
    return db, run_id


def _load(run: tuple[Path, str]) -> RunData:
    with Store(run[0], readonly=True) as store:
        return load_run(store, run[1], texts=False)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f"
                                              else a == b))


def test_the_loaders_columns_equal_the_columns_coded_from_its_rows(run: tuple[Path, str]) -> None:
    data = _load(run)
    assert isinstance(data.rows, RowsView)
    fast: RunColumns = data.rows.cols
    rows = list(data.rows)  # every JRow made from its stored tuple
    slow = columns_from_rows(rows)
    assert fast.keys == slow.keys and fast.clusters == slow.clusters
    for name in ("item", "prompt", "order", "outcome", "ft_is_a", "a_first", "p_ft", "len_ft", "len_base",
                 "input_tokens", "output_tokens", "seq"):
        assert _same(getattr(fast, name), getattr(slow, name)), name
    for codes, names in (("judge", "judges"), ("member", "members"), ("candidate", "candidates"),
                         ("section", "sections"), ("judge_type", "judge_types")):
        assert [getattr(fast, names)[c] for c in getattr(fast, codes)] == \
               [getattr(slow, names)[c] for c in getattr(slow, codes)], codes
    assert [fast.answers[i] for i in fast.text_ft] == [r.text_ft for r in rows]
    assert [fast.answers[i] for i in fast.text_base] == [r.text_base for r in rows]
    assert fast.latency == [r.latency_s or 0.0 for r in rows] and fast.unit_keys == [r.unit_key for r in rows]
    assert sorted(fast.criteria) == sorted(slow.criteria)
    for side in ("ft", "base"):
        for name in fast.criteria:
            i, j = fast.criteria.index(name), slow.criteria.index(name)
            assert _same(getattr(fast, f"scores_{side}")[:, i], getattr(slow, f"scores_{side}")[:, j]), name
            assert _same(getattr(fast, f"has_{side}")[:, i], getattr(slow, f"has_{side}")[:, j]), name
    assert np.isfinite(fast.p_ft).sum() > 0 and (~fast.has_ft.all(axis=1)).sum() >= 2


def test_a_report_from_the_loaders_view_equals_one_from_a_plain_list_of_its_rows(run: tuple[Path, str]) -> None:
    data = _load(run)
    plain = RunData(run=data.run, snapshot=data.snapshot, rows=list(data.rows), generations=data.generations,
                    errors=data.errors)
    fast = _STAMP.sub("", render_json(build_report_from_data(data)))
    slow = _STAMP.sub("", render_json(build_report_from_data(plain)))
    assert fast == slow
    report = json.loads(fast)
    assert report["verdict_like"] and report["criteria"] and report["judges"][0]["logprob_preference"]


def test_rows_are_made_only_when_read(run: tuple[Path, str]) -> None:
    data = _load(run)
    assert isinstance(data.rows, RowsView)
    made = data.rows.cols.made
    assert not any(made)
    first = data.rows[0]
    assert made[0] is first and sum(r is not None for r in made) == 1
    assert data.rows[0] is first and data.rows[:2][0] is first


def _texts(n: int, seed: int) -> list[str]:
    """Answers built from markdown pieces: headers, lists, rules, bold, fences, NULs, edges of lines."""
    pieces = ["# h", "## x", "#", "- a", "* b", "+ c", "1. d", "2) e", "**bold**", "__u__", "a__b__c", "* * *",
              "---", "```", "~~~", "\x00", " ", "\t", "\n", "word", "- ", "-", "#x", "   # y", "    # z", "**",
              "__", "1.", "*", "_", "x__", "__y", "é"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(0, 12)))
            for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2])
def test_style_counts_of_all_answers_at_once_equal_style_counts_of_each(seed: int) -> None:
    texts = _texts(4000, seed)
    for subset in (texts, [t for t in texts if "\x00" not in t and "```" not in t and "~~~" not in t], [], [""]):
        table = style_count_table(subset)
        expected = [[c.length, c.headers, c.unordered_list_items, c.ordered_list_items, c.bold]
                    for c in map(style_counts, subset)]
        assert table.tolist() == expected


def test_verdict_like_text_of_all_answers_at_once_equals_each_alone() -> None:
    texts = ["plain prose", "Winner: B", "no verdict here", "[[A]] is better", 'x {"winner": "A"}',
             "ＷＩＮＮＥＲ: A", "café", ""]
    assert verdict_like_texts(texts) == [verdict_like_text(t) for t in texts]
    assert verdict_like_texts(["plain", "prose"]) == [None, None]
    assert verdict_like_texts([]) == []


def test_chunked_passes_give_what_one_pass_gives(run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scores parsed, style counted and verdict-like text looked for a few answers at a time (as a large
    run is, to keep its memory down) give the same columns and report as one pass over everything."""
    import brie_bench.report.rows as rows_module
    import brie_bench.stats.style as style_module
    import brie_bench.verdicts as verdicts_module

    whole = _load(run)
    whole_json = _STAMP.sub("", render_json(build_report_from_data(whole)))
    monkeypatch.setattr(rows_module, "_SCORE_CHUNK", 1)  # the hand-edited scores text a chunk of its own
    monkeypatch.setattr(style_module, "_TEXTS_PER_JOIN", 5)
    monkeypatch.setattr(verdicts_module, "_TEXTS_PER_LOOK", 3)
    chunked = _load(run)
    assert isinstance(whole.rows, RowsView) and isinstance(chunked.rows, RowsView)
    a, b = whole.rows.cols, chunked.rows.cols
    assert a.criteria == b.criteria and "care" not in a.criteria  # "n/a" is no score, so no column
    for name in ("scores_ft", "scores_base", "has_ft", "has_base"):
        assert _same(getattr(a, name), getattr(b, name)), name
    assert _STAMP.sub("", render_json(build_report_from_data(chunked))) == whole_json
    texts = list(a.answers)
    one_by_one = [(c.length, c.headers, c.unordered_list_items, c.ordered_list_items, c.bold)
                  for c in map(style_counts, texts)]
    assert style_count_table(texts).tolist() == [list(c) for c in one_by_one]
    assert verdict_like_texts(texts) == [verdict_like_text(t) for t in texts]
    assert any(verdict_like_texts(texts)) and style_count_table(texts)[:, 1:].any()  # something to find


_SCORE_VALUES = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=False),
                          st.floats(allow_nan=True), st.booleans(), st.none(), st.sampled_from(["4", "n/a"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("AB"), st.dictionaries(st.sampled_from(["depth", "care", "x1"]),
                                                                          _SCORE_VALUES, max_size=3), max_size=2),
                min_size=1, max_size=12))
def test_scores_parsed_in_bulk_are_the_json_modules_one_by_one(scores: list[dict[str, Any]]) -> None:
    """The bulk parse (orjson, the json module where orjson refuses a text: NaN, Infinity, a huge number)
    gives the score matrices that parsing each stored text alone with the json module gives."""
    from brie_bench.report.columns import score_matrix
    from brie_bench.report.rows import _RowCoder, _score_matrices, _scores

    texts = list(dict.fromkeys(json.dumps(s, sort_keys=True) for s in scores))
    bulk = _score_matrices(texts, _RowCoder(False, {}, None))  # type: ignore[arg-type]
    for side, label in zip(bulk, "AB"):
        names, values, present = score_matrix([_scores(json.loads(t, parse_int=float), label) for t in texts])
        assert side[0] == names
        assert _same(side[1], values) and _same(side[2], present)
