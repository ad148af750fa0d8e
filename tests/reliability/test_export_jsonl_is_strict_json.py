"""`export --jsonl` writes strict JSON whatever is stored (an infinite latency, NaN or inf scores).

A browser rater's `shown_at=-inf` once stored an infinite latency, and the export
wrote `Infinity`, which strict JSON parsers reject. Here the values are put into a
real legacy-import database directly with SQLite, as a hostile or damaged file
would hold them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"


def strict(line: str) -> dict[str, object]:
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    row: dict[str, object] = json.loads(line, parse_constant=refuse)
    return row


@pytest.mark.parametrize("to_file", [True, False], ids=["file", "stdout"])
def test_export_jsonl_writes_strict_json_with_stored_infinite_and_nan_values(tmp_path: Path, to_file: bool) -> None:
    db = tmp_path / "r.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(LEGACY / "judge_claude.jsonl")])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    with conn:
        keys = [r[0] for r in conn.execute("SELECT unit_key FROM judgments ORDER BY unit_key")]
        conn.execute("UPDATE judgments SET latency_s = -9e999 WHERE unit_key = ?", (keys[0],))
        conn.execute("UPDATE judgments SET latency_s = 9e999, scores = ? WHERE unit_key = ?",
                     ('{"A": {"depth": Infinity, "clarity": 3}, "B": {"depth": NaN}}', keys[1]))
        conn.execute("UPDATE judgments SET latency_s = 1.5 WHERE unit_key = ?", (keys[2],))
    conn.close()
    out = tmp_path / "rows.jsonl"
    args = ["--db", str(db), "export", "--jsonl"] + (["-o", str(out)] if to_file else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8") if to_file else result.stdout
    rows = {r["unit_key"]: r for r in map(strict, text.splitlines())}
    assert len(rows) == len(keys)
    assert rows[keys[0]]["latency_s"] is None and rows[keys[1]]["latency_s"] is None
    assert rows[keys[1]]["scores"] == {"A": {"depth": None, "clarity": 3}, "B": {"depth": None}}
    assert rows[keys[2]]["latency_s"] == 1.5  # a finite value is written as it is
