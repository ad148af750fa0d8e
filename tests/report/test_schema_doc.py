"""docs/report-schema.md and brie_bench/report/schema.py describe the same JSON, key for key and in order.

The records are the schema in code: a field's position is its key's position in
`report --json`. The doc's key tables list the keys in that order, so a field added,
renamed or moved in a record without its doc row (or the other way round) fails here.
A row may name several keys (`` `n`, `n_valid` ``); a key's JSON name is its field's
`key` metadata where it has one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from brie_bench.report import schema
from brie_bench.report.schema import (Agreement, Interval, JudgeFigures, Method, Power, Record, Report, RunInfo,
                                      SectionJudgeFigures, Verdict)

DOC = Path(__file__).parents[2] / "docs" / "report-schema.md"
_KEY = re.compile(r"`([^`]+)`")


def json_keys(cls: type[Record]) -> list[str]:
    """The record's JSON keys in field (= JSON) order."""
    return [f.metadata.get("key", f.name) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


def table_keys(heading: str, text: str | None = None) -> list[str]:
    """Every backticked key in the first column of the first table under `heading`, in order."""
    lines = (text if text is not None else DOC.read_text(encoding="utf-8")).splitlines()
    start = lines.index(heading)
    keys: list[str] = []
    in_table = False
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        first = line.split("|")[1]
        if set(first.strip()) <= set("-: ") or first.strip() == "key":
            continue
        keys += _KEY.findall(first)
    assert keys, f"no key table under {heading!r}"
    return keys


TABLES = [
    ("## Top level", Report),
    ("### `run`", RunInfo),
    ("### `verdict`", Verdict),
    ("### `method`", Method),
    ("## Interval objects", Interval),
    ("## `judges[]` (headline) and `sections[].judges[]`", JudgeFigures),
    ("### `judges[].power`", Power),
    ("## `agreement[]`", Agreement),
]


@pytest.mark.parametrize(("heading", "cls"), TABLES, ids=[h.lstrip("# ") for h, _ in TABLES])
def test_the_doc_table_lists_the_records_keys_in_json_order(heading: str, cls: type[Record]) -> None:
    assert table_keys(heading) == json_keys(cls)


def test_a_section_entry_holds_a_subset_of_the_headline_keys() -> None:
    """`sections[].judges[]` shares the headline table; every key it writes is documented there."""
    headline = table_keys("## `judges[]` (headline) and `sections[].judges[]`")
    assert set(json_keys(SectionJudgeFigures)) <= set(headline)


def test_every_record_class_is_named_on_the_doc_page() -> None:
    """The page's table of sections and classes names every record of report/schema.py."""
    text = DOC.read_text(encoding="utf-8")
    records = [name for name, obj in vars(schema).items()
               if isinstance(obj, type) and issubclass(obj, Record) and obj is not Record
               and obj.__module__ == schema.__name__ and name != "OutcomeFigures"]
    assert len(records) > 40
    missing = [name for name in records if f"`{name}`" not in text]
    assert not missing, f"not named in docs/report-schema.md: {missing}"


def test_the_parser_sees_a_moved_row() -> None:
    """The check can fail: a doc whose rows are swapped reads in the wrong order."""
    text = DOC.read_text(encoding="utf-8")
    swapped = text.replace("| `schema` | string |", "| `tmp` | string |", 1)
    swapped = swapped.replace("| `schema_version` | int |", "| `schema` | string |", 1)
    swapped = swapped.replace("| `tmp` | string |", "| `schema_version` | int |", 1)
    assert table_keys("## Top level", swapped) != json_keys(Report)
    assert sorted(table_keys("## Top level", swapped)) == sorted(json_keys(Report))
