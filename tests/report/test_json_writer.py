"""`render_json` writes the very bytes json.dumps wrote before it became a one-pass writer.

The reference is the old three-pass path: `Record.to_json_dict()`, then `to_jsonable`,
then `json.dumps(indent=2, ensure_ascii=False, allow_nan=False)`. The writer reads record
fields directly and formats values itself, so every value kind json.dumps and
`to_jsonable` treat in their own way is compared here: non-ASCII and control characters,
big integers, NaN, infinities, -0.0, numpy scalars and arrays, subclasses, non-string
dict keys (two of which may become one), empty containers, and records with a renamed
key, a key left out when None, or their own `to_json_dict`. Then real reports: a
synthetic run, a two-judge run (a majority vote with a judge left out), hand-made
records with a human-calibrated figure, and a run-vs-run comparison.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import report_records
from brie_bench.report.compare import build_comparison
from brie_bench.report.jsonout import render_json, to_jsonable
from brie_bench.report.model import build_report, build_report_from_data
from brie_bench.report.rows import RunData, load_run
from brie_bench.report.schema import HumanCalibrated, Record
from brie_bench.store import Store
from helpers import run_suite, synthetic_run, two_judge_suite, write_yaml

def reference(record: Any) -> str:
    """What `render_json` wrote before: json.dumps over `to_jsonable` over the record's dict."""
    return json.dumps(to_jsonable(record.to_json_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def same(record: Any) -> None:
    assert render_json(record) == reference(record)


# --------------------------------------------------------------------------- records made for the tests


@dataclass(frozen=True, slots=True)
class Box(Record):
    """One value in a record: the field loop of the writer."""

    value: Any


@dataclass(frozen=True, slots=True)
class Pair(Record):
    """A renamed key and a key left out when None, around any value."""

    lambda_: Any = field(metadata={"key": "lambda"})
    value: Any
    maybe: Any = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True)
class OnlyOptional(Record):
    """Every field may be left out: an empty object when all are None."""

    a: Any = field(default=None, metadata={"omit_none": True})
    b: Any = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True)
class NoFields(Record):
    """No field at all: `{}`."""


@dataclass(frozen=True, slots=True)
class Reordered(Record):
    """Writes its own dict (as `MajorityVote` does): the writer must use it, key order included."""

    first: Any
    second: Any

    def to_json_dict(self) -> dict[str, Any]:
        out = Record.to_json_dict(self)
        out["first"] = out.pop("first")
        return out


@dataclass(frozen=True, slots=True)
class SameKey(Record):
    """Two fields written under one key: the dict keeps the first position and the last value."""

    x: Any = field(metadata={"key": "k"})
    y: Any = field(metadata={"key": "k"})


class Colour(enum.IntEnum):
    RED = 1


class Word(str):
    pass


class Money(float):
    def __repr__(self) -> str:
        return "money"


class Point(NamedTuple):
    x: Any
    y: Any


# --------------------------------------------------------------------------- values


TRICKY_TEXT = ["", "plain", 'quote " and \\ backslash', "tab\t nl\n cr\r nul\x00 bell\x07 del\x7f",
               "café ünïcode 日本語 🧀", "\u2028\u2029", "</script>", "%s %(x)s {0}"]
TRICKY_FLOATS = [0.0, -0.0, 1e-05, 1e16, 1e-7, 123456789.123, 0.1, 5e-324, 1.7976931348623157e308,
                 math.nan, math.inf, -math.inf]
TRICKY_INTS = [0, -1, 2**53 + 1, -(2**63), 2**64, 10**40, -(10**80)]

texts = st.text() | st.sampled_from(TRICKY_TEXT)
floats = st.floats() | st.sampled_from(TRICKY_FLOATS)
ints = st.integers() | st.integers(min_value=-(10**60), max_value=10**60) | st.sampled_from(TRICKY_INTS)
numpy_scalars = st.one_of(
    floats.map(np.float64),
    st.floats(width=32).map(np.float32),
    st.floats(width=16).map(np.float16),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64),
    st.integers(min_value=0, max_value=2**64 - 1).map(np.uint64),
    st.integers(min_value=-128, max_value=127).map(np.int8),
    st.booleans().map(np.bool_),
    texts.map(np.str_),
)
numpy_arrays = st.one_of(
    st.lists(floats, max_size=6).map(lambda v: np.array(v, dtype=np.float64)),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=6).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.booleans(), max_size=6).map(lambda v: np.array(v, dtype=bool)),
    st.lists(floats, min_size=4, max_size=4).map(lambda v: np.array(v).reshape(2, 2)),
    st.lists(texts, max_size=4).map(lambda v: np.array(v, dtype=object)),
)
subclassed = st.one_of(
    st.just(Colour.RED), texts.map(Word), floats.map(Money), st.just(True), st.just(False), st.none(),
)
scalars = st.one_of(texts, floats, ints, st.booleans(), st.none(), numpy_scalars, subclassed)
keys = st.one_of(texts, texts, ints, floats, st.booleans(), st.none(), st.sampled_from(["1", "True", "None", "nan"]))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(texts, children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
        st.dictionaries(texts, children, max_size=5).map(collections.OrderedDict),
        st.tuples(children, children).map(lambda t: Point(*t)),
        children.map(Box),
        st.tuples(children, children, st.one_of(st.none(), children)).map(lambda t: Pair(*t)),
        st.tuples(st.one_of(st.none(), children), st.one_of(st.none(), children)).map(lambda t: OnlyOptional(*t)),
        st.tuples(children, children).map(lambda t: Reordered(*t)),
        st.tuples(children, children).map(lambda t: SameKey(*t)),
        st.just(NoFields()),
    )


