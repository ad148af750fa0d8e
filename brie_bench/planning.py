"""`brie-bench run SUITE --dry-run --power`: can this suite answer its question, and what would it take?

Before any judge is paid, the suite's layout (prompts, samples, sections that reuse a
prompt, orders, judges) says how precisely a win rate can be measured. This module
reads the layout from the plan (no model, no API: plugins are instantiated but never
called), takes variance components from a pilot run when one is named (`--pilot RUN`)
or else conservative defaults (`brie_bench.power.default_components`), and prints the
minimum detectable effect, the prompts needed for a given effect (`--effect`, default
10 points), and the calls and estimated cost that larger layout implies. The formulas
live in `brie_bench.power`; this is only the plumbing and the words.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console

from brie_bench import power
from brie_bench.errors import InputError
from brie_bench.textsafe import normalise_prompt, safe_text

if TYPE_CHECKING:
    from brie_bench.plan import Plan
    from brie_bench.runtime import Runtime
    from brie_bench.suite import Suite


def prompt_cluster(text: str) -> str:
    """The clustering unit for planning: the prompt's normalised text, as the report clusters.

    A prompt reused by several sections (reruns, temperature or length variations) is
    one cluster with several comparisons.
    """
    return normalise_prompt(text)


@dataclass(frozen=True)
class Layout:
    """Comparisons per prompt for one (judge, candidate), and the plan's call counts."""

    judge: str
    candidate: str
    sizes: tuple[int, ...]


def layouts(plan: Plan) -> list[Layout]:
    """One layout per (judge, candidate): how many comparisons each prompt gets (orders count once)."""
    per: dict[tuple[str, str], Counter[str]] = {}
    seen: set[tuple[str, str, str, str, int]] = set()
    for u in plan.judgments:
        key = (u.judge, u.candidate, u.section, u.prompt.id, u.sample_index)
        if key in seen:
            continue
        seen.add(key)
        per.setdefault((u.judge, u.candidate), Counter())[prompt_cluster(u.prompt.text)] += 1
    return [Layout(j, c, tuple(sorted(counts.values(), reverse=True))) for (j, c), counts in per.items()]


