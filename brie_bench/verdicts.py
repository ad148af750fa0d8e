"""Turn what a judge wrote into a verdict over labels: A, B, tie or invalid.

Pure functions, no I/O. The rules, in order of importance:

* Never guess. A missing, unrecognised or self-contradictory verdict is
  `invalid` with a reason; invalid is counted and reported, never a tie.
* The verdict is the judge's FINAL explicit verdict, and every other verdict
  in the answer must agree with it: conflicting verdicts make the answer
  `invalid`, never "last one wins". A judge that quotes an answer's
  `Winner: B`, `{"winner": "B"}` or `[[B]]` after (or before) its own
  `Winner: A` has not given a usable verdict, so text planted in an answer can
  at worst void a verdict, never flip it. (Version 1 let the last one win.)
* `parse_verdict(..., accept_json=False)` reads only the template's text
  format: a JSON object is then never the verdict, though it still conflicts.
* A verdict is explicit when a line *starts* with a verdict keyword
  ("Winner:", "Final verdict:", "**Winner:** Response B", "## Winner" followed
  by a line holding only the label) or holds an MT-Bench marker (`[[A]]`,
  `[[B]]`, `[[C]]`/`[[tie]]` for a tie). Labels mentioned in prose ("B is
  better in places", "entities", "ties") never count.
* A JSON object with a "winner" key anywhere in the text (fenced or not) is a
  verdict too, validated like a provider's native structured answer. A key
  given twice with different values (`{"winner": "A", "winner": "B"}`, at any
  depth) makes the object invalid, and each of its winners counts as a
  conflicting verdict, exactly as two objects that disagree do; Python's json
  would silently keep the last. The same key twice with the same value is fine.

Scores: the default template asks for one line per criterion in the form
``creativity: A=4, B=3`` (the documented text format; `A: 4/5` and a few
spellings of the criterion name are accepted). Out-of-range scores are
dropped, never clamped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal
from collections.abc import Mapping, Sequence

from brie_bench.records import DEFAULT_CRITERIA
from brie_bench.textsafe import normalise

__all__ = [
    "PARSER_VERSION", "ParsedVerdict", "VERDICT_SCHEMA", "DEFAULT_CRITERIA", "parse_verdict",
    "parse_json_verdict", "parse_scores", "validate_structured", "verdict_schema",
    "extract_json_objects", "normalise_criterion", "verdict_like_text", "JSONObject",
]

#: Bump when parsing rules change what a stored answer means; judges put it in their identity.
PARSER_VERSION = 2

VerdictLabel = Literal["A", "B", "tie", "invalid"]
Scores = dict[str, dict[str, int]]

SCORE_MIN, SCORE_MAX = 1, 5


@dataclass(frozen=True)
class ParsedVerdict:
    """A parsed judge answer. `scores` maps label -> criterion -> 1..5, or None when none were given."""

    label: VerdictLabel
    scores: Scores | None = None
    reasoning: str | None = None
    invalid_reason: str | None = None


def _invalid(reason: str, scores: Scores | None = None, reasoning: str | None = None) -> ParsedVerdict:
    return ParsedVerdict("invalid", scores=scores, reasoning=reasoning, invalid_reason=reason)


# --------------------------------------------------------------------------------------
# Structured (JSON) verdicts
# --------------------------------------------------------------------------------------

def verdict_schema(criteria: Sequence[str] = DEFAULT_CRITERIA) -> dict[str, Any]:
    """The JSON schema for a structured verdict over `criteria`.

    Written for the strictest provider modes (OpenAI strict structured outputs:
    every property required, no additional properties). Reasoning comes first
    so a model that writes fields in order thinks before it scores and decides.
    """
    score = {"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX}
    per_label = {
        "type": "object",
        "properties": {c: dict(score) for c in criteria},
        "required": list(criteria),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string",
                          "description": "A short comparison of the two responses (at most five sentences)."},
            "scores": {
                "type": "object",
                "description": "Scores from 1 (poor) to 5 (excellent) per criterion, for each response.",
                "properties": {"A": per_label, "B": dict(per_label)},
                "required": ["A", "B"],
                "additionalProperties": False,
            },
            "winner": {"type": "string", "enum": ["A", "B", "tie"],
                       "description": "The better response: A, B, or tie."},
        },
        "required": ["reasoning", "scores", "winner"],
        "additionalProperties": False,
    }


#: The structured verdict schema for the default criteria.
VERDICT_SCHEMA: dict[str, Any] = verdict_schema(DEFAULT_CRITERIA)


def normalise_criterion(name: str) -> str:
    """'Writing Quality', 'writing-quality' and 'writing_quality' are the same criterion."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lower())


