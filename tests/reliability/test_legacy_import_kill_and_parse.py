"""Legacy import: a killed import is finished, not reported as done; valid JSON is read as JSON.

The killed import is a real `brie-bench import legacy` subprocess over a
generated 20,000-line file, stopped with SIGKILL once its run row exists and
some of its rows are stored; the same command is then run again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from brie_bench.cli import cli

LINES = 20_000


def legacy_line(i: int, **extra: object) -> dict[str, object]:
    return {"config_name": "s", "prompt_num": i // 2, "prompt": f"Prompt number {i // 2}?",
            "baseline_response": f"base answer {i}", "brie_response": f"brie answer {i}", "judge_model": "j",
            "judgment": "Winner: B", "presentation_order": "AB" if i % 2 else "BA", "winner": "brie",
            "timestamp": i, **extra}


def stored(db: Path) -> tuple[list[tuple[str, str]], int]:
    """(run id, status) of every run, and the number of stored judgments (0 while the file is being created)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return [], 0
    try:
        runs = [(r[0], r[1]) for r in conn.execute("SELECT id, status FROM runs")]
        return runs, conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    except sqlite3.OperationalError:
        return [], 0
    finally:
        conn.close()


def test_a_killed_import_is_finished_by_the_same_command_and_ends_with_every_line(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(legacy_line(i)) + "\n" for i in range(LINES)), encoding="utf-8")
    db = tmp_path / "import.db"
    command = [sys.executable, "-m", "brie_bench", "--db", str(db), "import", "legacy", str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            runs, judgments = stored(db)
            if runs and judgments >= 1500:
                break
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    runs, partial = stored(db)
    assert len(runs) == 1 and runs[0][1] == "running" and 0 < partial < LINES, (runs, partial)

    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(path)], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert "already imported" not in result.output
    assert f"imported run {runs[0][0]}: {LINES} lines" in result.output, result.output
    runs_after, judgments = stored(db)
    assert runs_after == [(runs[0][0], "complete")] and judgments == LINES
    conn = sqlite3.connect(db)
    links = conn.execute("SELECT COUNT(*) FROM run_generations").fetchone()[0]
    conn.close()
    assert links == 2 * LINES  # every answer linked to the run, both contenders
    # Now it is complete, the same command reports it as imported and stores nothing more.
    again = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(path)], env={"COLUMNS": "240"})
    assert again.exit_code == 0 and f"already imported as run {runs[0][0]}" in again.output, again.output
    assert stored(db)[1] == LINES


def test_raw_unicode_line_separators_inside_json_strings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "seps.jsonl"
    texts = ["para one\u2028line two", "para\u2029next", "next\u0085line", "form\x0cfeed\x1cfile\x1dsep"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps(legacy_line(i, judgment=f"{text}\nWinner: B"), ensure_ascii=False) + "\n")
    assert "\u2028" in path.read_text(encoding="utf-8")  # raw, not escaped
    db = tmp_path / "seps.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(path)], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert f"{len(texts)} lines" in result.output
    conn = sqlite3.connect(db)
    raws = sorted(r[0] for r in conn.execute("SELECT raw FROM judgments"))
    conn.close()
    assert raws == sorted(f"{t}\nWinner: B" for t in texts)


def test_a_5000_digit_integer_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "digits.jsonl"
    line = json.dumps(legacy_line(0)).replace('"timestamp": 0', '"timestamp": ' + "7" * 5000)
    path.write_text(json.dumps(legacy_line(1)) + "\n" + line + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "d.db"), "import", "legacy", str(path)],
                                env={"COLUMNS": "240"})
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [x for x in result.output.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and f"{path}:2:" in errors[0] and "digits" in errors[0], result.output
    assert "Traceback" not in result.output
