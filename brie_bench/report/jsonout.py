"""The report as JSON: `Report.to_json_dict()`, the same records the HTML is drawn from (docs/report-schema.md).

`render_json` writes exactly the bytes of
`json.dumps(to_jsonable(report.to_json_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\\n"`,
but in one pass: it reads the records' fields directly (no intermediate dicts) and
appends string pieces to one list, because with `indent` json.dumps takes its pure-Python
generator path, which cost most of `report --json` on a 100k-judgment run.
tests/report/test_json_writer.py holds the two to the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring
from operator import attrgetter
from typing import Any

import numpy as np

from brie_bench.report.schema import Record, json_layout

__all__ = ["render_json", "to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types only: NaN and infinities become null (JSON has neither), numpy scalars become Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# (attribute getter, JSON key prefixes ('"key": ') in field order, omit-when-None flags or None when no field has one)
_Plan = tuple[Callable[[Any], tuple[Any, ...]], tuple[str, ...], tuple[bool, ...] | None]
# Per record class: its plan, or None when the class writes its own `to_json_dict` (its dict is written instead).
_PLANS: dict[type, _Plan | None] = {}


def _plan(cls: type) -> _Plan | None:
    """How to write a record of `cls` without building its dict: the fields `Record.to_json_dict` would write, in order.

    None for classes that override `to_json_dict` (they may reorder keys) and for layouts whose
    keys repeat (the dict would keep one of them); those go through their dict.
    """
    if cls in _PLANS:
        return _PLANS[cls]
    plan: _Plan | None = None
    layout = json_layout(cls) if getattr(cls, "to_json_dict", None) is Record.to_json_dict else ()
    keys = [str(key) for _, key, _ in layout]
    if layout and len(set(keys)) == len(keys):
        names = [name for name, _, _ in layout]
        get = attrgetter(*names)
        # attrgetter of one name returns the value itself, not a 1-tuple
        getter: Callable[[Any], tuple[Any, ...]] = get if len(names) > 1 else lambda obj: (get(obj),)
        omits = tuple(omit for _, _, omit in layout)
        plan = (getter, tuple(encode_basestring(k) + ": " for k in keys), omits if any(omits) else None)
    _PLANS[cls] = plan
    return plan


def _not_serializable(obj: Any) -> TypeError:
    return TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _write(top: Any) -> str:
    """`top` as json.dumps(to_jsonable(top), indent=2, ensure_ascii=False, allow_nan=False) writes it, records included.

    Exact types (str, int, float, bool, None: `scalar`; dict, list, records) take the fast
    branches; everything else is first converted as `to_jsonable` converts it, so subclasses
    and numpy values come out as they always did.
    """
    parts: list[str] = []
    emit = parts.append
    enc = encode_basestring
    frepr = float.__repr__
    irepr = int.__repr__
    isfinite = math.isfinite
    plans = _PLANS
    newlines = ["\n"]  # newlines[d]: a newline and the indent of depth d

    def newline(depth: int) -> str:
        while len(newlines) <= depth:
            newlines.append(newlines[-1] + "  ")
        return newlines[depth]

    def scalar(v: Any) -> str | None:
        """An exact str, None, float, bool or int as JSON (NaN and infinities as null); None for anything else."""
        t = type(v)
        if t is str:
            return enc(v)
        if v is None:
            return "null"
        if t is float:
            return frepr(v) if isfinite(v) else "null"
        if t is bool:
            return "true" if v else "false"
        if t is int:
            return irepr(v)
        return None

    def value(v: Any, depth: int) -> None:
        """Any value: the plain scalars first (most of a report), then containers, records and the rest."""
        text = scalar(v)
        t = type(v)
        if text is not None:
            emit(text)
        elif t is dict:
            mapping(v, depth)
        elif t is list or t is tuple:
            sequence(v, depth)
        elif isinstance(v, Record):
            record(v, depth)
        else:
            other(v, depth)

    def other(v: Any, depth: int) -> None:
        """Subclasses and numpy values, in `to_jsonable`'s order of checks, then json's."""
        if isinstance(v, dict):
            mapping(v, depth)
        elif isinstance(v, (list, tuple)):
            sequence(v, depth)
        elif isinstance(v, np.ndarray):
            sequence(list(v.tolist()), depth)
        elif isinstance(v, (bool, np.bool_)):
            emit("true" if v else "false")
        elif isinstance(v, (int, np.integer)):
            emit(irepr(int(v)))
        elif isinstance(v, (float, np.floating)):
            f = float(v)
            emit(frepr(f) if isfinite(f) else "null")
        elif isinstance(v, str):
            emit(enc(v))
        else:
            raise _not_serializable(v)

    def member(prefix: str, v: Any, depth: int) -> None:
        """One element of a list or object: what comes before it (separator, indent, key), then it."""
        text = scalar(v)
        if text is None:
            emit(prefix)
            value(v, depth)
        else:
            emit(prefix + text)

    def sequence(items: Any, depth: int) -> None:
        if not items:
            emit("[]")
            return
        depth += 1
        nl = newline(depth)
        pre = "[" + nl
        sep = "," + nl
        for v in items:
            member(pre, v, depth)
            pre = sep
        emit(newline(depth - 1) + "]")

    def mapping(d: Any, depth: int) -> None:
        if not d:
            emit("{}")
            return
        start = len(parts)
        depth += 1
        nl = newline(depth)
        pre = "{" + nl
        sep = "," + nl
        for k, v in d.items():
            if type(k) is not str:
                # to_jsonable's str(k) can make two keys one (1 and "1"): write its dict instead.
                del parts[start:]
                mapping({str(k): v for k, v in d.items()}, depth - 1)
                return
            member(pre + enc(k) + ": ", v, depth)
            pre = sep
        emit(newline(depth - 1) + "}")

    def record(r: Record, depth: int) -> None:
        cls = type(r)
        plan = plans[cls] if cls in plans else _plan(cls)
        if plan is None:
            mapping(r.to_json_dict(), depth)
            return
        getter, keys, omits = plan
        values = getter(r)
        depth += 1
        nl = newline(depth)
        sep = "," + nl
        pre = "{" + nl
        if omits is not None:  # rare: drop the left-out fields first
            kept = [(key, v) for key, v, omit in zip(keys, values, omits) if v is not None or not omit]
            keys, values = tuple(k for k, _ in kept), tuple(v for _, v in kept)
        for key, v in zip(keys, values):
            member(pre + key, v, depth)
            pre = sep
        if pre is sep:
            emit(newline(depth - 1) + "}")
        else:  # every field was left out
            emit("{}")

    value(top, 0)
    return "".join(parts)


def render_json(report: Record) -> str:
    """Indented, strict JSON (no NaN), keys in the records' field order so related figures stay together.

    A `Report` (or the run-vs-run `Comparison`) is written as its `to_json_dict()` would be,
    byte for byte, without building that dict.
    """
    return _write(report if isinstance(report, Record) else report.to_json_dict()) + "\n"
