"""Reports on imported legacy data: keep every judgment, cluster by prompt text, read everything the files hold.

The fixtures in tests/fixtures/legacy_real are built like the original 3B exports
(see build.py there): 57 rows per judge, 42 distinct answer pairs, 15 re-judgments
with their own text, 25 prompt texts spread over 8 sections, score lines, a
"Winner: Neither (Tie)", one byte-identical copy of a line, and two files written
without `judge_model`. Every expected figure below is counted from the fixture
files themselves (independently of the importer), and the headline ones are also
written out, as published for the real files: GPT-4o 53 of 57, Gemini 54 of 57,
"Claude" 52 of 57 (claude-3-5-sonnet on 42 rows, claude-opus-4 on 15).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from brie_bench import stats
from brie_bench.cli import cli

FIX = Path(__file__).parents[1] / "fixtures" / "legacy_real"
THREE = [FIX / f"comprehensive_eval_3b_like_{j}.jsonl" for j in ("gpt4o", "gemini", "claude")]
ENV = {"COLUMNS": "240"}
SONNET, OPUS = "claude-3-5-sonnet-20241022", "claude-opus-4-20250514"


def _lines(paths: list[Path]) -> list[dict]:
    """Every line of the files, byte-identical copies dropped (the issue's rule, applied by hand)."""
    seen, out = set(), []
    for p in paths:
        for text in p.read_text(encoding="utf-8").splitlines():
            if text.strip() and text not in seen:
                seen.add(text)
                out.append(json.loads(text))
    return out


def _winner(judgment: str) -> str:
    """The fixture's own verdict line, read by hand: 'Winner: B' is the fine-tune (B was always brie)."""
    value = next(l for l in judgment.splitlines() if l.startswith("Winner:")).split(":", 1)[1].strip()
    return {"B": "win", "A": "loss"}.get(value, "tie")


def _import(tmp_path: Path, *files: Path, extra: tuple[str, ...] = ()) -> tuple[Path, str, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    db = tmp_path / "legacy.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "import", "legacy", *extra, *map(str, files)], env=ENV)
    assert result.exit_code == 0, result.output
    return db, result.output.split("imported run ", 1)[1].split(":", 1)[0], result.output


def _report(db: Path, run_id: str) -> dict:
    out = CliRunner().invoke(cli, ["--db", str(db), "report", run_id, "--json"], env=ENV)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def three_b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict, str]:
    db, run_id, output = _import(tmp_path_factory.mktemp("three-b"), *THREE)
    return db, run_id, _report(db, run_id), output


def test_replicates_are_kept_and_row_counts_match_the_files_exactly(three_b) -> None:
    _, _, report, output = three_b
    lines = _lines(THREE)
    expected: dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        expected[line["judge_model"]][_winner(line["judgment"])] += 1
    rows = {j["judge"]: j["rows"] for j in report["judges"]}
    for judge, count in expected.items():
        r = rows[judge]
        assert (r["wins"], r["losses"], r["ties"], r["invalid"]) == (count["win"], count["loss"], count["tie"], 0)
        assert r["n"] == sum(count.values())
    # The published per-judge figures of the original evaluation.
    assert (rows["gpt-4o"]["wins"], rows["gpt-4o"]["n"]) == (53, 57)
    assert rows["gpt-4o"]["strict_win_rate"] == pytest.approx(53 / 57)  # 93.0%
    assert (rows["gemini-2.5-flash-lite"]["wins"], rows["gemini-2.5-flash-lite"]["n"]) == (54, 57)
    assert (rows[SONNET]["wins"], rows[SONNET]["n"], rows[OPUS]["wins"], rows[OPUS]["n"]) == (39, 42, 13, 15)
    assert rows[SONNET]["wins"] + rows[OPUS]["wins"] == 52
    # 15 re-judgments per judge that re-judged; only the byte-identical copy is dropped.
    assert rows["gpt-4o"]["n_replicates"] == 15 and rows["gpt-4o"]["n_answer_pairs"] == 42
    assert report["legacy"]["duplicates"] == 1 and report["legacy"]["replicates"] == 30
    assert "1 byte-identical duplicate line(s) skipped, 30 re-judgment(s) kept" in " ".join(output.split())


def test_line_32_the_tie_is_kept_next_to_line_31_the_win(three_b) -> None:
    db, run_id, _, _ = three_b
    import sqlite3

    conn = sqlite3.connect(db)
    got = conn.execute("SELECT raw, winner, unit_key FROM judgments WHERE run_id=? AND judge='gpt-4o'",
                       (run_id,)).fetchall()
    conn.close()
    gpt = [json.loads(l) for l in THREE[0].read_text(encoding="utf-8").splitlines()]
    by_raw = {raw: (winner, key) for raw, winner, key in got}
    assert len(by_raw) == 57
    assert by_raw[gpt[30]["judgment"]][0] == "brie" and by_raw[gpt[31]["judgment"]][0] == "tie"
    assert by_raw[gpt[31]["judgment"]][1].endswith("-r1")  # line 32 is replicate 1 of line 31's comparison


def test_clusters_are_distinct_prompt_texts_and_the_interval_is_the_clustered_one(three_b) -> None:
    _, _, report, _ = three_b
    gpt_lines = [json.loads(l) for l in THREE[0].read_text(encoding="utf-8").splitlines()]
    texts = {l["prompt"] for l in gpt_lines}
    assert len(texts) == 25 and len({(l["config_name"], l["prompt"]) for l in gpt_lines}) > 25
    assert report["run"]["n_prompts"] == 25
    gpt = next(j for j in report["judges"] if j["judge"] == "gpt-4o")
    assert gpt["n_prompts"] == 25 and gpt["rows"]["n_prompts"] == 25 and gpt["ci95"]["n_prompts"] == 25
    # Independent computation: strict outcomes of the 57 rows clustered by prompt text.
    strict = np.array([1.0 if _winner(l["judgment"]) == "win" else 0.0 for l in gpt_lines])
    clusters = np.array(["text\x1f" + " ".join(l["prompt"].casefold().split()) for l in gpt_lines], dtype=object)
    ci = stats.rate_ci(strict, clusters)
    shown = gpt["rows"]["strict_ci95"]
    assert (shown["low"], shown["high"]) == pytest.approx((ci.low, ci.high))
    assert shown["n_prompts"] == 25 and shown["trusted"]
    # The Wilson row-level interval for 53/57 is shown too: 83.3%-97.2%.
    w = gpt["rows"]["strict_wilson95"]
    assert (round(100 * w["low"], 1), round(100 * w["high"], 1)) == (83.3, 97.2)
    # Clustering by (section, prompt) would have counted 38 "prompts" for the same rows (42 on the real file).
    assert len({(l["config_name"], l["prompt"]) for l in gpt_lines}) == 38
    # Comparison level differs from row level by the one re-judgment printed in the other order.
    assert gpt["n"] == 56 and gpt["rows"]["rows_folded_by_order"] == 1
    assert "Row level counts every stored judgment once" in report["method"]["rows"]


def test_neither_is_a_tie_and_score_lines_are_scores(three_b) -> None:
    _, _, report, _ = three_b
    crit = {(c["judge"], c["criterion"]): c for c in report["criteria"]}
    names = {c for j, c in crit if j == "gpt-4o"}
    assert names == {"creativity", "coherence", "depth", "engagement", "writing_quality"}
    gpt_lines = _lines([THREE[0]])

    def score(line: dict, label: str, name: str) -> int:
        row = next(l for l in line["judgment"].splitlines() if l.startswith(f"Response {label} -"))
        return int(row.split(f"{name}: ", 1)[1].split(",")[0])

    base = np.mean([score(l, "A", "Creativity") for l in gpt_lines])
    cand = np.mean([score(l, "B", "Creativity") for l in gpt_lines])
    c = crit[("gpt-4o", "creativity")]
    assert c["mean_baseline"] == pytest.approx(base) and c["mean_candidate"] == pytest.approx(cand)
    quality = crit[("gpt-4o", "writing_quality")]
    assert quality["mean_candidate"] == pytest.approx(np.mean([score(l, "B", "Quality") for l in gpt_lines]))
    # "Winner: Neither (Tie)" (line 32) is a tie, listed as read differently from the stored "unknown".
    dis = [(Path(d["file"]).name, d["line"], d["stored"], d["parsed"]) for d in report["legacy"]["disagreements"]]
    assert ("comprehensive_eval_3b_like_gpt4o.jsonl", 32, "unknown", "tie") in dis
    assert next(j for j in report["judges"] if j["judge"] == "gpt-4o")["rows"]["invalid"] == 0


def test_files_without_judge_model_take_the_judge_from_a_field_or_from_the_judge_option(tmp_path: Path) -> None:
    db, run_id, _ = _import(tmp_path, FIX / "claude_judge_evaluation.jsonl")
    report = _report(db, run_id)
    (j,) = report["judges"]
    assert j["judge"] == SONNET and j["rows"]["n"] == 4
    assert (j["wins"], j["ties"]) == (3, 1)  # line 1 is "Winner: Neither (Tie)"
    nojudge = FIX / "out_of_domain_3b_judged_nojudge.jsonl"
    refused = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "import", "legacy", str(nojudge)], env=ENV)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    (line,) = refused.output.strip().splitlines()
    assert line.startswith(f"error: {nojudge}:1: judge_model: missing field") and "--judge NAME" in line
    db2, run2, _ = _import(tmp_path / "b", nojudge, extra=("--judge", "claude-3-opus-20240229"))
    (j2,) = _report(db2, run2)["judges"]
    assert j2["judge"] == "claude-3-opus-20240229" and (j2["wins"], j2["losses"]) == (3, 1)


