"""`{"winner": "A", "winner": "B"}` is no verdict: it was stored as B, the last value `json` keeps.

A key given twice with different values is as ambiguous as two objects that
disagree, which were already invalid; the same key twice with the same value
is harmless. Every JSON path a verdict can take is checked: JSON mode with and
without a provider's structured answer, and JSON embedded in a text verdict.
"""

from __future__ import annotations

import pytest

from brie_bench.http_helpers import json_object
from brie_bench.verdicts import extract_json_objects, parse_json_verdict, parse_verdict, validate_structured

CONFLICTING = [
    '{"winner": "A", "winner": "B"}',
    '{"reasoning": "x", "winner": "b", "scores": {}, "winner": "a"}',
    '```json\n{"winner": "A",\n "winner": "tie"}\n```',
    '{"winner": "A", "scores": {"A": {"depth": 5}, "A": {"depth": 1}}}',  # nested: which scores?
    '{"winner": "A", "scores": {"A": {"depth": 5, "depth": 1}}}',
]


def judge_json_mode(text: str):
    """What the llm judge does in `verdict: json`: the backend's structured object if any, else the text."""
    structured = json_object(text)
    return validate_structured(structured) if structured is not None else parse_json_verdict(text)


@pytest.mark.parametrize("text", CONFLICTING)
def test_a_key_given_twice_with_different_values_makes_the_json_verdict_invalid(text: str) -> None:
    parsed = judge_json_mode(text)
    assert parsed.label == "invalid"
    assert "twice with different values" in (parsed.invalid_reason or "")
    assert parse_verdict(text).label == "invalid"  # a text judge that accepts JSON


def test_the_reason_names_the_winner_key_and_both_values() -> None:
    reason = parse_json_verdict('{"winner": "A", "winner": "B"}').invalid_reason
    assert reason == "structured verdict gives the key 'winner' twice with different values ('A' and 'B')"


@pytest.mark.parametrize("text, label", [
    ('{"winner": "A", "winner": "A"}', "A"),
    ('{"winner": "B", "scores": {"A": {"depth": 4}}, "scores": {"A": {"depth": 4}}}', "B"),
    ('{"winner": "tie", "reasoning": "same", "reasoning": "same"}', "tie"),
])
def test_a_key_given_twice_with_the_same_value_is_fine(text: str, label: str) -> None:
    assert judge_json_mode(text).label == label
    assert parse_verdict(text).label == label


def test_a_provider_answer_with_a_conflicting_key_is_not_taken_as_its_last_value() -> None:
    """The openai and gemini backends turn the text into `structured` with `json_object`: no silent last value."""
    assert json_object('{"winner": "A", "winner": "B"}') is None
    assert json_object('{"winner": "A", "x": {"k": 1, "k": 2}}') is None
    assert json_object('{"winner": "A", "winner": "A"}') == {"winner": "A"}
    assert json_object("[1]") is None and json_object("{" * 100_000) is None


def test_a_quoted_object_whose_last_value_agrees_still_voids_a_text_verdict() -> None:
    """A text judge's 'Winner: A' after a quoted {"winner": "B", "winner": "A"}: both winners conflict.

    Read the json way the quote said A, so A stood; it holds a B as well, and
    quoted verdicts may void a verdict, never pass for agreement.
    """
    text = 'The answer ends with {"winner": "B", "winner": "A"}.\nWinner: A'
    parsed = parse_verdict(text, accept_json=False)
    assert parsed.label == "invalid" and parsed.invalid_reason == "conflicting verdicts in the answer (B and A)"
    earlier = '{"winner": "B", "winner": "A"} then my verdict: {"winner": "A"}'
    assert parse_json_verdict(earlier).label == "invalid"
    assert parse_verdict('Quoted: {"winner": "A", "winner": "A"}\nWinner: A', accept_json=False).label == "A"


def test_extracted_objects_remember_their_conflicts_and_equal_plain_dicts() -> None:
    (_, _, obj), = extract_json_objects('x {"winner": "A", "winner": "B"} y')
    assert obj == {"winner": "B"} and obj.conflicts == {"winner": ["A", "B"]}
    (_, _, plain), = extract_json_objects('{"winner": "A", "winner": "A"}')
    assert plain.conflicts == {}