values = st.recursive(st.one_of(scalars, numpy_arrays), _containers, max_leaves=30)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_value_in_a_record_is_written_as_json_dumps_wrote_it(value: Any) -> None:
    same(Box(value))
    same(Reordered(value, [value]))  # through a dict, not the record's fields


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, scalars, max_size=8))
def test_dict_keys_are_written_as_str_made_them(d: dict[Any, Any]) -> None:
    same(Box(d))
    same(Box([d, {"inner": d}]))


@pytest.mark.parametrize("value", [
    {1: "int", "1": "str"}, {"1": "str", 1: "int"}, {True: "bool", "True": "str", None: "none"},
    {1.5: "a", math.nan: "b", -0.0: "c"}, {Colour.RED: 1, Word("w"): 2},
    [], (), {}, [[]], [{}], {"": {}}, [[], {}, ()], np.array([]), np.zeros((0, 3)),
    np.array("ab"), np.array([[1.5, math.nan], [math.inf, -0.0]]), np.array([True, False]),
    np.array([1, 2], dtype=np.uint8), np.array(["x", "é"]),
    [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("-inf")],
    10**200, -(10**200), 2**63, np.int64(-(2**63)), np.uint64(2**64 - 1),
])
def test_edge_values(value: Any) -> None:
    same(Box(value))
    same(Pair(value, value, value))


def test_records_with_omitted_renamed_and_repeated_keys() -> None:
    for record in (Pair(1, 2), Pair(1, 2, 3), Pair(None, None), OnlyOptional(), OnlyOptional(b=0), NoFields(),
                   SameKey(1, 2), Reordered(Box(1), OnlyOptional()), Box([Box(None), Pair(None, [])])):
        same(record)
        same(Box({"nested": [record, (record,)]}))


def test_what_json_dumps_refused_is_still_refused() -> None:
    for bad in ({1, 2}, object(), b"bytes", np.datetime64("2020-01-01"), 1 + 2j, [{"x": frozenset()}]):
        with pytest.raises(TypeError):
            reference(Box(bad))
        with pytest.raises(TypeError):
            render_json(Box(bad))


def test_a_deeply_nested_value_is_written() -> None:
    deep: Any = "leaf"
    for i in range(300):
        deep = [deep] if i % 2 else {"k": deep}
    same(Box(deep))


# --------------------------------------------------------------------------- real reports


def _load(db: Path, run_id: str) -> RunData:
    with Store(db, readonly=True) as store:
        return load_run(store, run_id, texts=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunData, RunData]:
    tmp = tmp_path_factory.mktemp("json-writer")
    return (_load(tmp / "a.db", synthetic_run(tmp / "a.db", 1500, seed=3)),
            _load(tmp / "b.db", synthetic_run(tmp / "b.db", 1200, seed=4)))


def test_a_synthetic_runs_report_is_byte_identical(two_runs: tuple[RunData, RunData]) -> None:
    report = build_report_from_data(two_runs[0])
    assert report.bias and any(b.order_consistency.flipped for b in report.bias)
    same(report)


def test_a_run_vs_run_comparison_is_byte_identical(two_runs: tuple[RunData, RunData]) -> None:
    same(build_comparison(*two_runs))


def test_a_two_judge_report_with_a_judge_left_out_of_the_vote_is_byte_identical(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    assert run_suite(write_yaml(tmp_path / "suite.yaml", two_judge_suite()), db) == 0
    report = build_report(Store(db, readonly=True))
    assert report.agreement and report.agreement[0].majority_vote.left_out  # written through its own dict
    same(report)


def test_a_human_calibrated_figure_is_written_under_its_renamed_key() -> None:
    base = report_records.interval(0.6, 0.5, 0.7)
    human = HumanCalibrated(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                            human_only=report_records.interval(0.55, 0.4, 0.7), humans=["ann", "bo"],
                            n_human_verdicts=40, n_labelled_prompts=20, n_judged_prompts=25, lambda_=0.75,
                            narrower_by=None, target_width=0.1, labelled_prompts_for_target=None, sentence="é\n")
    plain = report_records.judge("j", 0.6, 0.5, 0.7)
    with_human = dataclasses.replace(plain, human_calibrated=human)
    report = report_records.report([plain, with_human], [report_records.bias("j")])
    same(report)
    assert '"lambda": 0.75' in render_json(report) and render_json(report).count('"human_calibrated"') == 1
