"""How a statistic becomes report data: finite numbers, intervals with their trust verdict.

Shared by every table of the report (`report.model`) and by the figures built beside it
(`report.controls`, `report.compare`), so each says "trusted" by one rule.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from brie_bench import stats
from brie_bench.report.schema import Interval

I = TypeVar("I", bound=Interval)

#: Below this many prompts a clustered interval is too rough to read, even where it exists.
MIN_PROMPTS = 5


def finite(x: float | None) -> float | None:
    """A float, or None for NaN/inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


METHOD_NOTES = {
    "effective-n": "exact interval on the effective number of judgments (clustered by prompt)",
    "paired-newcombe": "paired interval over the prompts both runs judged (Newcombe, effective sizes)",
    "cluster-t": "cluster-robust t interval (fewer prompts than the bootstrap needs)",
    "clopper-pearson-prompts": "every verdict went the same way: exact Clopper-Pearson interval over prompts",
}


def report_interval(ci: stats.Interval, *, min_prompts: int = MIN_PROMPTS,
                    span: tuple[float, float] | None = None) -> Interval:
    """An `Interval` as report record, with the trust verdict the report prints next to it.

    `span` is the range the statistic can take ((0, 1) for rates, the default; (-1, 1)
    for paired differences; (-4, 4) for score differences): an interval covering all
    of it but 0.1% at each end rules nothing out and is never trusted. Nor is one of
    zero width, or one from a fit that ran to a bound (`Interval.problem`); a problem
    that starts with "cannot be estimated" also withholds the estimate.
    """
    if span is None:
        span = (-1.0, 1.0) if ci.method.startswith("paired") else (0.0, 1.0)
    clusters = ci.n_clusters
    reason = stats.degenerate_reason(ci, span)
    estimate, low, high = finite(ci.estimate), finite(ci.low), finite(ci.high)
    if ci.problem and ci.problem.startswith("cannot be estimated"):
        note = ci.problem
        estimate = low = high = None
    elif ci.n == 0:
        note = "cannot be trusted: no valid verdict"
    elif not ci.reliable:
        note = f"cannot be trusted: only {clusters or 0} prompt{'' if clusters == 1 else 's'}, no interval exists"
    elif clusters is not None and clusters < min_prompts:
        note = f"cannot be trusted: only {clusters} prompts"
    elif reason:
        note = f"cannot be trusted: {reason}"
    else:
        note = None
    return Interval(estimate=estimate, low=low, high=high, level=ci.level, method=ci.method,
                    method_note=METHOD_NOTES.get(ci.method), n=ci.n, n_prompts=clusters,
                    reliable=ci.reliable and estimate is not None, trusted=note is None, note=note)


def wilson_interval(ci: stats.Interval) -> Interval:
    """A Wilson interval (each row its own unit): trusted when it exists and is not degenerate."""
    reason = stats.degenerate_reason(ci)
    note = "cannot be trusted: no data" if not ci.reliable else (f"cannot be trusted: {reason}" if reason else None)
    return Interval(estimate=finite(ci.estimate), low=finite(ci.low), high=finite(ci.high), level=ci.level,
                    method=ci.method, method_note=None, n=ci.n, n_prompts=None, reliable=ci.reliable,
                    trusted=note is None, note=note)


def interval_fields(ci: Interval) -> dict[str, Any]:
    """An interval's own fields, for a record that extends one (`LengthControlled(**interval_fields(ci), ...)`)."""
    return {f.name: getattr(ci, f.name) for f in dataclasses.fields(Interval)}


def withheld(ci: I, reason: str) -> I:
    """The interval with its figures blanked: the judge gives no estimate, only the reason (a copy; records are frozen)."""
    return dataclasses.replace(ci, estimate=None, low=None, high=None, reliable=False, trusted=False,
                               note=f"cannot be estimated: {reason}")
