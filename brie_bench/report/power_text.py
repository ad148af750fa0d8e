"""Words and table rows for the report's power figures, shared by the terminal, Markdown and HTML renderers.

The figures themselves are in each judge entry's `power` object (built by
`brie_bench.power.report_entry`); this module only phrases them, so that the three
renderers say the same thing. The samples-per-prompt recommendation is shown once
per report: the judges' variance components are averaged, because the layout
(how many samples per prompt) is chosen once for all judges.
"""

from __future__ import annotations

from dataclasses import dataclass

from brie_bench import power
from brie_bench.report.schema import Power, Report

MDE_CAPTION = ("Minimum detectable effect: the smallest true distance of the win rate from 50% that this run's "
               "layout detects 80% of the time (two-sided test at α = 0.05, prompts as clusters), from the "
               "run's own variance between and within prompts.")


def mde_text(p: Power | None) -> str:
    """'±12 pts (62% / 38%)', 'none (reason)' when the run gives none, or '–' without a power object."""
    if p is None:
        return "–"
    if p.mde is None:
        return f"none ({p.mde_reason})" if p.mde_reason else "–"
    if p.detectable_above is None or p.detectable_below is None:
        return f"±{100 * p.mde:.0f} pts (too few prompts)"
    return f"±{100 * p.mde:.0f} pts ({100 * p.detectable_above:.0f}% / {100 * p.detectable_below:.0f}%)"


@dataclass(frozen=True, slots=True)
class PowerRow:
    """One row of the power table the renderers print (words, not report data)."""

    judge: str
    candidate: str
    n_prompts: int
    mde: str
    statement: str
    prompts_needed: int | None
    effect: float
    mde_reason: str | None


def rows(report: Report) -> list[PowerRow]:
    """One row per judge entry with its power figures: judge, candidate, prompts, mde, statement."""
    return [PowerRow(judge=j.judge, candidate=j.candidate, n_prompts=j.power.n_prompts, mde=mde_text(j.power),
                     statement=j.power.statement or "", prompts_needed=j.power.prompts_needed,
                     effect=j.power.effect, mde_reason=j.power.mde_reason) for j in report.judges]


def recommendation(report: Report) -> str | None:
    """One samples-per-prompt recommendation for the whole report (None without power figures)."""
    entries = [j.power for j in report.judges]
    if not entries:
        return None
    known = [(e.variance.between_prompt, e.variance.within_prompt) for e in entries if e.variance.identified]
    pairs = [(b, w) for b, w in known if b is not None and w is not None]
    if not pairs:
        return entries[0].recommendation  # power.samples_sentence's text, stored in the report
    between = sum(b for b, _ in pairs) / len(pairs)
    within = sum(w for _, w in pairs) / len(pairs)
    comp = power.VarianceComponents(0.5, between + within, between, within, float("nan"), (), True)
    k = power.recommended_samples(between, within)
    suffix = "" if len(pairs) == 1 else f" (averaged over {len(pairs)} judges)"
    return power.samples_sentence(comp, k) + suffix