def _score_value(value: Any) -> int | None:
    """An integer score in range, or None (out of range, fractional, or not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if SCORE_MIN <= value <= SCORE_MAX else None


def _structured_scores(raw: Any, criteria: Sequence[str]) -> Scores | None:
    """Valid scores from a structured answer; malformed parts are dropped, not guessed."""
    if not isinstance(raw, Mapping):
        return None
    wanted = {normalise_criterion(c): c for c in criteria}
    out: Scores = {}
    for key, per in raw.items():
        label = str(key).strip()
        label = label.upper() if label.upper() in ("A", "B") else label
        if label not in ("A", "B") or not isinstance(per, Mapping):
            continue
        got: dict[str, int] = {}
        for cname, value in per.items():
            crit = wanted.get(normalise_criterion(str(cname)))
            score = _score_value(value)
            if crit is not None and score is not None:
                got[crit] = score
        if got:
            out[label] = got
    return out or None


def validate_structured(obj: Any, criteria: Sequence[str] = DEFAULT_CRITERIA) -> ParsedVerdict:
    """Validate a structured verdict (provider-native or JSON found in text).

    The winner must be "A", "B" or "tie" (any letter case); anything else makes
    the verdict invalid with a reason. Scores are optional: malformed or
    out-of-range ones are dropped, since they never decide the winner.
    """
    if not isinstance(obj, Mapping):
        return _invalid(f"structured verdict is not an object (got {type(obj).__name__})")
    conflict = _conflict_reason(obj)
    if conflict is not None:
        return _invalid(conflict)
    reasoning = obj.get("reasoning")
    reasoning = reasoning.strip() or None if isinstance(reasoning, str) else None
    scores = _structured_scores(obj.get("scores"), criteria)
    if "winner" not in obj:
        return _invalid("structured verdict has no 'winner'", scores, reasoning)
    winner = obj["winner"]
    if not isinstance(winner, str):
        return _invalid(f"structured verdict 'winner' is not a string: {winner!r}", scores, reasoning)
    norm = winner.strip()
    if norm.upper() in ("A", "B"):
        return ParsedVerdict(_letter(norm), scores, reasoning)
    if norm.lower() == "tie":
        return ParsedVerdict("tie", scores, reasoning)
    return _invalid(f"structured verdict 'winner' must be A, B or tie, not {winner[:40]!r}", scores, reasoning)


# Each failed decode can scan to the end of the text; bound the work on hostile input.
_MAX_JSON_FAILURES = 500


class JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers keys given more than once with different values.

    `conflicts` maps each such key (a dotted path for a nested object, ``scores.A``)
    to every value it was given, in order; empty for an ordinary object. The dict
    itself holds the last value, as `json` would.
    """

    conflicts: dict[str, list[Any]]


def _same_json(a: Any, b: Any) -> bool:
    """Whether two decoded JSON values are the same value (`1` and `true`, `1` and `1.0` are not)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _object_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    """`object_pairs_hook` for verdict JSON: keep duplicate keys' conflicts instead of dropping them."""
    obj = JSONObject()
    conflicts: dict[str, list[Any]] = {}
    for key, value in pairs:
        if key in obj and not _same_json(obj[key], value):
            seen = conflicts.setdefault(key, [obj[key]])
            if not any(_same_json(v, value) for v in seen):
                seen.append(value)
        obj[key] = value
    for key, value in obj.items():  # a conflict deeper down makes this object ambiguous too
        for inner in (value if isinstance(value, list) else [value]):
            for path, values in getattr(inner, "conflicts", {}).items():
                conflicts.setdefault(f"{key}.{path}", values)
    obj.conflicts = conflicts
    return obj


