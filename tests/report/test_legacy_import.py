"""`brie-bench import legacy`: the original tool's JSONL, re-parsed, reported with hand-computed figures.

The fixtures (tests/fixtures/legacy) hold two judges over five comparisons of
three prompts. Worked out by hand from the files (candidate = brie):

claude (judge_claude.jsonl)
  line 1  philosophy s0  AB  "Winner: Response B"  -> brie      (stored brie)
  line 2  philosophy s1  BA  "Winner: A"           -> baseline  (stored baseline)
  line 3  contemplative  AB  "Both fine. Winner: Tie" (not a verdict line) -> invalid (stored tie: DISAGREES)
  line 4  brainstorming  BA  "**Winner:** Response B" -> brie   (stored brie)
  line 5  philosophy s0  BA  "Winner: B"           -> brie; with line 1 the pair is judged in both orders, agreeing
  line 6  repeats line 1 (same comparison, judge, order) -> duplicate, skipped
  comparisons: s0 win, s1 loss, contemplative invalid, brainstorming win
  => W 2, L 1, T 0, invalid 1; win rate 2/3; strict 2/3
gpt-4o (judge_gpt4o.jsonl, baseline_output/brie_output spelling, a blank line)
  line 1  philosophy s0  BA  "Winner: Response A"  -> baseline (stored baseline)
  line 3  philosophy s1  AB  "Winner: tie"         -> tie       (stored tie)
  line 4  contemplative s0 BA "The better response is B." -> brie (stored brie)
  line 5  brainstorming  AB  "Winner: B"           -> brie      (stored baseline: DISAGREES)
  line 6  contemplative s1 AB "I cannot decide..."  -> invalid  (stored unknown)
  => W 2, L 1, T 1, invalid 1; win rate 2.5/4 = 0.625; strict 2/4 = 0.5
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats as sps

from brie_bench.cli import cli
from brie_bench.errors import InputError
from brie_bench.report.legacy import import_legacy, read_legacy
from brie_bench.report.model import LEGACY_WARNING, build_report
from brie_bench.store import Store

FIXTURES = Path(__file__).parents[1] / "fixtures" / "legacy"
CLAUDE, GPT = FIXTURES / "judge_claude.jsonl", FIXTURES / "judge_gpt4o.jsonl"
CLAUDE_MODEL, GPT_MODEL = "claude-3-5-sonnet-20241022", "gpt-4o-2024-08-06"
ENV = {"COLUMNS": "240"}


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "legacy.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(CLAUDE), str(GPT)], env=ENV)
    assert result.exit_code == 0, result.output
    run_id = result.output.split("imported run ", 1)[1].split(":", 1)[0]
    return db, run_id


def test_import_reproduces_hand_computed_per_judge_figures(imported):
    db, run_id = imported
    report = build_report(Store(db, readonly=True), run_id).to_json_dict()
    judges = {j["judge"]: j for j in report["judges"]}
    claude, gpt = judges[CLAUDE_MODEL], judges[GPT_MODEL]
    assert (claude["wins"], claude["losses"], claude["ties"], claude["invalid"]) == (2, 1, 0, 1)
    assert claude["win_rate"] == pytest.approx(2 / 3) and claude["strict_win_rate"] == pytest.approx(2 / 3)
    assert claude["n"] == 4 and claude["n_judgments"] == 5
    assert claude["ci95"]["n_prompts"] == 2  # the contemplative prompt has no valid verdict from claude
    assert (gpt["wins"], gpt["losses"], gpt["ties"], gpt["invalid"]) == (2, 1, 1, 1)
    assert gpt["win_rate"] == pytest.approx(0.625) and gpt["strict_win_rate"] == pytest.approx(0.5)
    assert gpt["n"] == 5 and gpt["n_judgments"] == 5
    assert gpt["sign_test_p"] == pytest.approx(sps.binomtest(2, 3, 0.5).pvalue)
    assert claude["model"] == CLAUDE_MODEL and gpt["judge_type"] == "openai"
    # Three prompts in all: no interval can be trusted, and the report says so.
    assert not claude["ci95"]["trusted"] and "cannot be trusted" in claude["ci95"]["note"]
    # Agreement over the three comparisons both judged validly (philosophy s0, s1, brainstorming): 1 of 3.
    (ag,) = report["agreement"]
    assert ag["n_complete"] == 3 and ag["percent_all"] == pytest.approx(1 / 3)
    # Print order is position: claude's decisive verdicts went to the answer printed first 2 times of 4.
    pos = next(b for b in report["bias"] if b["judge"] == CLAUDE_MODEL)["position"]
    assert pos["n_decisive"] == 4 and pos["first_shown_share"]["estimate"] == pytest.approx(0.5)


def test_every_parser_disagreement_is_reported_with_file_and_line(imported):
    db, run_id = imported
    report = build_report(Store(db, readonly=True), run_id).to_json_dict()
    found = {(Path(d["file"]).name, d["line"], d["stored"], d["parsed"]) for d in report["legacy"]["disagreements"]}
    assert found == {("judge_claude.jsonl", 3, "tie", "unknown"), ("judge_gpt4o.jsonl", 5, "baseline", "brie")}
    assert report["legacy"]["duplicates"] == 1


def test_store_rows_keep_label_a_as_baseline_and_the_print_order_as_presentation_order(imported):
    db, run_id = imported
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM judgments WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()
    run = conn.execute("SELECT metadata FROM runs WHERE id=?", (run_id,)).fetchone()
    texts = dict(conn.execute("SELECT key, text FROM generations").fetchall())
    conn.close()
    assert len(rows) == 10
    assert all(r["label_a"] == "baseline" and r["label_b"] == "brie" for r in rows)
    lines = [json.loads(l) for l in CLAUDE.read_text().splitlines()[:5]]
    claude = [r for r in rows if r["judge"] == CLAUDE_MODEL]  # in file order
    assert [r["presentation_order"] for r in claude] == [{"AB": 0, "BA": 1}[l["presentation_order"]] for l in lines]
    assert [r["raw"] for r in claude] == [l["judgment"] for l in lines]
    assert [texts[r["gen_key_b"]] for r in claude] == [l["brie_response"] for l in lines]
    assert json.loads(run["metadata"])["legacy"] is True


def test_reports_on_an_imported_run_warn_labels_were_not_randomised(imported, tmp_path):
    db, run_id = imported
    runner = CliRunner()
    md = runner.invoke(cli, ["--db", str(db), "report", run_id, "--markdown"], env=ENV)
    assert md.exit_code == 0 and "labels were NOT randomised" in md.stdout
    js = runner.invoke(cli, ["--db", str(db), "report", run_id, "--json"], env=ENV)
    data = json.loads(js.stdout)
    assert data["run"]["labels_randomised"] is False
    assert {"kind": "legacy-labels", "text": LEGACY_WARNING} in data["warnings"]
    out = tmp_path / "legacy.html"
    assert runner.invoke(cli, ["--db", str(db), "report", run_id, "--html", str(out)], env=ENV).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'id="legacy-warning"' in html and "labels were NOT randomised" in html
    assert "judge_claude.jsonl:3" in html  # the disagreement table
    terminal = runner.invoke(cli, ["--db", str(db), "report", run_id], env=ENV)
    assert "labels were NOT randomised" in " ".join(terminal.output.split())


def test_importing_the_same_files_again_reuses_the_run(imported):
    db, run_id = imported
    again = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(CLAUDE), str(GPT)], env=ENV)
    assert again.exit_code == 0 and f"already imported as run {run_id}" in again.output
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    conn.close()
    fresh = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", "--new", str(CLAUDE), str(GPT)], env=ENV)
    assert fresh.exit_code == 0 and "imported run" in fresh.output


def test_malformed_fixture_is_one_line_error_with_file_and_line(tmp_path):
    db = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", str(CLAUDE),
                                      str(FIXTURES / "malformed.jsonl")], env=ENV)
    assert result.exit_code == 2
    out = result.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    assert out.startswith(f"error: {FIXTURES / 'malformed.jsonl'}:3: not valid JSON")
    if db.exists():  # nothing is written when any file is bad
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        conn.close()


GOOD = json.loads(CLAUDE.read_text().splitlines()[0])


@pytest.mark.parametrize("change, line, field, message", [
    ({"presentation_order": "CD"}, 2, "presentation_order", "must be AB or BA"),
    ({"winner": "model_b"}, 2, "winner", "must be one of brie, baseline, tie, unknown"),
    ({"judge_model": None}, 2, "judge_model", "must be a string"),
    ({"prompt": ""}, 2, "prompt", "is empty"),
    ({"temperature": "hot"}, 2, "temperature", "must be a number"),
    ({"baseline_response": None, "baseline_output": None}, 2, "baseline_response", "must be a string"),
])
def test_bad_fields_name_file_line_and_field(tmp_path, change, line, field, message):
    bad = {**GOOD, **change}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_legacy(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)
    assert message in str(info.value) and str(info.value).startswith(f"{path}:{line}: {field}: ")


def test_missing_field_and_other_shapes(tmp_path):
    no_answer = {k: v for k, v in GOOD.items() if k != "brie_response"}
    cases = [
        (json.dumps(no_answer), "brie_response", "missing field (or brie_output)"),
        ("[1, 2]", None, "expected a JSON object"),
        ("", None, "no judgments in file"),
    ]
    for text, field, message in cases:
        path = tmp_path / "case.jsonl"
        path.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(InputError) as info:
            read_legacy(path)
        assert info.value.field == field and message in str(info.value)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + "caf\u00e9".encode("latin-1") + b"\n")
    with pytest.raises(InputError, match="not UTF-8") as info:
        read_legacy(path)
    assert info.value.line == 2
    with pytest.raises(InputError, match="legacy file not found"):
        read_legacy(tmp_path / "missing.jsonl")


def test_identical_answers_to_one_prompt_are_one_comparison_across_files(tmp_path):
    """Two files judging the same answers: one comparison, two judges; a different answer is a new sample."""
    other = {**GOOD, "judge_model": "other-judge", "presentation_order": "BA", "judgment": "Winner: A",
             "winner": "baseline"}
    resample = {**GOOD, "brie_response": "A different fine-tune answer.", "judgment": "Winner: A",
                "winner": "baseline"}
    f1, f2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    f1.write_text(json.dumps(GOOD) + "\n" + json.dumps(resample) + "\n", encoding="utf-8")
    f2.write_text(json.dumps(other) + "\n", encoding="utf-8")
    with Store(tmp_path / "db.sqlite") as store:
        result = import_legacy(store, [f1, f2])
        rows = store.judgments(result.run_id)
    assert result.comparisons == 2 and result.prompts == 1 and result.judges == [GOOD["judge_model"], "other-judge"]
    assert {(r.judge, r.sample_index, r.winner) for r in rows} == {
        (GOOD["judge_model"], 0, "brie"), (GOOD["judge_model"], 1, "baseline"), ("other-judge", 0, "baseline")}
