"""Words and table rows for the report's power figures, shared by the terminal, Markdown and HTML renderers.

The figures themselves are in each judge entry's `power` object (built by
`brie_bench.power.report_entry`); this module only phrases them, so that the three
renderers say the same thing. The samples-per-prompt recommendation is shown once
per report: the judges' variance components are averaged, because the layout
(how many samples per prompt) is chosen once for all judges.
"""

from __future__ import annotations

from typing import Any

from brie_bench import power

MDE_CAPTION = ("Minimum detectable effect: the smallest true distance of the win rate from 50% that this run's "
               "layout detects 80% of the time (two-sided test at α = 0.05, prompts as clusters), from the "
               "run's own variance between and within prompts.")


def mde_text(p: dict[str, Any] | None) -> str:
    """'±12 pts (62% / 38%)', 'none (reason)' when the run gives none, or '–' without a power object."""
    if not p:
        return "–"
    if p.get("mde") is None:
        return f"none ({p['mde_reason']})" if p.get("mde_reason") else "–"
    if p.get("detectable_above") is None:
        return f"±{100 * p['mde']:.0f} pts (too few prompts)"
    return f"±{100 * p['mde']:.0f} pts ({100 * p['detectable_above']:.0f}% / {100 * p['detectable_below']:.0f}%)"


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per judge entry with its power figures: judge, candidate, prompts, mde, statement."""
    out = []
    for j in report.get("judges") or []:
        p = j.get("power")
        if not p:
            continue
        out.append({"judge": j["judge"], "candidate": j["candidate"], "n_prompts": p.get("n_prompts"),
                    "mde": mde_text(p), "statement": p.get("statement") or "", "prompts_needed": p.get("prompts_needed"),
                    "effect": p.get("effect"), "mde_reason": p.get("mde_reason")})
    return out


def recommendation(report: dict[str, Any]) -> str | None:
    """One samples-per-prompt recommendation for the whole report (None without power figures)."""
    entries = [j["power"] for j in report.get("judges") or [] if j.get("power")]
    if not entries:
        return None
    known = [e["variance"] for e in entries if e["variance"].get("identified")
             and e["variance"].get("between_prompt") is not None and e["variance"].get("within_prompt") is not None]
    if not known:
        sentence: str = entries[0]["recommendation"]  # power.samples_sentence's text, stored in the report
        return sentence
    between = sum(v["between_prompt"] for v in known) / len(known)
    within = sum(v["within_prompt"] for v in known) / len(known)
    comp = power.VarianceComponents(0.5, between + within, between, within, float("nan"), (), True)
    k = power.recommended_samples(between, within)
    suffix = "" if len(known) == 1 else f" (averaged over {len(known)} judges)"
    return power.samples_sentence(comp, k) + suffix