@pytest.mark.parametrize("raw, field", [
    ('"temperature": NaN', "temperature"),
    ('"temperature": Infinity', "temperature"),
    ('"max_tokens": 1e400', "max_tokens"),
    ('"max_tokens": 0', "max_tokens"),
    ('"max_tokens": 512.5', "max_tokens"),
    ('"temperature": -1', "temperature"),
])
def test_bad_numbers_are_one_line_bad_input(tmp_path: Path, raw: str, field: str) -> None:
    good = THREE[0].read_text(encoding="utf-8").splitlines()[0]
    obj = json.loads(good)
    obj.pop(field)
    bad = json.dumps(obj)[:-1] + ", " + raw + "}"
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + bad + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "import", "legacy", str(path)], env=ENV)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {path}:2: {field}: ") and "Traceback" not in result.output


def test_legacy_html_never_says_labels_were_randomised(three_b, tmp_path: Path) -> None:
    db, run_id, _, _ = three_b
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["--db", str(db), "report", run_id, "--html", str(out)], env=ENV)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "labels are randomised" not in html.replace("labels are randomised in runs made by", "")
    assert "Because labels are randomised" not in html
    assert 'id="label-bias-not-randomised"' in html and "label A was always the baseline" in html
    assert 'id="row-level"' in html and "re-judgment(s) of a comparison by the same judge kept" in html


