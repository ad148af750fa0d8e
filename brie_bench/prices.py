"""Model prices as data (per million tokens), overridable per suite, and the cost arithmetic.

Prices live in `brie_bench/data/prices.yaml`, not in code, so updating one is a
one-line data change. Local models have no price: their cost is reported as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from collections.abc import Mapping

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


def usage_rows_cost(table: Mapping[str, Price], rows: list[dict[str, Any]], *, model_key: str,
                    local: bool = False) -> Cost:
    total = Cost(0.0, True)
    for r in rows:
        total = total + cost(table, r.get(model_key), r.get("input_tokens") or 0, r.get("output_tokens") or 0,
                             local=local)
    return total
