"""The one boundary where plugin output enters the engine: check and normalise it, or refuse it.

A backend or judge is third-party code, and a model's answer is untrusted data.
Whatever they return is checked here before anything is stored: texts must be
`str` that SQLite can store as UTF-8 (a lone surrogate cannot be), optional
texts `str` or None, token counts whole numbers in [0, 2**53), probabilities
finite floats in [0, 1], scores a label -> criterion -> number table that JSON
can hold. Anything else raises `MalformedOutput`: a permanent `CallError` of
kind ``malformed``, so that one unit fails with a clear message, the failure is
recorded, and the run goes on. Values that are merely of a near type (an
``int`` subclass, a ``numpy.float64``) are normalised to plain Python values.

Every text is capped at `max_chars` characters (the suite's `max_stored_chars`,
default `DEFAULT_MAX_STORED_CHARS`): a model that ignores `max_tokens`, or a plugin
that returns a 10^8-character `raw`, must not fill the database, the reports and
the memory of the run. A longer text keeps its head and ends in a marker saying
how much was cut (`truncation_marker`); each cut is appended to the caller's
`notes`, and the engine records it for the unit (kind ``truncated``). Nothing is
ever cut silently.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from brie_bench.errors import PermanentError
from brie_bench.records import GenerationResult, JudgeResult, Usage

#: Token counts at or above this are nonsense (and would not survive a float or JSON round trip).
MAX_TOKENS = 2 ** 53

#: The default cap on each stored text, in characters: the largest `max_tokens` a suite may ask for
#: (131,072) at 15 characters a token, three times a typical token's length, so only a runaway
#: text is ever cut (a 50 MB answer at max_tokens 32 is).
DEFAULT_MAX_STORED_CHARS = 2_000_000

#: The error kind under which a cut text is recorded for its unit (a note: the unit is stored).
TRUNCATED = "truncated"


def truncation_marker(kept: int, total: int) -> str:
    """What ends a cut text: how many characters were kept of how many."""
    return f"\n[brie-bench: truncated, {kept:,} of {total:,} characters kept]"


def cap_text(text: str, max_chars: int, what: str, notes: list[str] | None) -> str:
    """`text`, or its head plus `truncation_marker` when it is longer than `max_chars` (noted in `notes`)."""
    if len(text) <= max_chars:
        return text
    total = len(text)
    kept = max(0, max_chars - len(truncation_marker(max_chars, total)))
    if notes is not None:
        notes.append(f"{what} cut to {kept:,} of {total:,} characters (max_stored_chars {max_chars:,})")
    return text[:kept] + truncation_marker(kept, total)


class MalformedOutput(PermanentError):
    """A plugin returned something that cannot be stored; the unit fails with kind ``malformed``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="malformed")


def _text(value: Any, what: str, *, optional: bool = False, max_chars: int = DEFAULT_MAX_STORED_CHARS,
          notes: list[str] | None = None) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedOutput(f"{what} is {type(value).__name__}, not a string")
    value = cap_text(value, max_chars, what, notes)  # first: no copy of a runaway text is ever made
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedOutput(f"{what} holds a character UTF-8 cannot store "
                              f"({value[exc.start]!r} at position {exc.start})") from None
    return str(value)


def _required_text(value: Any, what: str, *, max_chars: int = DEFAULT_MAX_STORED_CHARS,
                   notes: list[str] | None = None) -> str:
    """`_text` for a field that must be a string (None is refused like any other non-string)."""
    text = _text(value, what, max_chars=max_chars, notes=notes)
    assert text is not None  # not optional: _text raised for None
    return text


def _count(value: Any, what: str) -> int:
    count: int
    if isinstance(value, bool):
        raise MalformedOutput(f"{what} is {value!r}, not a whole number")
    if isinstance(value, numbers.Integral):
        count = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        count = int(float(value))  # a whole float (3.0); exact below MAX_TOKENS, and larger values are refused
    else:
        raise MalformedOutput(f"{what} is {value!r}, not a whole number")
    if not 0 <= count < MAX_TOKENS:
        raise MalformedOutput(f"{what} is {count}, outside 0..2**53")
    return count


def usage(value: Any, what: str) -> Usage:
    if value is None:
        return Usage()
    if not isinstance(value, Usage):
        raise MalformedOutput(f"{what} is {type(value).__name__}, not Usage")
    return Usage(_count(value.input_tokens, f"{what}.input_tokens"),
                 _count(value.output_tokens, f"{what}.output_tokens"))


