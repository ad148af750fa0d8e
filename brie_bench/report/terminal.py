"""The report as rich tables in the terminal (`brie-bench report` with no format flag)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from brie_bench.termtable import Notes, legend, new_table, print_table
from brie_bench.textsafe import safe_text

from brie_bench.report.charts import pct
from brie_bench.report.majority import majority_note
from brie_bench.report.schema import Interval, Report


def _ci(ci: Interval, notes: Notes) -> Text:
    """"48–75%", with a mark pointing at the note under the table when it cannot be trusted."""
    low, high = ci.low, ci.high
    text = f"{100 * low:.0f}–{100 * high:.0f}%" if low is not None and high is not None else "–"
    if not ci.trusted:
        return safe_text(text + notes.mark(ci.note), style="red")
    return safe_text(text)


def _who(name: str, model: str | None) -> Text:
    """A judge's name, with its model on a second line when that says something more."""
    text = safe_text(name)
    if model and model != name:
        text.append("\n")
        text.append_text(safe_text(model, style="dim"))
    return text


def print_report(console: Console, report: Report) -> None:
    """The verdict, then per-judge and per-section tables, agreement, and every warning, fitted to the terminal's width."""
    print_verdict(console, report)
    run = report.run
    candidates = list(dict.fromkeys([j.candidate for j in report.judges]))
    baseline = report.judges[0].baseline if report.judges else "baseline"
    one = len(candidates) <= 1
    against = f"{candidates[0]} against {baseline}" if len(candidates) == 1 else f"each candidate against {baseline}"
    notes = Notes()
    table = new_table(f"Run {run.id} ({run.suite}): {against}")
    # Several candidates: each heads a group of judge rows (a column of its own would not fit 80).
    indent = "" if one else "  "
    for col in ("judge" if one else "candidate / judge", "W", "L", "T", "inv", "win%", "95% CI", "strict", "n"):
        table.add_column(col, justify="left" if "judge" in col else "right")
    for candidate in candidates:
        if not one:
            table.add_row(safe_text(candidate, style="bold"), *[""] * 8)
        for j in (j for j in report.judges if j.candidate == candidate):
            table.add_row(_who(indent + j.judge, j.model), str(j.wins), str(j.losses), str(j.ties),
                          str(j.invalid), pct(j.ci95.estimate), _ci(j.ci95, notes),
                          pct(j.strict_win_rate), str(j.n_prompts))
        for ag in (ag for ag in report.agreement if ag.candidate == candidate and majority_note(ag) is None):
            mv = ag.majority_vote
            table.add_row(safe_text(indent + "majority vote", style="italic"), str(mv.wins), str(mv.losses),
                          str(mv.ties), str(mv.invalid), pct(mv.ci95.estimate), _ci(mv.ci95, notes),
                          pct(mv.strict_win_rate), str(mv.n_prompts))
    for fj in report.failed_judges:
        mark = notes.mark(f"{fj.judge}: no verdict, all {fj.failed_units} judge calls failed "
                          f"({fj.kind}: {fj.message})")
        table.add_row(_who(fj.judge, fj.model), "-", "-", "-", "-", "-",
                      safe_text("failed" + mark, style="red"), "-", "-")
    print_table(console, table)
    legend(console, [("W/L/T", "comparisons won/lost/tied"), ("inv", "invalid, never counted"),
                     ("win%", "ties count half"), ("95% CI", "clustered by prompt"),
                     ("strict", "W/(W+L+T)"), ("n", "prompts")])
    notes.print(console, style="red")
    sections = new_table("Per section")
    for col in ("section / judge" if one else "section / candidate / judge", "W", "L", "T", "inv", "win%",
                "95% CI", "n"):
        sections.add_column(col, justify="left" if "judge" in col else "right")
    notes = Notes()
    for s in report.sections:
        sections.add_row(safe_text(s.section, style="bold"), *([""] * 7))
        for candidate in candidates:
            entries = [e for e in s.judges if e.candidate == candidate]
            if not one and entries:
                sections.add_row(safe_text("  " + candidate, style="bold"), *([""] * 7))
            for e in entries:
                sections.add_row(safe_text("  " + indent + e.judge), str(e.wins), str(e.losses),
                                 str(e.ties), str(e.invalid), pct(e.ci95.estimate),
                                 _ci(e.ci95, notes), str(e.n_prompts))
    print_table(console, sections)
    notes.print(console, style="red")
    from brie_bench.report import power_text

    for pw in power_text.rows(report):
        if pw.mde_reason:  # no figure: the statement says why and what to plan from
            console.print(safe_text(f"power ({pw.judge}, {pw.candidate}): {pw.statement}"))
            continue
        console.print(safe_text(f"power ({pw.judge}, {pw.candidate}): detectable {pw.mde} with "
                                f"{pw.n_prompts} prompts at 80% power. {pw.statement}"))
    if (advice := power_text.recommendation(report)):
        console.print(safe_text(advice))
    for j in report.judges:  # one plain sentence each, style and what people would say
        for name, block in (("style-controlled", j.style_controlled), ("human-calibrated", j.human_calibrated)):
            if block is not None and block.sentence:
                console.print(safe_text(f"{name} ({j.judge}, {j.candidate}): {block.sentence}"))
    for b in report.bias:
        oc = b.order_consistency
        if oc.n_pairs:  # the flip rate is always shown: it is how consistent the judge is
            kept = oc.n_pairs - oc.n_flipped
            console.print(safe_text(
                f"order consistency ({b.judge}, {b.candidate}): {kept} of {oc.n_pairs} comparisons judged "
                f"in both orders ({pct(oc.consistent)}) kept their verdict when the answers swapped places; flips "
                f"{oc.toward_first} towards the first-shown answer, {oc.toward_second} towards "
                "the second" + ("; flagged, see the warnings" if oc.warn else "; no sign of position bias")))
    for ag in report.agreement:
        console.print(safe_text(
            f"agreement ({ag.candidate}): all judges agree on {pct(ag.percent_all)} of {ag.n_complete}; "
            f"Fleiss κ {_num(ag.fleiss_kappa)}, Krippendorff α {_num(ag.krippendorff_alpha)}, "
            f"Gwet AC1 {_num(ag.gwet_ac1)}" + (f"; {note}" if (note := majority_note(ag)) else "")))
        for family, models in ag.families.items():
            console.print(safe_text(f"  {family} is one judge here, a family of: {', '.join(models)}"))
        for h in ag.human_llm:
            console.print(safe_text(f"  {h.human} (a person) and {h.judge} agree on {pct(h.percent)} of "
                                    f"{h.n} comparisons; Cohen κ {_num(h.cohen_kappa)}"))
    for rk in report.ranking:
        console.print(safe_text(f"Bradley–Terry ({rk.judge}, anchor {rk.anchor} = 0): " + ", ".join(
            f"{c.contender} {_num(c.strength)} [{_num(c.low)}, {_num(c.high)}]"
            for c in sorted(rk.contenders, key=lambda c: -(c.strength or 0)))))
    for w in report.warnings:
        console.print(safe_text(f"warning: {w.text}", style="yellow"))  # wrapped between words


def print_verdict(console: Console, report: Report) -> None:
    """The verdict sentences (brie_bench.conclusion), one paragraph per candidate, before any table."""
    verdict = report.verdict
    for text in [c.text for c in verdict.candidates] or [verdict.text]:
        console.print(safe_text(f"Verdict: {text}", style="bold"))  # wrapped between words
    console.print()


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