def _conflict_reason(obj: Mapping[str, Any]) -> str | None:
    """Why a JSON object with conflicting duplicated keys is no verdict, or None when it has none."""
    conflicts: dict[str, list[Any]] = getattr(obj, "conflicts", None) or {}
    if not conflicts:
        return None
    key = "winner" if "winner" in conflicts else next(iter(conflicts))
    shown = " and ".join(repr(v)[:40] for v in conflicts[key][:3])
    return f"structured verdict gives the key {key!r} twice with different values ({shown})"


def _conflicting_winners(obj: Mapping[str, Any]) -> set[VerdictLabel]:
    """Every readable label a duplicated 'winner' key took (empty when the key is not duplicated)."""
    conflicts: dict[str, list[Any]] = getattr(obj, "conflicts", None) or {}
    labels = {validate_structured({"winner": v}).label for v in conflicts.get("winner", [])}
    return {label for label in labels if label != "invalid"}


def extract_json_objects(text: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object in `text` as (start, end, value), in order.

    Finds objects inside ```json fences and bare ones alike: it simply tries to
    decode a JSON value at each '{' that is not inside an object already found
    (giving up after a bounded number of failed tries). Objects are `JSONObject`s:
    a key given twice with different values is kept in `conflicts`, not dropped.
    """
    decoder = json.JSONDecoder(object_pairs_hook=_object_pairs)
    found: list[tuple[int, int, Any]] = []
    pos = 0
    failures = 0
    while failures < _MAX_JSON_FAILURES:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            failures += 1
            pos = start + 1
            continue
        if isinstance(value, dict):
            found.append((start, end, value))
        pos = end
    return found


def _json_verdict_objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    return [(s, e, v) for s, e, v in extract_json_objects(text) if "winner" in v]


def parse_json_verdict(text: str, criteria: Sequence[str] = DEFAULT_CRITERIA) -> ParsedVerdict:
    """A verdict from the last JSON object with a "winner" key in `text`; invalid when there is none.

    Every other such object must name the same winner: conflicting objects
    (the judge's own and one quoted from an answer) make the verdict invalid.
    """
    objects = _json_verdict_objects(text)
    if not objects:
        if not text.strip():
            return _invalid("empty answer")
        return _invalid("no JSON object with a 'winner' key in the answer")
    parsed = validate_structured(objects[-1][2], criteria)
    if parsed.label != "invalid":
        for _, _, obj in objects[:-1]:
            for other in sorted({validate_structured(obj, criteria).label} | _conflicting_winners(obj)):
                if other not in ("invalid", parsed.label):
                    return _invalid(f"conflicting verdicts in the answer ({other} and {parsed.label})",
                                    parsed.scores, parsed.reasoning)
    return parsed


# --------------------------------------------------------------------------------------
# Text verdicts
# --------------------------------------------------------------------------------------

_FLAGS = re.IGNORECASE | re.ASCII  # ASCII: no Unicode case folding surprises ('ſ' is not 's')

# Decoration that never changes meaning: bold/italic markers, code ticks, strike-through.
_DECORATION = re.compile(r"\*+|`+|~~|__")
# Leading list markers, quote markers and headers.
_LEAD = re.compile(r"^[\s>#]*(?:(?:[-+*\u2022]|\d{1,2}[.)])\s+)?[\s>#]*")

_PREFIX = (r"(?:(?:so|thus|therefore|hence|overall|in\s+conclusion|in\s+summary|to\s+conclude)\s*[,:]?\s+)?"
           r"(?:(?:my|the|our)\s+)?")
# Strong keywords: a line that starts with one and a separator is a verdict line, even
# when its value cannot be read (then the verdict is invalid rather than taken from
# an earlier line). Weak ones count only when the value reads cleanly.
_STRONG_KW = (r"(?:(?:final|overall|ultimate)\s+)?(?:winner|verdict)"
              r"|(?:final|overall|ultimate)\s+(?:decision|answer|choice|judg(?:e)?ment)"
              r"|(?:winning|better|preferred|stronger|superior)\s+response")
_WEAK_KW = r"decision|choice|judg(?:e)?ment|preference|result|conclusion"
_HINT = r"(?:\s*\((?:[^()]{0,40})\))?"  # "Winner (A, B or tie): A"
_KEYWORD_LINE = re.compile(
    rf"^{_PREFIX}(?P<kw>{_STRONG_KW}|{_WEAK_KW}){_HINT}\s*"
    r"(?:(?P<sep>[:=]|(?<=\s)[\-\u2013\u2014]+|[\-\u2013\u2014]+(?=\s)|[\u2013\u2014]|(?<=\s)is\b\s*:?)"
    r"\s*(?P<value>.*?)|(?P<bare>))\s*$",
    _FLAGS,
)

_OPEN = r"[\[\(\"'`\u201c\u2018]*"
_CLOSE = r"[\]\)\"'`\u201d\u2019]*"
_TIE = (r"(?:it'?s\s+|it\s+is\s+)?(?:an?\s+)?"
        r"(?:tie|tied|draw|equal|even|both\s+equally|both(?:\s+are)?\s+equal|both)")
_VALUE = re.compile(
    rf"^\s*{_OPEN}\s*(?:"
    rf"(?P<tie>(?i:{_TIE}))(?![A-Za-z])"
    r"|(?i:response|answer|assistant|output|option|candidate|text)\s+" + _OPEN + r"(?P<lab1>[ABab])(?![A-Za-z])"
    r"|(?P<lab2>[AB])(?:'s)?(?![A-Za-z])"
    r"|(?P<lab3>[ab])(?=\s*[.!]?\s*$)"
    rf")\s*{_CLOSE}(?P<rest>.*)$",
    re.ASCII,
)
_MTBENCH = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", _FLAGS)
_INLINE_VERDICT = re.compile(r"(?:winner|verdict)\s*(?:is\s*)?[:=\-\u2013\u2014]?\s*(?P<value>.*)$", _FLAGS)

_REST_OK_WORDS = {"is", "was", "wins", "won", "because", "since", "as", "due", "overall", "by", "over",
                  "clearly", "slightly", "narrowly", "marginally", "edges", "with", "thanks", "here",
                  "which", "whose", "it", "this"}
_CONNECTORS = re.compile(r"^(?:or|and|nor|vs\.?|versus)\b", _FLAGS)
_REFUSAL = re.compile(
    r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|I can(?:'|no)t|I cannot|I am unable|I'm unable|"
    r"I won'?t|I will not|as an AI)\b", _FLAGS)


@dataclass(frozen=True)
class _Candidate:
    offset: int                 # where the verdict ends in the text: later wins
    label: VerdictLabel         # "invalid" when unreadable or contradictory
    reason: str | None = None
    lines: tuple[int, ...] = ()  # line indexes that belong to the verdict (kept out of reasoning)


def _clean(line: str) -> str:
    line = line.replace("\u00a0", " ")
    line = _DECORATION.sub("", line)
    return _LEAD.sub("", line).strip()


def _read_value(value: str) -> tuple[VerdictLabel | None, str]:
    """(label, rest of the line) when `value` starts with a label, else (None, value)."""
    m = _VALUE.match(value)
    if not m:
        return None, value
    if m.group("tie"):
        return "tie", m.group("rest")
    letter = m.group("lab1") or m.group("lab2") or m.group("lab3")
    return _letter(letter), m.group("rest")


def _letter(text: str) -> Literal["A", "B"]:
    """'a' or 'A' -> "A", 'b' or 'B' -> "B" (the only letters the label patterns capture)."""
    letter = text.upper()
    if letter == "A":
        return "A"
    if letter == "B":
        return "B"
    raise ValueError(f"{text!r} is not a label letter")


def _only_label(text: str) -> bool:
    label, rest = _read_value(text)
    return label is not None and not re.search(r"[A-Za-z0-9]", rest)


def _check_rest(rest: str, label: VerdictLabel) -> str | None:
    """Why the text after a verdict makes it unusable ('A or B', 'A/B', 'A, B'), or None."""
    rest = rest.strip()
    if not re.search(r"[A-Za-z0-9]", rest):
        return None
    if rest[0] in "/&|\\+":
        return "contradictory verdict (more than one label)"
    for m in _MTBENCH.finditer(rest):
        if _mtbench_label(m.group(1)) != label:
            return "contradictory verdict (more than one label on the verdict line)"
    for m in _INLINE_VERDICT.finditer(rest):
        other, _ = _read_value(m.group("value"))
        if other is not None and other != label:
            return "contradictory verdict (more than one label on the verdict line)"
    rest = re.sub(r"^[^\w\s,;:/&|()\-\u2013\u2014.!?]+", "", rest).strip()  # leading emoji and symbols
    if rest and rest[0] in ",;:-\u2013\u2014(.!?":
        after = rest.lstrip(",;:-\u2013\u2014(.!? ")
        if _CONNECTORS.match(after) or _only_label(after.rstrip(")")):
            return "contradictory verdict (more than one label)"
        return None
    if _CONNECTORS.match(rest):
        return "contradictory verdict (more than one label)"
    first = re.match(r"[A-Za-z']+", rest)
    if first and first.group(0).lower() in _REST_OK_WORDS:
        return None
    return "unrecognised text after the verdict"


def _mtbench_label(token: str) -> VerdictLabel:
    token = token.upper()
    return "tie" if token in ("C", "TIE") else _letter(token)


def _line_candidates(lines: list[str], offsets: list[int], skip: set[int]) -> list[_Candidate]:
    out: list[_Candidate] = []
    for i, raw in enumerate(lines):
        if i in skip:
            continue
        end = offsets[i] + len(raw)
        markers = {_mtbench_label(m.group(1)) for m in _MTBENCH.finditer(raw)}
        if len(markers) > 1:
            out.append(_Candidate(end, "invalid", "contradictory MT-Bench markers on one line", (i,)))
            continue
        line = _clean(raw)
        m = _KEYWORD_LINE.match(line)
        if m is None:
            if markers:
                out.append(_Candidate(end, markers.pop(), None, (i,)))
            continue
        strong = re.fullmatch(_STRONG_KW, m.group("kw"), _FLAGS) is not None
        sep = (m.group("sep") or "").lower()
        weak = not strong or sep.startswith("is")
        value = (m.group("value") or "").strip()
        if not value:
            # A heading ("## Winner", "**Verdict:**"): the next non-empty line may hold only the label.
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and j not in skip and _only_label(_clean(lines[j])):
                label, _ = _read_value(_clean(lines[j]))
                assert label is not None  # _only_label found one
                out.append(_Candidate(offsets[j] + len(lines[j]), label, None, (i, j)))
            elif markers:
                out.append(_Candidate(end, markers.pop(), None, (i,)))
            continue
        label, rest = _read_value(value)
        if label is None:
            if markers:
                out.append(_Candidate(end, markers.pop(), None, (i,)))
            elif not weak:
                out.append(_Candidate(end, "invalid", f"unrecognised verdict: {line[:80]!r}", (i,)))
            continue
        problem = _check_rest(rest, label)
        if markers and markers != {label}:
            problem = "contradictory verdict (more than one label on the verdict line)"
        if problem is None:
            out.append(_Candidate(end, label, None, (i,)))
        elif not weak or problem.startswith("contradictory"):
            out.append(_Candidate(end, "invalid", f"{problem}: {line[:80]!r}", (i,)))
    return out


# -- scores ----------------------------------------------------------------------------

_SCORE_ITEM = re.compile(
    r"(?<![A-Za-z])(?:(?i:response|answer)\s+)?(?P<label>[AB])\s*(?:[:=]|-|\u2013)?\s*"
    r"(?P<value>\d+(?:\.\d+)?)(?:\s*(?:/|out\s+of)\s*(?P<den>\d+))?",
    re.ASCII,
)


def _criterion_pattern(criterion: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", criterion.strip()) if w]
    name = r"[\s_\-]+".join(words)
    return re.compile(rf"^{name}\s*(?:\([^()]*\))?\s*[:=\-\u2013\u2014]\s*(?P<rest>.*)$", _FLAGS)


def _score_line(line: str, patterns: Sequence[tuple[str, re.Pattern[str]]]) -> tuple[str, dict[str, int]] | None:
    """(criterion, {label: score}) when `line` is a score line, else None. Bad numbers are dropped."""
    cleaned = _clean(line)
    for criterion, pattern in patterns:
        m = pattern.match(cleaned)
        if not m:
            continue
        items = list(_SCORE_ITEM.finditer(m.group("rest")))
        if not items:
            return None  # prose that starts with a criterion name ("Depth: both go deep")
        got: dict[str, int] = {}
        for item in items:
            den = item.group("den")
            number = float(item.group("value"))
            score = _score_value(number) if den in (None, "5") else None
            if score is None:
                got.pop(item.group("label"), None)
            else:
                got[item.group("label")] = score
        return criterion, got
    return None


def parse_scores(text: str, criteria: Sequence[str] = DEFAULT_CRITERIA) -> Scores | None:
    """Scores from lines like ``creativity: A=4, B=3`` (last line per criterion wins); None when none."""
    scores, _ = _scores_and_lines(text.splitlines(), criteria, set())
    return scores


def _scores_and_lines(lines: list[str], criteria: Sequence[str], skip: set[int]) -> tuple[Scores | None, set[int]]:
    patterns = [(c, _criterion_pattern(c)) for c in criteria]
    found: dict[str, dict[str, int]] = {}
    used: set[int] = set()
    for i, line in enumerate(lines):
        if i in skip:
            continue
        hit = _score_line(line, patterns)
        if hit is None:
            continue
        criterion, got = hit
        used.add(i)
        found[criterion] = got  # a later line for the same criterion replaces an earlier one
    scores: Scores = {}
    for criterion in criteria:
        for label, value in found.get(criterion, {}).items():
            scores.setdefault(label, {})[criterion] = value
    return (dict(sorted(scores.items())) or None), used


# -- the parser ------------------------------------------------------------------------

def parse_verdict(text: str, criteria: Sequence[str] = DEFAULT_CRITERIA, *,
                  accept_json: bool = True) -> ParsedVerdict:
    """Read a judge's free-text (or JSON) answer into a verdict over labels.

    Returns the judge's final explicit verdict, provided every other verdict in
    the text agrees with it; `invalid` (with a reason) when there is none,
    when it is unreadable, when verdicts conflict, or when the judge refused.
    Never guesses from prose. With `accept_json=False` (a judge whose template
    asks for a text verdict line) a JSON object is never the verdict, but a
    JSON winner that disagrees still voids it.
    """
    if not text or not text.strip():
        return _invalid("empty answer")
    lines = text.splitlines(keepends=True)
    offsets: list[int] = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line)

    json_objects = _json_verdict_objects(text)
    in_json: set[int] = set()
    for start, end, _ in json_objects:
        in_json.update(i for i, off in enumerate(offsets) if off < end and off + len(lines[i]) > start)

    bare = [line.rstrip("\r\n") for line in lines]
    candidates = _line_candidates(bare, offsets, in_json)
    text_scores, score_lines = _scores_and_lines(bare, criteria, in_json)
    verdict_lines = {i for c in candidates for i in c.lines}
    reasoning = _reasoning(bare, in_json | score_lines | verdict_lines)

    # Every verdict in the answer, in order: (end offset, label, reason, structured value or None).
    found: list[tuple[int, VerdictLabel, str | None, ParsedVerdict | None]] = [
        (c.offset, c.label, c.reason, None) for c in candidates]
    for _, end, obj in json_objects:
        parsed = validate_structured(obj, criteria)
        found.append((end, parsed.label, parsed.invalid_reason, parsed))
    found.sort(key=lambda f: f[0])
    own = [f for f in found if accept_json or f[3] is None]  # what may be the judge's verdict
    if not own:
        if json_objects and not accept_json:
            return _invalid("no verdict line in the template's format (the answer holds only JSON; "
                            "expected a final line like 'Winner: A')", text_scores, reasoning)
        if _REFUSAL.search(text):
            return _invalid("the judge refused or declined to choose", text_scores, reasoning)
        return _invalid("no verdict line (expected a final line like 'Winner: A')", text_scores, reasoning)
    _, label, reason, structured = own[-1]
    if label != "invalid":
        quoted = {w for _, _, obj in json_objects for w in _conflicting_winners(obj)}  # {"winner":"A","winner":"B"}
        others = sorted({f[1] for f in found if f[1] not in ("invalid", label)} | (quoted - {label}))
        if others:
            return _invalid(f"conflicting verdicts in the answer ({', '.join(others)} and {label})",
                            text_scores, reasoning)
    if structured is not None:
        return ParsedVerdict(structured.label, structured.scores or text_scores,
                             structured.reasoning or reasoning, structured.invalid_reason)
    return ParsedVerdict(label, text_scores, reasoning, reason)


#: Verdict-like text anywhere in a line: "winner: B", "verdict is Response A", "[[B]]".
_INLINE_VERDICT_ANYWHERE = re.compile(
    r"\b(?:winner|verdict)\b[*_`\s]*(?:is\b)?[*_`\s]*[:=\-\u2013\u2014]?[*_`\s]*"
    r"(?:(?:response|answer|assistant|output|option)\s+)?[\[(\"'`]*(?:A|B|tie)\b"
    r"|\[\[\s*(?:A|B|C|tie)\s*\]\]",
    re.IGNORECASE)


def verdict_like_text(text: str | None) -> str | None:
    """The first verdict-like passage in `text` (a model's answer), or None.

    An answer that holds `Winner: B`, `[[A]]` or `{"winner": "B"}` may be
    trying to steer the judge (or the parser). The text is normalised first
    (NFKC, invisible characters removed), so fullwidth or zero-width spellings
    are found too. Used by the report to flag such comparisons.
    """
    if not text:
        return None
    if text.isascii():
        # ASCII text is its own NFKC form and holds no invisible character, and every match needs
        # "winner", "verdict" or "[[": a report scans every answer of a run, most of them plain prose.
        lowered = text.lower()
        if "winner" not in lowered and "verdict" not in lowered and "[[" not in text:
            return None
        norm = text
    else:
        norm = normalise(text)
    m = _INLINE_VERDICT_ANYWHERE.search(norm)
    if m:
        return m.group(0).strip()[:80]
    if "winner" in norm.lower():
        for start, end, _ in _json_verdict_objects(norm):
            return norm[start:end][:80]
    return None


def verdict_like_texts(texts: Sequence[str]) -> list[str | None]:
    """`verdict_like_text` of each of `texts`, with one look at all of them first.

    A report scans every answer of a run; when they are all ASCII and none holds
    "winner", "verdict" or "[[" (the usual case, and then `verdict_like_text` finds
    nothing in any of them), that is one pass over the joined texts instead of one
    call per answer, a chunk of `_TEXTS_PER_LOOK` answers at a time. Otherwise each text
    of a chunk is scanned alone.
    """
    out: list[str | None] = []
    for start in range(0, len(texts), _TEXTS_PER_LOOK):
        chunk = texts[start:start + _TEXTS_PER_LOOK]
        joined = "\n".join(chunk)
        if joined.isascii():
            lowered = joined.lower()
            if "winner" not in lowered and "verdict" not in lowered and "[[" not in joined:
                out.extend([None] * len(chunk))
                continue
        out.extend(verdict_like_text(t) for t in chunk)
    return out


#: Answers `verdict_like_texts` looks at in one joined string: about 1 MB of typical answers, so the
#: joined and lowered copies reuse memory instead of being a run's every answer twice (72 MB at
#: 100,000 judgments, fresh pages each time).
_TEXTS_PER_LOOK = 1024


def _reasoning(lines: list[str], skip: set[int]) -> str | None:
    """The judge's prose: every line that is not a verdict, a score or JSON, without a 'Reasoning:' tag."""
    kept = [line for i, line in enumerate(lines) if i not in skip]
    text = "\n".join(kept).strip()
    text = re.sub(r"^[#*\s]*reasoning[*\s]*:[*\s]*", "", text, flags=_FLAGS).strip()
    text = re.sub(r"^```(?:json)?\s*```$", "", text).strip()
    return text or None
