"""The verdict: the rules of `brie_bench.conclusion` over a table of cases, and the smoke run's verdict.

The rules are a pure function of the report, so the table feeds them report records
(`brie_bench.report.schema`, built by tests/report_records.py) with the figures each case needs; the last
tests run the real smoke suite and check that every report form opens with its verdict.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from brie_bench.conclusion import (BETTER, MIXED, NO_CONCLUSION, NULL, UNDECIDED, WORSE, conclude, judge_readings,
                                   verdict_entry)
from brie_bench.report.schema import Report
from helpers import run_smoke_cli
from report_records import bias, failed_judge, judge, report


FOLLOWS = ("this judge's verdicts follow the position of the answers, not their content (the answer shown first "
           "won 100% of 40 decisive verdicts, whichever answer it was); no win rate can come from it")

#: (id, report, finding, agree, caveat kind, phrases the text must hold)
CASES = [
    ("clear win", report([judge("gpt4o", 0.93, 0.86, 0.98), judge("gemini", 0.9, 0.82, 0.96)]),
     BETTER, True, None,
     ["brie is better than base according to gpt4o (93% [86–98%]) and gemini (90% [82–96%]), 25 prompts",
      "The 2 judges that decide agree."]),
    ("clear loss", report([judge("claude", 0.2, 0.1, 0.33)]), WORSE, None, None,
     ["brie is worse than base according to its only judge, claude (20% [10–33%]), 25 prompts."]),
    ("split judges", report([judge("gpt4o", 0.8, 0.7, 0.9), judge("claude", 0.3, 0.2, 0.4)]), MIXED, False, None,
     ["The judges disagree about brie against base: better according to gpt4o (80% [70–90%], 25 prompts), "
      "worse according to claude (30% [20–40%], 25 prompts)."]),
    ("better and inconclusive", report([judge("gpt4o", 0.93, 0.86, 0.98), judge("gemini", 0.9, 0.82, 0.96),
                                        judge("claude", 0.55, 0.45, 0.65)]),
     BETTER, False, None,
     ["better than base according to gpt4o (93% [86–98%]) and gemini (90% [82–96%]), 25 prompts",
      "The judges do not agree: claude (55% [45–65%], 25 prompts) finds no detectable difference."]),
    ("all judges biased or uninformative",
     report([judge("always-a", None, None, None, information=FOLLOWS), judge("tiny", 0.45, 0.2, 0.7)],
            [bias("tiny", label=True)]),
     NO_CONCLUSION, None, "advice",
     ["No conclusion about brie against base: none of its 2 judges can decide, so no conclusion follows",
      "always-a: its verdicts follow the position of the answers",
      "tiny: its verdicts follow the label and position of the answers, not their content (label A won 89% of 40",
      "Use a stronger judge"]),
    ("underpowered null", report([judge("claude", 0.52, 0.4, 0.64, mde=0.12)]), NULL, None, "underpowered",
     ["No detectable difference between brie and base according to its only judge, claude (52% [40–64%])",
      "Caveat: this run could only detect a true win rate above 62% or below 38% (minimum detectable effect "
      "±12 points at 80% power)"]),
    ("one judge with no valid verdict",
     report([judge("gpt4o", 0.93, 0.86, 0.98), judge("served", None, None, None, n_valid=0, invalid=50,
                                                      trusted=False, note="cannot be trusted: no valid verdict")]),
     BETTER, None, "left-out",
     ["brie is better than base according to gpt4o (93% [86–98%]), 25 prompts.", "Of its 2 judges only gpt4o decides.",
      "Caveat: served cannot decide: it gave no valid verdict."]),
    ("a judge whose every call failed",
     report([judge("gpt4o", 0.93, 0.86, 0.98)], failed=[failed_judge("gemini", 12, "auth", "bad key")]),
     BETTER, None, "left-out", ["Caveat: gemini cannot decide: all 12 of its calls failed (auth: bad key)."]),
    ("too few prompts to trust", report([judge("gpt4o", 1.0, 0.4, 1.0, n_prompts=3, trusted=False,
                                               note="cannot be trusted: only 3 prompts")], n_prompts=3),
     NO_CONCLUSION, None, "advice",
     ["Its only judge, gpt4o, cannot decide: its win-rate interval cannot be trusted (only 3 prompts), so no "
      "conclusion follows from it.", "Add prompts"]),
    ("few prompts, trusted", report([judge("gpt4o", 0.95, 0.7, 1.0, n_prompts=8)], n_prompts=8),
     BETTER, None, "few-prompts", ["Caveat: only 8 prompts"]),
    ("a length bias could fake the win", report([judge("gpt4o", 0.9, 0.8, 0.96)], [bias("gpt4o", length=True)]),
     BETTER, None, "length-bias",
     ["Caveat: gpt4o favours the longer answer (the candidate wins 95% when longer, 30% when shorter), so much of "
      "this may be answer length; at equal length its win rate is 55% [45–65%]."]),
    ("legacy labels", report([judge("gpt4o", 0.9, 0.8, 0.96)], [bias("gpt4o", length=True)], legacy=True),
     BETTER, None, "legacy-labels", ["labels were not randomised"]),
    ("a win despite a label lean still decides", report([judge("gpt4o", 0.9, 0.8, 0.96)], [bias("gpt4o", label=True)]),
     BETTER, None, "bias", ["Caveat: gpt4o's verdicts also follow the label and position of the answers"]),
    ("an uninformative judge beside a winner", report([judge("gpt4o", 0.9, 0.8, 0.96),
                                                       judge("always-a", None, None, None, information=FOLLOWS)]),
     BETTER, None, "no-information",
     ["Of its 2 judges only gpt4o decides.", "Caveat: always-a was left out: its verdicts follow the position of the answers"]),
]


@pytest.mark.parametrize(("report_", "finding", "agree", "caveat", "phrases"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rules_table(report_: Report, finding: str, agree: bool | None, caveat: str | None,
                     phrases: list[str]) -> None:
    (c,) = conclude(report_)
    assert c.finding == finding, c.text
    assert c.agree is agree, c.text
    assert (c.caveat.kind if c.caveat else None) == caveat, c.text
    for phrase in phrases:
        assert phrase in c.text, f"{phrase!r} not in {c.text!r}"
    assert 1 <= len(c.sentences) <= 3, c.sentences
    assert all(s.endswith((".", "?).")) for s in c.sentences), c.sentences


def test_the_point_estimate_never_decides() -> None:
    """A 95% estimate whose interval reaches below 50% is no win; an untrusted one decides nothing."""
    (c,) = conclude(report([judge("gpt4o", 0.95, 0.45, 0.99)]))
    assert c.finding == NULL
    readings = judge_readings(report([judge("gpt4o", 0.99, 0.9, 1.0, trusted=False, note="cannot be trusted: x")]))
    assert [r.reading for r in readings] == [UNDECIDED]
    # The boundary: an interval that touches 50% is not entirely above it.
    (c,) = conclude(report([judge("gpt4o", 0.7, 0.5, 0.85)]))
    assert c.finding == NULL


def test_several_candidates_get_one_conclusion_each() -> None:
    r = report([judge("gpt4o", 0.9, 0.8, 0.96, cand="brie-a"), judge("gpt4o", 0.3, 0.2, 0.4, cand="brie-b")])
    verdict = verdict_entry(r)
    assert [(c.candidate, c.finding) for c in verdict.candidates] == [("brie-a", BETTER), ("brie-b", WORSE)]
    assert verdict.text == " ".join(c.text for c in verdict.candidates)
    plain = verdict.to_json_dict()
    assert json.loads(json.dumps(plain)) == plain  # plain JSON
    # Schema 3: the candidate's conclusion is `finding`; "outcome" is only the 1 / 0.5 / 0 coding of a comparison.
    assert [c["finding"] for c in plain["candidates"]] == [BETTER, WORSE]
    assert not any("outcome" in c for c in plain["candidates"])


# --------------------------------------------------------------------------- the real smoke run


@pytest.fixture(scope="module")
def smoke_db(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path, tiny_base_path: Path,
             tiny_adapter_path: Path, tiny_judge_path: Path) -> Path:
    db = tmp_path_factory.mktemp("smoke-verdict") / "smoke.db"
    run_smoke_cli(db, tiny_cache)
    return db


def _cli(db: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_smoke_verdict_says_its_judge_follows_the_label_and_no_conclusion_follows(smoke_db: Path,
                                                                                        tmp_path: Path) -> None:
    done = _cli(smoke_db, "report", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report)[:6] == ["schema", "schema_version", "brie_bench_version", "generated_at", "run", "verdict"]
    assert report["schema_version"] == 3  # 3 renamed verdict.candidates[].outcome to `finding`
    (c,) = report["verdict"]["candidates"]
    assert c["finding"] == NO_CONCLUSION and "outcome" not in c and c["judges"][0]["reading"] == UNDECIDED
    text = report["verdict"]["text"]
    assert "tiny-judge" in text and re.search(r"verdicts follow the label( and position)? of the answers", text)
    assert "so no conclusion follows from it" in text
    # Every form opens with it: terminal, Markdown, HTML, and the model card's body.
    first = _flat(text)[:80]
    terminal = _cli(smoke_db, "report")
    assert terminal.returncode == 0 and _flat(terminal.stdout).startswith("Verdict: " + first)
    markdown = _cli(smoke_db, "report", "--markdown")
    assert markdown.returncode == 0
    assert markdown.stdout.split("\n")[2].startswith("**Verdict:** " + first)
    html = _cli(smoke_db, "report", "--html", str(tmp_path / "r.html"))
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    body = page.split("</header>", 1)[1]
    assert body.lstrip().startswith('<section id="verdict"') and first in _flat(body)
    assert '<p class="verdict-no-conclusion">' in body  # the finding names the paragraph's class
    card = tmp_path / "README.md"
    made = _cli(smoke_db, "report", "--model-card", str(card))
    assert made.returncode == 0, made.stderr
    section = card.read_text(encoding="utf-8").split("<!-- brie-bench:begin", 1)[1]
    assert _flat(section.split("\n", 1)[1]).startswith("## Brie Bench: smoke **Verdict:** " + first)
    # ... and the gate cannot decide on it (exit 3), saying the same.
    gate = _cli(smoke_db, "gate")
    assert gate.returncode == 3, gate.stdout + gate.stderr
    assert first in _flat(gate.stdout) and "gate cannot decide (exit 3)" in gate.stdout
