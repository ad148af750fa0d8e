"""Markdown for a model card: per-judge and per-section tables, an agreement line, and the model-index block.

Cells are escaped (pipes, newlines, angle brackets) because names come from
suite files and a model card renders HTML. Untrusted intervals say so in the
cell rather than being silently printed as findings.
"""

from __future__ import annotations

import math
from typing import Any

from brie_bench.modelcard import model_index, model_index_yaml
from brie_bench.report.charts import pct
from brie_bench.report.majority import majority_note
from brie_bench.report.schema import Interval, Report
from brie_bench.textsafe import printable

#: `model_index` is re-exported: the card metadata is built in brie_bench.modelcard through huggingface_hub.
__all__ = ["cell", "ci_text", "model_index", "model_index_yaml", "render_markdown"]


def cell(value: Any) -> str:
    """One table cell: no pipe, newline or HTML can break the table or the card."""
    text = "–" if value is None else printable(str(value).replace("\r", " ").replace("\n", " "))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def ci_text(ci: Interval) -> str:
    """'62.5% (48.0–75.1%)' or '62.5% (cannot be trusted: only 3 prompts)'."""
    est = pct(ci.estimate)
    if not ci.trusted:
        return f"{est} ({ci.note})"
    return f"{est} ({pct(ci.low)[:-1]}–{pct(ci.high)})"


def _row(values: list[Any]) -> str:
    return "| " + " | ".join(cell(v) for v in values) + " |"


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 0) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    return [_row(header), "| " + " | ".join(align) + " |", *(_row(r) for r in rows)]


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _power_lines(report: Report, multi: bool) -> list[str]:
    """The '### Power' block: minimum detectable effect per judge and the samples-per-prompt advice, once."""
    from brie_bench.report import power_text

    rows = power_text.rows(report)
    if not rows:
        return []
    header = ["Judge"] + (["Candidate"] if multi else []) + ["Prompts", "Minimum detectable effect (80% power)",
                                                             "What this run can tell"]
    table = [[r.judge] + ([r.candidate] if multi else []) + [r.n_prompts, r.mde, r.statement]
             for r in rows]
    out = ["### Power", "", power_text.MDE_CAPTION, ""] + _table(header, table, numeric_from=99) + [""]
    advice = power_text.recommendation(report)
    return out + ([cell(advice), ""] if advice else [])


#: Warning kinds in the order the Caveats list gives them (anything else follows).
CAVEAT_ORDER = ("legacy-labels", "legacy-parse", "status", "empty", "few-prompts", "no-information", "label-bias",
                "position-bias", "order-flips", "order-flips-injection", "length-bias", "untrusted", "invalid")


def caveat_lines(report: Report) -> list[str]:
    """The '### Caveats' list: every warning the HTML report shows, so a pasted model card keeps them."""
    warnings = sorted(report.warnings, key=lambda w: CAVEAT_ORDER.index(w.kind)
                      if w.kind in CAVEAT_ORDER else len(CAVEAT_ORDER))
    if not warnings:
        return []
    return ["### Caveats", "", *(f"- **{cell(w.kind)}**: {cell(w.text)}" for w in warnings), ""]


def verdict_lines(report: Report) -> list[str]:
    """The verdict (brie_bench.conclusion) as the card's opening paragraph, one per candidate."""
    verdict = report.verdict
    texts = [c.text for c in verdict.candidates] or [verdict.text]
    return [line for text in texts for line in (f"**Verdict:** {cell(text)}", "")]


