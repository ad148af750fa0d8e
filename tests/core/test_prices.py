"""Prices: the built-in table, a suite's `prices:` (validated by pydantic, errors with file and line),
and the prices a stored run carries (read without pydantic, bad entries skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brie_bench.prices import Price, UsageLine, builtin_prices, costs_by_name, snapshot_price_table

REPO = Path(__file__).resolve().parents[2]


def test_every_builtin_price_is_valid_and_typed() -> None:
    table = builtin_prices()
    assert table and all(isinstance(p, Price) for p in table.values())
    assert all(0 < p.batch <= 1 and p.input >= 0 and p.output >= 0 for p in table.values())


@pytest.mark.parametrize(("value", "problem"), [
    ({"input": 1}, "price output is missing"),
    ({"input": 1, "output": 2, "fooo": 3}, "unknown price key 'fooo' (known keys: batch, input, output)"),
    ({"input": -1, "output": 2}, "out of range"),
    ({"input": 1, "output": 2, "batch": 0}, "out of range"),
    ({"input": 1, "output": 20_000}, "out of range"),
    ({"input": True, "output": 2}, "finite number"),
    ({"input": float("nan"), "output": 2}, "finite number"),
    ({"input": "1", "output": 2}, "finite number"),
    (3, "is a mapping"),
])
def test_a_price_read_outside_a_suite_is_checked(value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        Price.from_mapping(value)
    assert problem in str(info.value)


def test_a_stored_runs_prices_override_the_builtins_and_bad_ones_are_skipped() -> None:
    table = snapshot_price_table({"my-model": {"input": 2.0, "output": 4.0},
                                  "gpt-4o": {"input": -5, "output": 1}})  # damaged: the built-in price stays
    assert table["my-model"] == Price(2.0, 4.0)
    assert table["gpt-4o"] == builtin_prices()["gpt-4o"]
    (cost, local), = costs_by_name(table, [UsageLine("j", "my-model", 1_000_000, 500_000, False)]).values()
    assert cost.priced and cost.usd == pytest.approx(2.0 + 2.0) and not local


@pytest.mark.parametrize(("entry", "message"), [
    ("    fooo: 3", "prices.tiny:qwen2.fooo: unknown key 'fooo' (known keys: batch, input, output)"),
    ("    batch: 0", "prices.tiny:qwen2.batch: Input should be greater than 0"),
    ("    batch: 1.5", "prices.tiny:qwen2.batch: Input should be less than or equal to 1"),
])
def test_a_suites_bad_price_is_one_line_with_its_line_and_exit_2(tmp_path: Path, entry: str, message: str) -> None:
    suite = tmp_path / "suite.yaml"
    text = (REPO / "suites" / "smoke.yaml").read_text(encoding="utf-8")
    suite.write_text(text + "\nprices:\n  tiny:qwen2:\n    input: 1\n    output: 2\n" + entry + "\n", encoding="utf-8")
    line = len((text + "\nprices:\n  tiny:qwen2:\n    input: 1\n    output: 2\n").splitlines()) + 1
    proc = subprocess.run([sys.executable, "-m", "brie_bench", "validate", str(suite)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {suite}:{line}: {message}"
    assert "Traceback" not in proc.stderr
