"""The report's fast paths give what the one-row-at-a-time rules give.

`load_run` parses every stored scores text in one JSON call, and the style-controlled
fit builds its feature matrix over columns; both must agree, value for value, with
parsing each text alone and with `stats.style.style_differences` per comparison,
including the texts a hand-edited store may hold (not an object, strings, booleans).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brie_bench.report.controls import _style_matrix
from brie_bench.report.rows import load_run
from brie_bench.stats.style import StyleCounts, style_differences
from brie_bench.store import Store
from helpers import synthetic_run

def _build(db: Path, judgments: int) -> str:
    return synthetic_run(db, judgments, seed=3)


def _expected(text: str | None, label: str) -> dict[str, float]:
    """The documented rule, one text at a time: an object's numeric entries as floats, anything else dropped."""
    parsed: Any = json.loads(text) if text else None
    side = parsed.get(label) if isinstance(parsed, dict) else None
    if not isinstance(side, dict):
        return {}
    out = {}
    for k, v in side.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            pass
    return out


#: Stored scores texts a hand-edited store may hold, written over the first rows.
MESSY = ['{"A": {"depth": "4", "care": "n/a", "flag": true}, "B": {"depth": 2.5, "care": null}}',
         "[1, 2]", '{"A": 3, "B": {"depth": 1}}', "", None]


@pytest.mark.parametrize("messy", [False, True], ids=["as-stored", "hand-edited"])
def test_scores_parsed_together_equal_scores_parsed_one_by_one(tmp_path: Path, messy: bool) -> None:
    db = tmp_path / "s.db"
    run_id = _build(db, 120)
    if messy:
        conn = sqlite3.connect(db)
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM judgments ORDER BY rowid LIMIT ?", (len(MESSY),))]
        for rowid, text in zip(rowids, MESSY):
            conn.execute("UPDATE judgments SET scores=? WHERE rowid=?", (text, rowid))
        conn.commit()
        conn.close()
    stored = dict(sqlite3.connect(db).execute("SELECT rowid, scores FROM judgments"))
    with Store(db, readonly=True) as store:
        rows = load_run(store, run_id, texts=False).rows
    assert len(rows) == len(stored)
    for r in rows:
        a, b = _expected(stored[r.seq], "A"), _expected(stored[r.seq], "B")
        assert (r.scores_ft, r.scores_base) == ((a, b) if r.ft_is_a else (b, a))
        assert all(type(v) is float for v in (*r.scores_ft.values(), *r.scores_base.values()))
    if messy:  # the hand-edited texts really were read (and the first one partly kept)
        first = min(rows, key=lambda r: r.seq)
        sides = [first.scores_ft, first.scores_base]
        assert sorted(sides, key=len) == [{"depth": 2.5}, {"depth": 4.0, "flag": 1.0}]


def test_a_scores_text_that_is_not_json_still_fails_loudly(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    run_id = _build(db, 40)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE judgments SET scores=? WHERE rowid=(SELECT MIN(rowid) FROM judgments)", ('{"A": {',))
    conn.commit()
    conn.close()
    with Store(db, readonly=True) as store, pytest.raises(ValueError):
        load_run(store, run_id, texts=False)


def test_the_style_matrix_equals_style_differences_per_comparison() -> None:
    rng = np.random.default_rng(5)
    texts = [f"answer {i}" for i in range(12)]
    counts = {t: StyleCounts(*(int(x) for x in rng.integers(0, 4, size=5))) for t in texts}
    counts["empty"] = StyleCounts(0, 0, 0, 0, 0)
    counts["also empty"] = StyleCounts(0, 0, 0, 0, 0)
    pairs = [(texts[i], texts[j]) for i, j in rng.integers(0, len(texts), size=(40, 2))]
    pairs += [("empty", "also empty"), ("empty", texts[0]), (texts[1], texts[1])]
    z = _style_matrix(pairs, counts.__getitem__)
    expected = np.array([style_differences(counts[a], counts[b]) for a, b in pairs])
    assert z.shape == expected.shape == (len(pairs), 5)
    assert np.array_equal(z, expected)  # bit for bit, not approximately
    assert not any(math.isnan(v) for v in z.ravel())