def render_markdown(report: Report, *, model_index: bool = False, model_name: str | None = None) -> str:
    """Tables ready to paste into a model card; with `model_index`, the YAML block as well."""
    run = report.run
    multi = len({j.candidate for j in report.judges}) > 1
    out = [f"## Brie Bench: {cell(run.suite)}", ""]
    out += verdict_lines(report)
    out += caveat_lines(report)
    out += [
        f"{'Pairwise comparison (imported; labels not randomised)' if run.legacy else 'Blind pairwise comparison'}"
        f" against the baseline (run `{cell(run.id)}`, seed {run.seed}, "
        f"{run.n_judgments} judgments over {run.n_prompts} distinct prompts). Win rate counts a tie as half a win; "
        "95% intervals treat whole prompts as the unit (for win rates, an exact interval on the effective number "
        "of judgments, which stays honest near 0% and 100%; see the report's method notes). Invalid verdicts are "
        "excluded and counted.",
        "",
        "### Per judge",
        "",
    ]
    header = ["Judge", "Judge model"] + (["Candidate"] if multi else []) + \
        ["Wins", "Losses", "Ties", "Invalid", "Win rate (95% CI)", "Strict win rate", "Prompts"]
    rows = []
    for j in report.judges:
        rows.append([j.judge, j.model or "–"] + ([j.candidate] if multi else []) +
                    [j.wins, j.losses, j.ties, j.invalid, ci_text(j.ci95),
                     pct(j.strict_win_rate), j.n_prompts])
    for ag in (ag for ag in report.agreement if majority_note(ag) is None):  # 3+ voters: see majority.py
        mv = ag.majority_vote
        voters = ", ".join(mv.judges or ag.judges)
        if mv.left_out:
            voters += f" (left out, no information: {', '.join(mv.left_out)})"
        rows.append(["majority vote", voters] + ([ag.candidate] if multi else []) +
                    [mv.wins, mv.losses, mv.ties, mv.invalid, ci_text(mv.ci95),
                     pct(mv.strict_win_rate), mv.n_prompts])
    out += _table(header, rows, numeric_from=3 if multi else 2) + [""]
    for j in report.judges:  # the style-controlled and the human-calibrated rate, a sentence each
        for name, block in (("Style-controlled", j.style_controlled), ("Human-calibrated", j.human_calibrated)):
            if block is not None and block.sentence:
                who = cell(j.judge) + (f", {cell(j.candidate)}" if multi else "")
                out += [f"**{name}** ({who}): {cell(block.sentence)}", ""]
    out += _power_lines(report, multi)
    out += ["### Per section", ""]
    header = ["Section", "Judge"] + (["Candidate"] if multi else []) + ["W / L / T / invalid", "Win rate (95% CI)",
                                                                       "Prompts"]
    rows = [[s.section, e.judge] + ([e.candidate] if multi else []) +
            [f"{e.wins} / {e.losses} / {e.ties} / {e.invalid}", ci_text(e.ci95), e.n_prompts]
            for s in report.sections for e in s.judges]
    out += _table(header, rows, numeric_from=99) + [""]
    for ag in report.agreement:
        out.append(
            f"**Agreement** ({cell(ag.candidate)}, {len(ag.judges)} judges): all judges agree on "
            f"{pct(ag.percent_all)} of {ag.n_complete} comparisons; Fleiss' κ = {_fmt(ag.fleiss_kappa)}, "
            f"Krippendorff's α = {_fmt(ag.krippendorff_alpha)}, Gwet's AC1 = {_fmt(ag.gwet_ac1)}. "
            "Kappa can be low while judges mostly agree, when one verdict dominates (the kappa paradox); "
            "AC1 and percent agreement are not affected."
            + (f" {cell(note[0].upper() + note[1:])}." if (note := majority_note(ag)) else "") + "".join(
                f" {cell(family)} is one judge here, a family of {cell(', '.join(models))}."
                for family, models in ag.families.items()))
        out.append("")
        for h in ag.human_llm:
            out += [f"**{cell(h.human)} (a person, blind) and {cell(h.judge)}** agree on {pct(h.percent)} "
                    f"of {h.n} comparisons (Cohen's κ = {_fmt(h.cohen_kappa)}).", ""]
    if not report.agreement:
        out += ["**Agreement:** one judge per candidate, so no agreement figure.", ""]
    if model_index:
        out += ["### model-index", "",
                "Paste into the model card's YAML front matter (between the `---` lines):", "",
                "```yaml", model_index_yaml(report, model_name).rstrip(), "```", ""]
    return "\n".join(out)