def test_markdown_keeps_the_caveats(three_b) -> None:
    db, run_id, report, _ = three_b
    md = CliRunner().invoke(cli, ["--db", str(db), "report", run_id, "--markdown"], env=ENV)
    assert md.exit_code == 0
    caveats = md.stdout.split("### Caveats", 1)[1].split("###", 1)[0]
    for w in report["warnings"]:
        assert f"**{w['kind']}**" in caveats
    assert "labels were NOT randomised" in caveats


@pytest.mark.parametrize("text, label", [
    ("Winner: Neither (Tie)\nReasoning: both are thin.", "tie"),
    ("**Winner:** Neither", "tie"),
    ("Winner: None - both equally good", "tie"),
    ("Verdict: draw.", "tie"),
    ("Winner: Both are good but B wins", "invalid"),  # hedged prose is not read as a tie
    ("Winner: Neither is better", "invalid"),
    ("Winner: B", "B"),
])
def test_the_original_tools_tie_words_are_ties_and_nothing_else(text: str, label: str) -> None:
    from brie_bench.report.legacy import read_judgment

    assert read_judgment(text).label == label


def test_score_lines_map_to_criteria_and_drop_out_of_range_values() -> None:
    from brie_bench.report.legacy import legacy_scores

    text = ("Response A - Creativity: 3, Coherence: 4, Depth: 2, Engagement: 3, Quality: 4\n"
            "**Response B** - Creativity: 5/5, Coherence: 6, Depth & Insight: 5, Writing Quality: 4\nWinner: B")
    assert legacy_scores(text) == {
        "A": {"creativity": 3, "coherence": 4, "depth": 2, "engagement": 3, "writing_quality": 4},
        "B": {"creativity": 5, "depth": 5, "writing_quality": 4}}
    assert legacy_scores("Winner: A") is None
