"""Model prices as data (per million tokens), overridable per suite, and the cost arithmetic.

Prices live in `brie_bench/data/prices.yaml`, not in code, so updating one is a
one-line data change. Local models have no price: their cost is reported as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from collections.abc import Iterable, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, le=10_000, description="USD per million input tokens")
    output: float = Field(ge=0, le=10_000, description="USD per million output tokens")
    batch: float = Field(default=0.5, gt=0, le=1, description="multiplier for batch APIs")


@lru_cache(maxsize=1)
def builtin_prices() -> dict[str, Price]:
    text = resources.files("brie_bench").joinpath("data", "prices.yaml").read_text("utf-8")
    return {model: Price.model_validate(p) for model, p in (yaml.safe_load(text) or {}).items()}


def price_table(overrides: Mapping[str, Price] | None = None) -> dict[str, Price]:
    table = dict(builtin_prices())
    table.update(overrides or {})
    return table


@dataclass(frozen=True)
class Cost:
    usd: float
    priced: bool  # False when the model has no known price

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.usd + other.usd, self.priced and other.priced)


def cost(table: Mapping[str, Price], model: str | None, input_tokens: int, output_tokens: int,
         *, batch: bool = False, local: bool = False) -> Cost:
    if local:
        return Cost(0.0, True)
    price = table.get(model or "")
    if price is None:
        return Cost(0.0, input_tokens == 0 and output_tokens == 0)
    factor = price.batch if batch else 1.0
    return Cost((input_tokens * price.input + output_tokens * price.output) * factor / 1e6, True)


def format_cost(c: Cost) -> str:
    return f"${c.usd:,.4f}" if c.priced else (f"${c.usd:,.4f}+ (unknown price)" if c.usd else "unknown price")


@dataclass(frozen=True)
class UsageLine:
    """Tokens one contender or judge used (or is expected to use) on one model."""

    name: str
    model: str | None
    input_tokens: int
    output_tokens: int
    local: bool


def costs_by_name(table: Mapping[str, Price], lines: Iterable[UsageLine]) -> dict[str, tuple[Cost, bool]]:
    """The one place usage becomes money: (cost, local) per contender or judge name.

    Used by the run's estimate, the run summary and every report, so the three can
    never disagree. A local name (own hardware, or a server on this machine) costs 0.
    """
    out: dict[str, tuple[Cost, bool]] = {}
    for line in lines:
        c = cost(table, line.model, line.input_tokens, line.output_tokens, local=line.local)
        previous = out.get(line.name, (Cost(0.0, True), line.local))[0]
        out[line.name] = (previous + c, line.local)
    return out


def snapshot_price_table(prices: Mapping[str, Any] | None) -> dict[str, Price]:
    """The price table a stored run used (its suite's `prices:` over the built-ins); bad entries are skipped."""
    overrides: dict[str, Price] = {}
    for model, p in (prices or {}).items():
        try:
            overrides[model] = Price.model_validate(p)
        except ValueError:  # a bad price must not break a report of a finished run
            continue
    return price_table(overrides)
