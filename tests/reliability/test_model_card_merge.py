"""Model cards: only real marker lines count, CRLF survives, a hostile front matter is one line.

`updated_card` is the merge `report --model-card` runs; the CLI cases go through
a real legacy import in a real SQLite file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.errors import InputError
from brie_bench.modelcard import BEGIN_MARKER, END_MARKER, updated_card
from brie_bench.report.model import build_report
from brie_bench.report.schema import Report
from brie_bench.store import Store

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"
SECTION = "| judge | win rate |\n| --- | --- |\n| j | 60% |\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("card") / "r.db"
    result = CliRunner().invoke(cli, ["--db", str(path), "import", "legacy", str(LEGACY / "judge_claude.jsonl")])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def report(db: Path) -> Report:
    with Store(db, readonly=True) as store:
        return build_report(store)


def body(card: str) -> str:
    return card.split("\n---\n", 1)[1] if card.startswith("---\n") else card


def test_markers_quoted_in_prose_are_not_taken_as_the_real_markers(report: Report) -> None:
    user = ("# Me\n\nThe results go between `<!-- brie-bench:begin -->` and `" + END_MARKER + "`, so please\n"
            "do not edit that part. Everything in this paragraph is mine.\n\n## Usage\n\nKeep this too.\n")
    out = updated_card(user, report, SECTION)
    assert out.count(BEGIN_MARKER) == 1 and "Everything in this paragraph is mine." in out
    assert body(out).startswith(user)  # the user's text is kept whole; our section is appended after it
    assert out.rstrip().endswith(END_MARKER)


def test_markers_inside_a_code_fence_are_not_taken_as_the_real_markers(report: Report) -> None:
    user = ("# Me\n\nHow the section looks:\n\n```markdown\n" + BEGIN_MARKER + "\n| numbers |\n" + END_MARKER
            + "\n```\n\nText after the example, which must survive.\n\n~~~~\n" + END_MARKER + "\n~~~~\n")
    out = updated_card(user, report, SECTION)
    assert body(out).startswith(user), out
    assert "Text after the example, which must survive." in out
    # Running it again replaces the real section (outside the fences) and leaves the examples alone.
    again = updated_card(out, report, SECTION.replace("60%", "70%"))
    assert body(again).startswith(user) and "70%" in again and "60%" not in again.replace(user, "")


def test_real_marker_lines_are_still_replaced_in_place(report: Report) -> None:
    user = f"# Me\n\nBefore.\n\n  {BEGIN_MARKER}\nold numbers\n{END_MARKER}\n\nAfter.\n"
    out = updated_card(user, report, SECTION)
    assert "old numbers" not in out and "Before." in out and out.endswith(f"{END_MARKER}\n\nAfter.\n")


def test_a_lone_real_marker_is_still_refused_but_a_quoted_one_is_not(report: Report) -> None:
    with pytest.raises(InputError, match="one Brie Bench marker"):
        updated_card(f"# Me\n\n{END_MARKER}\n", report, SECTION)
    updated_card(f"# Me\n\nSee {END_MARKER} for details.\n", report, SECTION)


def test_crlf_line_endings_are_kept_and_the_body_is_byte_for_byte(db: Path, tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    user_body = "\r\n# Me\r\n\r\nMy words,  with two spaces.\r\n\r\n```\r\ncode\r\n```\r\n"
    card.write_bytes(("---\r\nlicense: mit\r\n---\r\n" + user_body).encode("utf-8"))
    result = CliRunner().invoke(cli, ["--db", str(db), "report", "--model-card", str(card)])
    assert result.exit_code == 0, result.output
    data = card.read_bytes()
    assert user_body.encode() in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # every line break written is CRLF, like the card's own
    first = data
    result = CliRunner().invoke(cli, ["--db", str(db), "report", "--model-card", str(card)])
    assert result.exit_code == 0 and "up to date" in result.output, result.output
    assert card.read_bytes() == first


@pytest.mark.parametrize("front,fragment", [
    ("x: !!python/object/apply:os.system ['touch pwned']\n", "front matter is not YAML"),
    ("model-index: hello\n", "model-index"),
    ("model-index:\n- name: x\n", "model-index"),
    ("model-index:\n- name: x\n  results: 5\n", "model-index"),
    ("- just\n- a list\n", "front matter cannot be read"),
    ("a: [unclosed\n", "front matter is not YAML"),
], ids=["python-apply-tag", "model-index-string", "model-index-no-results", "results-not-a-list", "not-a-mapping",
        "broken-yaml"])
def test_a_hostile_or_malformed_front_matter_is_one_line_and_exit_2(db: Path, tmp_path: Path, front: str,
                                                                     fragment: str) -> None:
    card = tmp_path / "README.md"
    text = f"---\n{front}---\n\n# Me\n"
    card.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--db", str(db), "report", "--model-card", str(card)], env={"COLUMNS": "240"})
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [x for x in result.output.splitlines() if x.startswith("error")]
    assert len(lines) == 1 and str(card) in lines[0] and fragment in lines[0], result.output
    assert "Traceback" not in result.output
    assert card.read_text(encoding="utf-8") == text and not (tmp_path / "pwned").exists()
