"""`brie-bench report`, `export` and run-against-run comparison through the real CLI."""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from helpers import run_suite, scripted_suite, write_yaml

ENV = {"COLUMNS": "220"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Two runs of one suite with different seeds: the pure-'A' judge sees different assignments in each."""
    tmp = tmp_path_factory.mktemp("report-cli")
    db = tmp / "r.db"
    for seed in (3, 4):
        data = scripted_suite(
            seed=seed, judges={"marker": {"type": "marker"}, "fixed": {"type": "fixed"}},
            sections=[{"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(10)]},
                      {"name": "brainstorm", "prompts": [f"Ideas | for thing {i}" for i in range(3)],
                       "orders": "both"}])
        assert run_suite(write_yaml(tmp / f"suite{seed}.yaml", data), db) == 0
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created_at, rowid")]
    conn.close()
    return db, ids[0], ids[1]


def _invoke(db: Path, *args: str) -> CliRunner.invoke:
    return CliRunner().invoke(cli, ["--db", str(db), *args], env=ENV)


def _winners(db: Path, run_id: str, judge: str) -> dict[tuple[str, str], list[float]]:
    conn = sqlite3.connect(db)
    out: dict[tuple[str, str], list[float]] = {}
    for section, prompt, winner in conn.execute(
            "SELECT section, prompt_id, winner FROM judgments WHERE run_id=? AND judge=?", (run_id, judge)):
        out.setdefault((section, prompt), []).append(
            math.nan if winner is None else {"brie": 1.0, "baseline": 0.0, "tie": 0.5}[winner])
    conn.close()
    return out


def _combined(per: dict[tuple[str, str], list[float]]) -> dict[tuple[str, str], float]:
    return {k: v[0] if len(v) == 1 else (v[0] if v[0] == v[1] else 0.5) for k, v in per.items()}


def test_report_without_flags_prints_tables_for_the_latest_run(two_runs):
    db, _, latest = two_runs
    result = _invoke(db, "report")
    assert result.exit_code == 0, result.output
    assert latest in result.output
    flat = " ".join(result.output.split())
    assert "marker" in flat and "fixed" in flat and "no majority-vote row: 1 judge with information" in flat
    assert "cannot be trusted: only 3 prompts" in flat  # the brainstorm section
    assert "warning: fixed (brie):" in flat  # the label-following judge is flagged


def test_html_default_path_and_run_id_after_the_flag(two_runs, tmp_path, monkeypatch):
    db, first, latest = two_runs
    monkeypatch.chdir(tmp_path)
    result = _invoke(db, "report", "--html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / f"{latest}.html").exists()
    # `--html RUN`: the run id is not mistaken for an output file name.
    result = _invoke(db, "report", "--html", first)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / f"{first}.html").exists() and not (tmp_path / first).exists()
    result = _invoke(db, "report", first, "--html", "out/custom.html")
    assert result.exit_code == 0 and (tmp_path / "out" / "custom.html").read_text(encoding="utf-8").startswith(
        "<!DOCTYPE html>")


def test_json_and_markdown_outputs(two_runs, tmp_path):
    db, first, _ = two_runs
    result = _invoke(db, "report", first, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["id"] == first and {j["judge"] for j in data["judges"]} == {"marker", "fixed"}
    out = tmp_path / "r.json"
    assert _invoke(db, "report", first, "--json", str(out)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8"))["judges"] == data["judges"]
    result = _invoke(db, "report", first, "--markdown", "--model-index")
    assert result.exit_code == 0
    assert "| Judge |" in result.stdout and "model-index:" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["report", "no-such-run"], "no run 'no-such-run'"),
    (["report", "a", "b", "c"], "at most two runs"),
    (["export", "--jsonl", "no-such-run"], "no run 'no-such-run'"),
])
def test_bad_input_is_one_line_and_exit_2(two_runs, args, message):
    db, _, _ = two_runs
    result = _invoke(db, *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_database_is_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "report"], env=ENV)
    assert result.exit_code == 2 and "database not found" in result.output
    assert not (tmp_path / "none.db").exists()


def test_export_without_a_format_flag_writes_json_lines_to_stdout(two_runs, tmp_path):
    """`brie-bench export` alone is JSON Lines on stdout; `-o x.csv` alone is CSV."""
    db, first, _ = two_runs
    plain = _invoke(db, "export", first)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == _invoke(db, "export", first, "--jsonl").stdout
    assert all(json.loads(line)["run_id"] == first for line in plain.stdout.splitlines())
    out = tmp_path / "rows.csv"
    assert _invoke(db, "export", first, "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith(next(iter(
        json.loads(plain.stdout.splitlines()[0]))))  # a CSV header row, starting with the first field


def test_export_writes_one_row_per_judgment(two_runs, tmp_path):
    db, first, _ = two_runs
    conn = sqlite3.connect(db)
    n = conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=?", (first,)).fetchone()[0]
    conn.close()
    result = _invoke(db, "export", first, "--jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == n == 2 * (10 + 3 * 2)
    r = rows[0]
    assert r["text_a"] and r["text_b"] and r["prompt"].startswith(("Ideas", "What"))
    assert r["outcome"] == {"brie": "win", "baseline": "loss", "tie": "tie"}[r["winner"]]
    assert r["candidate_label"] == ("A" if r["label_a"] == "brie" else "B")
    out = tmp_path / "x.csv"
    assert _invoke(db, "export", first, "--csv", "-o", str(out)).exit_code == 0
    with out.open(encoding="utf-8", newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == n and back[0]["unit_key"] == rows[0]["unit_key"] and back[0]["text_a"] == rows[0]["text_a"]


def test_run_against_run_difference_and_flipped_prompts(two_runs):
    db, a, b = two_runs
    result = _invoke(db, "report", a, b, "--json")
    assert result.exit_code == 0, result.output
    comp = json.loads(result.stdout)
    assert comp["schema"] == "brie-bench-comparison"
    assert (comp["run_a"]["id"], comp["run_b"]["id"]) == (a, b)
    fixed = next(e for e in comp["judges"] if e["judge"] == "fixed")
    ca, cb = _combined(_winners(db, a, "fixed")), _combined(_winners(db, b, "fixed"))
    wr_a, wr_b = sum(ca.values()) / len(ca), sum(cb.values()) / len(cb)
    assert fixed["a"]["win_rate"] == pytest.approx(wr_a) and fixed["b"]["win_rate"] == pytest.approx(wr_b)
    assert fixed["n_shared_prompts"] == 13
    assert fixed["difference"]["estimate"] == pytest.approx(wr_a - wr_b)
    assert fixed["difference"]["method"] == "paired-newcombe"
    expected_flips = {k[1] for k in ca if (ca[k] - 0.5) * (cb[k] - 0.5) < 0}
    prompts = {f"philosophy-{i + 1}": f"What is being number {i}?" for i in range(10)}
    assert {f["prompt"] for f in fixed["flipped"]} == {prompts[p] for p in expected_flips}
    assert expected_flips, "seeds 3 and 4 should give the pure-'A' judge some different verdicts"
    marker = next(e for e in comp["judges"] if e["judge"] == "marker")
    assert marker["difference"]["estimate"] == 0 and marker["flipped"] == []
    # Terminal, Markdown and HTML views of the same comparison.
    table = _invoke(db, "report", a, b)
    assert table.exit_code == 0 and "A − B" in table.output and "flipped (fixed)" in table.output
    md = _invoke(db, "report", a, b, "--markdown")
    assert md.exit_code == 0 and md.stdout.count("| all |") == 2
    # HTML: one unit for the difference, in the chart and the table alike (percentage points).
    out = Path(db).parent / "ab.html"
    page = _invoke(db, "report", a, b, "--html", str(out))
    assert page.exit_code == 0, page.output
    html = out.read_text(encoding="utf-8")
    table_part = html.split("<h2>Per judge and section</h2>", 1)[1].split("</table>", 1)[0]
    assert " pts [" in table_part and not re.search(r"[+-]\d\.\d\d \[", table_part)
