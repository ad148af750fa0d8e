"""The report as rich tables in the terminal (`brie-bench report` with no format flag)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from brie_bench.textsafe import safe_text

from brie_bench.report.charts import pct


def _ci(ci: dict[str, Any]) -> Text:
    if not ci.get("trusted"):
        return safe_text(f"{pct(ci.get('estimate'))} {ci.get('note')}", style="red")
    return safe_text(f"{pct(ci['estimate'])} [{pct(ci['low'])}, {pct(ci['high'])}]")


def print_report(console: Console, report: dict[str, Any]) -> None:
    """Per-judge and per-section tables, agreement, and every warning, as plain rich output."""
    run = report["run"]
    table = Table(title=safe_text(f"Run {run['id']} ({run['suite']}): candidate against baseline"), box=box.SIMPLE_HEAD,
                  caption="win rate: ties count half; 95% CI resamples whole prompts (clustered bootstrap)")
    for col in ("judge", "model", "candidate", "W", "L", "T", "inv", "win rate [95% CI]", "strict", "prompts"):
        table.add_column(col, overflow="fold")
    for j in report["judges"]:
        table.add_row(safe_text(j["judge"]), safe_text(j["model"] or "-"), safe_text(j["candidate"]), str(j["wins"]),
                      str(j["losses"]), str(j["ties"]), str(j["invalid"]), _ci(j["ci95"]),
                      pct(j["strict_win_rate"]), str(j["n_prompts"]))
    for ag in report["agreement"]:
        mv = ag["majority_vote"]
        table.add_row(safe_text("majority vote", style="italic"), safe_text(", ".join(ag["judges"])), safe_text(ag["candidate"]),
                      str(mv["wins"]), str(mv["losses"]), str(mv["ties"]), str(mv["invalid"]), _ci(mv["ci95"]),
                      pct(mv["strict_win_rate"]), str(mv["n_prompts"]))
    console.print(table)
    sections = Table(title="Per section", box=box.SIMPLE_HEAD)
    for col in ("section", "judge", "candidate", "W/L/T/inv", "win rate [95% CI]", "prompts"):
        sections.add_column(col, overflow="fold")
    for s in report["sections"]:
        for e in s["judges"]:
            sections.add_row(safe_text(s["section"]), safe_text(e["judge"]), safe_text(e["candidate"]),
                             f"{e['wins']}/{e['losses']}/{e['ties']}/{e['invalid']}", _ci(e["ci95"]),
                             str(e["n_prompts"]))
    console.print(sections)
    for ag in report["agreement"]:
        console.print(safe_text(
            f"agreement ({ag['candidate']}): all judges agree on {pct(ag['percent_all'])} of {ag['n_complete']}; "
            f"Fleiss κ {_num(ag['fleiss_kappa'])}, Krippendorff α {_num(ag['krippendorff_alpha'])}, "
            f"Gwet AC1 {_num(ag['gwet_ac1'])}"))
    for rk in report.get("ranking") or []:
        console.print(safe_text(f"Bradley–Terry ({rk['judge']}, anchor {rk['anchor']} = 0): " + ", ".join(
            f"{c['contender']} {_num(c['strength'])} [{_num(c['low'])}, {_num(c['high'])}]"
            for c in sorted(rk["contenders"], key=lambda c: -(c["strength"] or 0)))))
    for w in report["warnings"]:
        console.print(safe_text(f"warning: {w['text']}", style="yellow"), soft_wrap=True)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