def generation(value: Any, what: str = "the backend's result", *, max_chars: int = DEFAULT_MAX_STORED_CHARS,
               notes: list[str] | None = None) -> GenerationResult:
    """A backend's answer, checked and normalised, each text capped at `max_chars`; raises `MalformedOutput`."""
    if not isinstance(value, GenerationResult):
        raise MalformedOutput(f"{what} is {type(value).__name__}, not GenerationResult")
    structured = value.structured
    if structured is not None:
        if not isinstance(structured, Mapping):
            raise MalformedOutput(f"{what}.structured is {type(structured).__name__}, not a mapping")
        structured = _json_value(dict(structured), f"{what}.structured", max_chars=max_chars, notes=notes)
    return GenerationResult(
        text=_required_text(value.text, f"{what}.text", max_chars=max_chars, notes=notes),
        usage=usage(value.usage, f"{what}.usage"),
        finish_reason=_text(value.finish_reason, f"{what}.finish_reason", optional=True, max_chars=max_chars,
                            notes=notes),
        structured=structured,
        model=_text(value.model, f"{what}.model", optional=True, max_chars=max_chars, notes=notes),
    )


def _json_value(value: Any, what: str, depth: int = 0, *, max_chars: int = DEFAULT_MAX_STORED_CHARS,
                notes: list[str] | None = None) -> Any:
    """A copy that JSON and SQLite can hold: str keys, finite numbers, valid text, bounded depth."""
    if depth > 32:
        raise MalformedOutput(f"{what} is nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, what, max_chars=max_chars, notes=notes)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise MalformedOutput(f"{what} is {number}, not a finite number")
        return number
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise MalformedOutput(f"{what} has a key {k!r} that is not a string")
            out[_text(k, f"{what} key", max_chars=max_chars, notes=notes)] = _json_value(
                v, f"{what}[{k[:40]!r}]", depth + 1, max_chars=max_chars, notes=notes)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{what}[{i}]", depth + 1, max_chars=max_chars, notes=notes)
                for i, v in enumerate(value)]
    raise MalformedOutput(f"{what} is {type(value).__name__}, which cannot be stored")


def _scores(value: Any, what: str) -> dict[str, dict[str, float]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MalformedOutput(f"{what} is {type(value).__name__}, not a mapping of label to scores")
    out: dict[str, dict[str, float]] = {}
    for label, per_criterion in value.items():
        if label not in ("A", "B"):
            raise MalformedOutput(f"{what} has label {label!r}; only A and B are scored")
        if not isinstance(per_criterion, Mapping):
            raise MalformedOutput(f"{what}[{label!r}] is {type(per_criterion).__name__}, not a mapping")
        row: dict[str, float] = {}
        for criterion, score in per_criterion.items():
            name = _required_text(criterion, f"{what}[{label!r}] criterion")
            if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(float(score)):
                raise MalformedOutput(f"{what}[{label!r}][{criterion!r}] is {score!r}, not a finite number")
            row[name] = int(score) if isinstance(score, numbers.Integral) else float(score)
        out[label] = row
    return out


def judgment(value: Any, what: str = "the judge's result", *, max_chars: int = DEFAULT_MAX_STORED_CHARS,
             notes: list[str] | None = None) -> JudgeResult:
    """A judge's verdict, checked and normalised, each text capped at `max_chars`; raises `MalformedOutput`."""
    if not isinstance(value, JudgeResult):
        raise MalformedOutput(f"{what} is {type(value).__name__}, not JudgeResult")
    if value.label not in ("A", "B", "tie", "invalid"):
        raise MalformedOutput(f"{what}.label is {value.label!r}, not A, B, tie or invalid")
    p_a = value.p_a
    if p_a is not None:
        if isinstance(p_a, bool) or not isinstance(p_a, numbers.Real) or not math.isfinite(float(p_a)) \
                or not 0.0 <= float(p_a) <= 1.0:
            raise MalformedOutput(f"{what}.p_a is {p_a!r}, not a probability")
        p_a = float(p_a)
    return JudgeResult(
        label=value.label,
        raw=_required_text(value.raw, f"{what}.raw", max_chars=max_chars, notes=notes),
        scores=_scores(value.scores, f"{what}.scores"),
        p_a=p_a,
        reasoning=_text(value.reasoning, f"{what}.reasoning", optional=True, max_chars=max_chars, notes=notes),
        invalid_reason=_text(value.invalid_reason, f"{what}.invalid_reason", optional=True, max_chars=max_chars,
                             notes=notes),
        usage=usage(value.usage, f"{what}.usage"),
    )


def batch_id(value: Any, what: str = "the backend's batch id") -> str:
    text = _required_text(value, what)
    if not text or len(text) > 1000:
        raise MalformedOutput(f"{what} must be a non-empty string of at most 1000 characters")
    return text
