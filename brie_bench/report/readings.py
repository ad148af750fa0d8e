"""One-line readings that sit under each figure: what the picture says, in words.

A reader who cannot see the chart (or does not want to decode it) gets its
point from one sentence; the method stays behind "How this is computed". These
take the same plain records the charts take (`report/svg.py`), never the report
itself, so they work whatever shape the report has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from brie_bench.report.charts import pct
from brie_bench.report.svg import IntervalRow, PairAgreement, Tally


def _ok(x: float | None) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def sections(tallies: Sequence[Tally]) -> str:
    """Where the candidate did best and worst, as a share of valid comparisons won (ties count half)."""
    scored = [((t.won + t.tied / 2) / n, t) for t in tallies if (n := t.won + t.lost + t.tied)]
    if not scored:
        return "No valid comparison to show."
    scored.sort(key=lambda s: s[0])
    (lo, worst), (hi, best) = scored[0], scored[-1]
    if len(scored) == 1 or best is worst:
        return f"{best.label}: won {best.won}, lost {best.lost}, tied {best.tied}."
    return (f"Best: {best.label}, won {best.won} of {best.won + best.lost + best.tied} ({pct(hi)} with ties "
            f"as half); worst: {worst.label}, won {worst.won} of {worst.won + worst.lost + worst.tied} ({pct(lo)}).")


def agreement(pairs: Sequence[PairAgreement]) -> str:
    """The pair of judges that agree most and the pair that agree least."""
    known = sorted((p for p in pairs if _ok(p.percent)), key=lambda p: float(p.percent or 0.0))
    if not known:
        return "No two judges judged the same comparison validly."

    def say(p: PairAgreement) -> str:
        kappa = f", κ {p.kappa:.2f}" if _ok(p.kappa) else ""
        return f"{p.judge_a} and {p.judge_b} agree on {pct(p.percent)} of {p.n}{kappa}"

    if len(known) == 1:
        return say(known[0]) + "."
    return f"Most: {say(known[-1])}; least: {say(known[0])}."


def beyond(rows: Sequence[IntervalRow], ref: float, *, fmt: Callable[[float | None], str] = pct,
           what: str = "intervals") -> str:
    """How many trusted intervals lie wholly above or below `ref` (a difference the data can see)."""
    trusted = [r for r in rows if r.trusted and _ok(r.low) and _ok(r.high)]
    above = [r for r in trusted if float(r.low) > ref]  # type: ignore[arg-type]
    below = [r for r in trusted if float(r.high) < ref]  # type: ignore[arg-type]
    if not trusted:
        return f"No {what} can be trusted yet (too few prompts)."
    if not above and not below:
        return f"Every trusted interval includes {fmt(ref)}: no difference this run can see."
    bits = []
    if above:
        bits.append(f"above {fmt(ref)}: " + ", ".join(r.label for r in above))
    if below:
        bits.append(f"below {fmt(ref)}: " + ", ".join(r.label for r in below))
    return f"{len(above) + len(below)} of {len(trusted)} trusted {what} exclude {fmt(ref)} (" + "; ".join(bits) + ")."


def length(labels: Sequence[str], longer: Sequence[IntervalRow], shorter: Sequence[IntervalRow]) -> str:
    """The judge whose verdicts follow length most: win rate when longer versus when shorter."""
    gaps = [(float(a.estimate) - float(b.estimate), name, a, b)  # type: ignore[arg-type]
            for name, a, b in zip(labels, longer, shorter) if _ok(a.estimate) and _ok(b.estimate)]
    if not gaps:
        one_sided = [f"{name}: {pct(a.estimate)} when longer" if _ok(a.estimate) else
                     f"{name}: {pct(b.estimate)} when shorter"
                     for name, a, b in zip(labels, longer, shorter) if _ok(a.estimate) or _ok(b.estimate)]
        if not one_sided:
            return "No win rate by length can be given yet."
        return "; ".join(one_sided) + ". No judge has a win rate for both sides, so there is nothing to compare."
    gap, name, a, b = max(gaps, key=lambda g: abs(g[0]))
    return (f"{name}: the candidate wins {pct(a.estimate)} when its answer is longer and {pct(b.estimate)} "
            f"when shorter ({100 * gap:+.1f} points).")


__all__ = ["agreement", "beyond", "length", "sections"]
