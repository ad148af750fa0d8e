"""The verdict parser reads what real judges write, and answers invalid rather than guess."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brie_bench.records import DEFAULT_CRITERIA
from brie_bench.verdicts import (
    verdict_like_text,
    VERDICT_SCHEMA,
    ParsedVerdict,
    extract_json_objects,
    parse_json_verdict,
    parse_scores,
    parse_verdict,
    validate_structured,
    verdict_schema,
)

# (judge output, expected label). Written to look like what Claude, GPT-4o, Gemini and
# small local models actually produce with and without following the template.
CASES: list[tuple[str, str]] = [
    # --- the documented format -------------------------------------------------------
    ("Reasoning: A builds a real argument about Heidegger's Dasein; B lists clichés.\n"
     "creativity: A=4, B=2\ncoherence: A=5, B=3\ndepth: A=4, B=2\nengagement: A=4, B=3\n"
     "writing_quality: A=5, B=3\nWinner: A", "A"),
    ("Reasoning: Both are competent; B's imagery is fresher.\ncreativity: A=3, B=4\n"
     "coherence: A=4, B=4\nWinner: B", "B"),
    ("Reasoning: They are equally good.\ncreativity: A=3, B=3\nWinner: tie", "tie"),
    ("Winner: Tie", "tie"),
    ("Winner: A", "A"),
    # --- markdown -------------------------------------------------------------------
    ("## Evaluation\n\nResponse A offers a layered reading of Levinas, while Response B stays "
     "on the surface.\n\n**Winner:** Response A", "A"),
    ("### Comparison\n\n- **Creativity**: B takes more risks.\n- **Depth**: B engages with the "
     "anxieties of the prompt.\n\n**Winner:** Response B", "B"),
    ("**Winner: B**", "B"),
    ("## Winner\n\n**Response B**\n\nB is more contemplative and less listy.", "B"),
    ("### Final Verdict\n\nA", "A"),
    ("> **Verdict:** Response A", "A"),
    ("1. Creativity: A wins\n2. Depth: B wins\n3. Winner: tie", "tie"),
    ("Winner: `B`", "B"),
    ("__Winner:__ A", "A"),
    # --- spellings of the verdict line ---------------------------------------------------
    ("After careful review of both answers.\n\nWinner: [B]", "B"),
    ("Winner - Tie", "tie"),
    ("WINNER: Response A", "A"),
    ("Final verdict: B", "B"),
    ("My final verdict is: Response B.", "B"),
    ("The winner is Response A.", "A"),
    ("Overall winner: Assistant B", "B"),
    ("Winner (A, B or tie): A", "A"),
    ("Winner: It's a tie.", "tie"),
    ("Winner: Both equally", "tie"),
    ("Winner: A 🏆", "A"),
    ("Winner: Response A, by a narrow margin.", "A"),
    ("Preferred response: B", "B"),
    ("Winner: A wins on depth and coherence.", "A"),
    # --- MT-Bench style ----------------------------------------------------------------
    ("Assistant A provides a more thorough answer, whereas assistant B is brief.\n\n[[A]]", "A"),
    ("Both assistants are equally helpful. My final verdict is [[C]].", "tie"),
    ("Final verdict: [[B]]", "B"),
    ("Overall I judge them even: [[tie]]", "tie"),
    # --- trailing reasoning that mentions the other label ---------------------------------
    ("Winner: A\n\nWhile Response B had a stronger opening image, A sustains its argument and "
     "B loses the thread halfway.", "A"),
    ("Winner: B (A was close, but its ending is abrupt)", "B"),
    ("Winner: A — B is too short to engage with the question.", "A"),
    ("Winner: A\n\nNote: B would win on brevity alone, and B's second paragraph is lovely.", "A"),
    # --- words that merely contain "tie" ---------------------------------------------
    ("Response B discusses entities, identities and anxieties with care; A merely lists "
     "properties.\n\nWinner: B", "B"),
    ("A ties the argument to Kierkegaard; B ties it to nothing. Both mention entities.\n"
     "Winner: A", "A"),
    ("The responses address the anxieties and uncertainties of modern life and their ties "
     "to tradition.", "invalid"),
    # --- a verdict mentioned in passing, then the verdict line ---------------------------------
    ("Initial impression - Winner: A\n\nOn reflection, B's structure is better.\n\nWinner: B", "B"),
    # --- conflicting verdict lines: invalid, never "the last one wins" ----------------
    ("Winner: B\n...\nActually, rereading both, A answers the question and B does not.\n"
     "Final verdict: A", "invalid"),
    # --- contradictory or missing: invalid, never a guess ---------------------------------
    ("Winner: A or B", "invalid"),
    ("Winner: A/B", "invalid"),
    ("Winner: A, B", "invalid"),
    ("Winner: A and B", "invalid"),
    ("Winner: A. Actually, the winner is B.", "invalid"),
    ("[[A]] [[B]]", "invalid"),
    ("Winner: A\nWinner: Neither", "invalid"),
    ("Winner: <A, B or tie>", "invalid"),
    ("Winner: A|B|tie", "invalid"),
    ("Both responses have merits. A is more creative, while B is more coherent. "
     "It depends on what the reader values.", "invalid"),
    ("Response B is better.", "invalid"),
    ("A is the winner in my view, although B has moments.", "invalid"),
    ("", "invalid"),
    ("   \n\n  ", "invalid"),
    # --- refusals ---------------------------------------------------------------------
    ("I'm sorry, but I can't help with comparing these responses.", "invalid"),
    ("I cannot determine a winner because both responses are incomplete.\nWinner: none", "invalid"),
    ("As an AI, I don't have personal preferences between texts.", "invalid"),
    # --- JSON ---------------------------------------------------------------------------
    ('{"reasoning": "A is deeper.", "scores": {"A": {"depth": 5}, "B": {"depth": 3}}, "winner": "A"}', "A"),
    ('Here is my evaluation:\n\n```json\n{\n  "reasoning": "B has richer imagery.",\n'
     '  "winner": "B"\n}\n```', "B"),
    ('```json\n{"winner": "tie", "reasoning": "Equally good."}\n```', "tie"),
    ('{"winner": "C"}', "invalid"),
    ('{"winner": "Response A"}', "invalid"),
    ('Winner: A\n\n{"winner": "B"}', "invalid"),
    ('{"winner": "B"}\n\nOn second thought:\nWinner: A', "invalid"),
    ('{"winner": "A"}\n\nWinner: A', "A"),
]


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_realistic_judge_outputs(text: str, expected: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.label == expected, (text, parsed)
    if expected == "invalid":
        assert parsed.invalid_reason, "an invalid verdict must say why"
    else:
        assert parsed.invalid_reason is None


def test_refusal_reason_is_specific() -> None:
    parsed = parse_verdict("I'm sorry, but I can't evaluate these responses.")
    assert parsed.label == "invalid"
    assert "refused" in (parsed.invalid_reason or "")


def test_contradiction_reason_is_specific() -> None:
    assert "contradictory" in (parse_verdict("Winner: A or B").invalid_reason or "")


def test_unrecognised_last_line_beats_earlier_valid_one() -> None:
    parsed = parse_verdict("Winner: A\n\nWinner: the first one, I think")
    assert parsed.label == "invalid"
    assert "unrecognised" in (parsed.invalid_reason or "")


# --- scores -------------------------------------------------------------------------------

FULL = """Reasoning: A is more original; B is tidier.
creativity: A=4, B=2
coherence: A=3, B=5
depth: A=4, B=3
engagement: A=5, B=3
writing_quality: A=4, B=4
Winner: A"""


def test_scores_documented_format() -> None:
    parsed = parse_verdict(FULL)
    assert parsed.scores == {
        "A": {"creativity": 4, "coherence": 3, "depth": 4, "engagement": 5, "writing_quality": 4},
        "B": {"creativity": 2, "coherence": 5, "depth": 3, "engagement": 3, "writing_quality": 4},
    }
    assert parsed.reasoning == "A is more original; B is tidier."


def test_scores_tolerate_markdown_and_spelling() -> None:
    text = ("- **Creativity**: A = 4/5, B = 3/5\n* Writing Quality: A: 5, B: 2\n"
            "**Depth:** Response A=2, Response B=5\nWinner: tie")
    assert parse_verdict(text).scores == {
        "A": {"creativity": 4, "depth": 2, "writing_quality": 5},
        "B": {"creativity": 3, "depth": 5, "writing_quality": 2},
    }


def test_out_of_range_scores_are_dropped_not_clamped() -> None:
    text = "creativity: A=7, B=3\ndepth: A=0, B=5\ncoherence: A=4.5, B=4\nengagement: A=8/10, B=4/5\nWinner: B"
    assert parse_verdict(text).scores == {"B": {"creativity": 3, "depth": 5, "coherence": 4, "engagement": 4}}


def test_prose_starting_with_a_criterion_is_not_a_score_line() -> None:
    text = "creativity: A=4, B=2\nCreativity: both take risks overall.\nWinner: A"
    parsed = parse_verdict(text)
    assert parsed.scores == {"A": {"creativity": 4}, "B": {"creativity": 2}}
    assert parsed.reasoning and "both take risks" in parsed.reasoning


def test_custom_criteria() -> None:
    text = "humour: A=2, B=5\nrigour: A=4, B=1\ncreativity: A=5, B=5\nWinner: B"
    assert parse_scores(text, ["humour", "rigour"]) == {"A": {"humour": 2, "rigour": 4},
                                                         "B": {"humour": 5, "rigour": 1}}


def test_no_scores_is_none() -> None:
    assert parse_verdict("Winner: A").scores is None


# --- structured verdicts ------------------------------------------------------------------

def test_schema_shape() -> None:
    assert VERDICT_SCHEMA["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    assert set(VERDICT_SCHEMA["required"]) == {"winner", "scores", "reasoning"}
    per_label = VERDICT_SCHEMA["properties"]["scores"]["properties"]["A"]
    assert list(per_label["properties"]) == list(DEFAULT_CRITERIA)
    assert per_label["properties"]["depth"] == {"type": "integer", "minimum": 1, "maximum": 5}
    custom = verdict_schema(["wit"])
    assert list(custom["properties"]["scores"]["properties"]["B"]["properties"]) == ["wit"]
    json.dumps(VERDICT_SCHEMA)  # serialisable for every provider


def test_validate_structured_good() -> None:
    obj = {"reasoning": " B is deeper. ", "winner": "B",
           "scores": {"A": {"depth": 2, "creativity": 3}, "B": {"depth": 5, "Writing Quality": 4}}}
    assert validate_structured(obj) == ParsedVerdict(
        "B", {"A": {"depth": 2, "creativity": 3}, "B": {"depth": 5, "writing_quality": 4}}, "B is deeper.", None)


@pytest.mark.parametrize("obj, reason", [
    ([], "not an object"),
    ("A", "not an object"),
    ({"reasoning": "x"}, "no 'winner'"),
    ({"winner": 1}, "not a string"),
    ({"winner": None}, "not a string"),
    ({"winner": "both"}, "must be A, B or tie"),
    ({"winner": "A or B"}, "must be A, B or tie"),
])
def test_validate_structured_invalid(obj: object, reason: str) -> None:
    parsed = validate_structured(obj)
    assert parsed.label == "invalid"
    assert reason in (parsed.invalid_reason or "")


def test_validate_structured_drops_bad_scores() -> None:
    obj = {"winner": "tie", "scores": {"A": {"depth": 6, "coherence": True, "creativity": 2.0, "engagement": "4",
                                              "unknown": 3}, "B": "high", "C": {"depth": 3}}}
    parsed = validate_structured(obj)
    assert parsed.label == "tie"
    assert parsed.scores == {"A": {"creativity": 2}}


def test_validate_structured_accepts_letter_case() -> None:
    assert validate_structured({"winner": "a"}).label == "A"
    assert validate_structured({"winner": "TIE"}).label == "tie"


def test_parse_json_verdict_requires_json() -> None:
    assert parse_json_verdict("Winner: A").label == "invalid"
    assert parse_json_verdict("").invalid_reason == "empty answer"
    assert parse_json_verdict('noise {"a": 1} then ```json\n{"winner": "B"}\n``` done').label == "B"


def test_extract_json_objects_skips_garbage() -> None:
    text = 'x { not json } {"a": {"b": 1}} [1] {"c": 2'
    assert [obj for _, _, obj in extract_json_objects(text)] == [{"a": {"b": 1}}]


def test_json_scores_win_over_text_when_json_is_the_verdict() -> None:
    text = 'creativity: A=1, B=1\n{"winner": "A", "scores": {"A": {"creativity": 5}, "B": {"creativity": 2}}}'
    assert parse_verdict(text).scores == {"A": {"creativity": 5}, "B": {"creativity": 2}}


# --- properties -----------------------------------------------------------------------------

# Anything that could make a line look like a verdict. Noise without these never holds one.
_VERDICT_WORDS = ("winner", "verdict", "decision", "answer", "choice", "prefer", "better", "stronger",
                  "superior", "winning", "judg", "result", "conclusion", "[[", "{")

VERDICT_LINES = [
    ("Winner: A", "A"), ("Winner: B", "B"), ("Winner: tie", "tie"), ("**Winner:** Response B", "B"),
    ("Winner: [A]", "A"), ("Winner - Tie", "tie"), ("WINNER: Response A", "A"), ("Final verdict: B", "B"),
    ("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"), ("## Winner: **A**", "A"), ("Verdict: Response B.", "B"),
]


def _no_verdict_words(text: str) -> bool:
    lowered = text.lower()
    return not any(word in lowered for word in _VERDICT_WORDS)


noise = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300,
).filter(_no_verdict_words)
prose_noise = st.lists(
    st.sampled_from(["A", "B", "tie", "ties", "entities", "Response", "is", "the", "more", "coherent",
                     "anxieties", "both", "equal", "-", ":", "**", "#", "\n", "\n\n", "creativity:", "A=4,",
                     "B=2", "I", "think", "and", "or", ".", "(", ")", "Being", "Dasein", "draw"]),
    max_size=60,
).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(before=st.one_of(noise, prose_noise), after=st.one_of(noise, prose_noise),
       line=st.sampled_from(VERDICT_LINES))
def test_verdict_line_survives_noise(before: str, after: str, line: tuple[str, str]) -> None:
    text, expected = line
    parsed = parse_verdict(f"{before}\n{text}\n{after}")
    assert parsed.label == expected, parsed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=st.one_of(noise, prose_noise))
def test_no_verdict_line_is_always_invalid(text: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.label == "invalid"
    assert parsed.invalid_reason


@settings(max_examples=100, deadline=None)
@given(a=st.integers(-3, 9), b=st.integers(-3, 9))
def test_scores_in_range_kept_out_of_range_dropped(a: int, b: int) -> None:
    scores = parse_verdict(f"depth: A={a}, B={b}\nWinner: A").scores or {}
    assert scores.get("A", {}).get("depth") == (a if 1 <= a <= 5 else None)
    assert scores.get("B", {}).get("depth") == (b if 1 <= b <= 5 else None)


def test_parser_is_fast_on_long_answers() -> None:
    import time

    text = ("Response A considers entities and anxieties. " * 2000 + "\n") * 5 + "{ " * 2000 + "\nWinner: B"
    start = time.perf_counter()
    assert parse_verdict(text).label == "B"
    assert time.perf_counter() - start < 20.0  # a guard against catastrophic backtracking, not a speed target


def test_hostile_json_does_not_crash_or_hang() -> None:
    import time

    start = time.perf_counter()
    deep = '{"a":' * 50_000 + "\nWinner: A"
    assert parse_verdict(deep).label == "A"
    unterminated = '{"reasoning": "' + "x {" * 20_000 + "\nWinner: B"
    assert parse_verdict(unterminated).label == "B"
    assert time.perf_counter() - start < 30.0  # never a hang


@given(st.lists(st.sampled_from(["Winner", "winner:", "VERDICT", "is", "B", "A", "tie", "[[", "]]", "[[A]]", '{"winner": "B"}',
                                 "Response", "answer", "\n", " ", "-", "*", "`", "prose", "win", "ner", "[", "]"]),
                max_size=12).map("".join))
@settings(max_examples=300, deadline=None)
def test_verdict_like_ascii_fast_path_matches_the_normalising_path(text: str) -> None:
    # A zero-width space is removed by normalisation but makes the text non-ASCII: the slow path.
    assert verdict_like_text(text) == verdict_like_text(text + "\u200b")
