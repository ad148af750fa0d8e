"""Model prices as data (per million tokens), overridable per suite, and the cost arithmetic.

Prices live in `brie_bench/data/prices.yaml`, not in code, so updating one is a
one-line data change. Local models have no price: their cost is reported as 0.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache, cache
from importlib import resources
from typing import Annotated, Any, ClassVar, cast, get_type_hints
from collections.abc import Iterable, Mapping

import annotated_types as at


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, and the multiplier for batch APIs.

    A plain dataclass, not a pydantic model: `brie-bench report` reads prices, and the
    first pydantic model of a process costs about 0.1 s to build (docs/performance.md).
    A suite's `prices:` are still validated by pydantic (it honours the `annotated_types`
    bounds and the config below); prices read elsewhere go through `from_mapping`.
    """

    input: Annotated[float, at.Ge(0), at.Le(10_000)]
    output: Annotated[float, at.Ge(0), at.Le(10_000)]
    batch: Annotated[float, at.Gt(0), at.Le(1)] = 0.5
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    @classmethod
    def from_mapping(cls, value: Any) -> Price:
        """A price from {input, output[, batch]}, checked against the bounds annotated above (the
        same ones pydantic applies to a suite); a `ValueError` names what is wrong."""
        if not isinstance(value, Mapping):
            raise ValueError(f"a price is a mapping with input and output, got {type(value).__name__}")
        rules = _price_rules()
        unknown = sorted(str(k) for k in value if k not in rules)
        if unknown:
            raise ValueError(f"unknown price key {unknown[0]!r} (known keys: {', '.join(sorted(rules))})")
        out: dict[str, float] = {}
        for name, (bounds, required) in rules.items():
            if name not in value:
                if required:
                    raise ValueError(f"price {name} is missing")
                continue
            v = value[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"price {name} must be a finite number, got {v!r}")
            if not all(_within(v, bound) for bound in bounds):
                raise ValueError(f"price {name} {v!r} is out of range")
            out[name] = float(v)
        return cls(**out)


@cache
def _price_rules() -> dict[str, tuple[tuple[Any, ...], bool]]:
    """Each `Price` field's `annotated_types` bounds, and whether it is required (has no default)."""
    hints = get_type_hints(Price, include_extras=True)
    return {f.name: (getattr(hints[f.name], "__metadata__", ()), f.default is MISSING) for f in fields(Price)}


def _within(v: float, bound: Any) -> bool:
    """Whether `v` keeps one `annotated_types` bound (the kinds `Price` uses)."""
    if isinstance(bound, at.Ge):
        return v >= cast(float, bound.ge)
    if isinstance(bound, at.Gt):
        return v > cast(float, bound.gt)
    if isinstance(bound, at.Le):
        return v <= cast(float, bound.le)
    if isinstance(bound, at.Lt):
        return v < cast(float, bound.lt)
    raise TypeError(f"unsupported bound {bound!r}")


@lru_cache(maxsize=1)
def builtin_prices() -> dict[str, Price]:
    import yaml

    text = resources.files("brie_bench").joinpath("data", "prices.yaml").read_text("utf-8")
    return {model: Price.from_mapping(p) for model, p in (yaml.safe_load(text) or {}).items()}


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
            overrides[model] = Price.from_mapping(p)
        except ValueError:  # a bad price must not break a report of a finished run
            continue
    return price_table(overrides)