def _plural(n: int, word: str) -> str:
    """'1 section', '10 sections': as `brie-bench validate` counts."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _pts(x: float) -> str:
    return f"{100 * x:.0f}"


@dataclass(frozen=True)
class PilotVariance:
    """What a stored pilot run measured, per judge, and why any judge was passed over.

    Built from the store by `brie_bench.report.pilot.pilot_variance` (the report's own
    collapse of orders and its information rule), so planning needs neither the store nor
    the report.
    """

    run_id: str
    components: dict[str, power.VarianceComponents]
    skipped: list[str]


def print_power_plan(console: Console, suite: Suite, plan: Plan, runtime: Runtime | None, *,
                     effect: float = power.DEFAULT_EFFECT, pilot: PilotVariance | None = None,
                     alpha: float = power.ALPHA, target_power: float = power.POWER) -> None:
    """Print the power plan for a suite (see the module docstring)."""
    if not 0.0 < effect < 0.5:
        raise InputError(f"--effect must be between 0 and 0.5 (a win-rate distance from 50%), got {effect}")
    found = layouts(plan)
    if not found:
        console.print("power: the plan has no comparisons to judge")
        return
    measured = pilot.components if pilot is not None else {}
    skipped = pilot.skipped if pilot is not None else []
    console.print(safe_text(
        f"Power plan for {suite.name}: two-sided test at α = {alpha:g}, {target_power:.0%} power, prompts as "
        "clusters, as in the report's interval."))
    # The same words as `brie-bench validate`: entries and the distinct texts they hold, said once.
    n_entries = sum(len(s.prompts) for s in suite.sections)
    n_texts = len({prompt_cluster(p.text) for s in suite.sections for p in s.prompts})
    reused = n_texts != n_entries
    console.print(safe_text(
        f"Suite: {_plural(len(suite.sections), 'section')}, {_plural(n_entries, 'prompt')}"
        + (f" ({n_texts} distinct texts); below, a prompt is a distinct text, and each entry that asks it "
           "again adds comparisons to it." if reused else ".")))
    for line in skipped:
        console.print(safe_text(f"pilot {pilot.run_id if pilot else ''}: not used, judge {line}.", style="yellow"))
    if pilot is not None and not measured:
        console.print(safe_text(
            f"Pilot {pilot.run_id} gives no usable variance (no judge has a spread of outcomes that carries information), "
            f"so this plan falls back to the conservative defaults: variance {power.DEFAULT_TOTAL_VARIANCE:g} per "
            f"comparison (every verdict decisive at a 50% win rate), {power.DEFAULT_BETWEEN_SHARE:.0%} of it between "
            "prompts."))
    if pilot is None:
        console.print(safe_text(
            f"No pilot run: conservative variance {power.DEFAULT_TOTAL_VARIANCE:g} per comparison (every verdict "
            f"decisive at a 50% win rate), {power.DEFAULT_BETWEEN_SHARE:.0%} of it between prompts; "
            "`--pilot RUN` measures both from a stored run."))
    distinct = {lay.sizes for lay in found}
    shown = found if (measured or len(distinct) > 1) else found[:1]
    fallback = next(iter(measured.values()), None)
    cost_factor: float | None = None
    for lay in shown:
        comp = measured.get(lay.judge) or fallback
        if comp is None:
            comp = power.default_components(lay.sizes)
        who = f"judge {lay.judge}, {lay.candidate}: " if len(shown) > 1 or measured else ""
        n, m = len(lay.sizes), sum(lay.sizes)
        if measured:
            source = "this judge" if lay.judge in measured else "the pilot's first usable judge"
            v = comp.at_null()
            console.print(safe_text(
                f"{who}pilot variance ({source}): {v.total:.3f} per comparison at a 50% win rate, "
                f"{100 * v.between_share:.0f}% between prompts"
                + ("" if comp.identified else " (split assumed: every pilot prompt was judged once)")))
        delta = power.mde(comp, alpha, target_power, sizes=lay.sizes)
        console.print(safe_text(
            f"{who}layout: {n} {'distinct prompt texts' if reused else 'prompts'}, {m} comparisons "
            f"({m / n:.1f} per prompt); minimum detectable effect "
            + (f"±{_pts(delta)} points: a true win rate of {_pts(0.5 + delta)}% or more (or {_pts(0.5 - delta)}% "
               "or less) would be detected " f"{target_power:.0%} of the time."
               if math.isfinite(delta) and delta < 0.5 else "none: too few prompts for this test.")))
        needed = power.prompts_needed(effect, comp, alpha, target_power, sizes=lay.sizes)
        factor = needed / n
        cost_factor = factor if cost_factor is None else max(cost_factor, factor)
        console.print(safe_text(
            f"{who}to detect a {_pts(effect)}-point effect (a true win rate of {_pts(0.5 + effect)}% or "
            f"{_pts(0.5 - effect)}%): {needed} prompts with this layout (about {math.ceil(m * factor)} comparisons)"
            + ("; this suite has enough." if needed <= n else f", {needed - n} more than this suite has.")))
        if comp.identified:
            k = power.recommended_samples(comp.between, comp.within)
            console.print(safe_text(power.samples_sentence(comp, k)))
    if cost_factor is not None:
        _print_scaled_cost(console, suite, plan, runtime, cost_factor, effect)


def _print_scaled_cost(console: Console, suite: Suite, plan: Plan, runtime: Runtime | None, factor: float,
                       effect: float) -> None:
    """Calls and estimated cost of the layout scaled to the prompts the effect needs."""
    gen, judg = len(plan.generations), len(plan.judgments)
    line = (f"that layout implies about {math.ceil(gen * factor)} generation calls and {math.ceil(judg * factor)} "
            f"judge calls (this plan: {gen} and {judg})")
    if runtime is not None:
        from brie_bench.cost_estimate import estimate_costs
        from brie_bench.prices import Cost, format_cost

        estimates = estimate_costs(suite, runtime, plan, set(), set())
        total = sum(estimates.values(), Cost(0.0, True))
        scaled = Cost(total.usd * factor, total.priced)
        line += f", estimated cost {format_cost(scaled)} (this plan: {format_cost(total)})"
    console.print(safe_text(line + f", for a {_pts(effect)}-point effect."))
