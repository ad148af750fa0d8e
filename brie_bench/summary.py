"""The end-of-run summary: per judge and candidate, wins, losses, ties, invalid — straight from stored rows.

Counts are over comparisons, the same way the report counts them: a pair judged in
both orders is one comparison (its agreeing verdict, a tie when the orders disagree,
invalid when either is invalid).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from brie_bench.blinding import combine_orders


@dataclass
class JudgeTally:
    judge: str
    judge_model: str | None
    baseline: str
    candidate: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    invalid: int = 0

    @property
    def valid(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        """Ties count half; invalid verdicts are excluded (and shown separately)."""
        return (self.wins + 0.5 * self.ties) / self.valid if self.valid else None


def comparisons(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per comparison: a pair judged in both orders counts once (`combine_orders`), as in the report."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["judge"], r["baseline"], r["candidate"], r["section"], r["prompt_id"], r["sample_index"])].append(r)
    out = []
    for group in groups.values():
        winner = group[0]["winner"]
        if len(group) == 2:
            winner = combine_orders(group[0]["winner"], group[1]["winner"])
        out.append({**group[0], "winner": winner})
    return out


def tally(rows: Iterable[dict[str, Any]]) -> list[JudgeTally]:
    """Wins, losses, ties and invalid verdicts per judge and candidate, over comparisons."""
    table: dict[tuple[str, str, str], JudgeTally] = {}
    for r in comparisons(rows):
        key = (r["judge"], r["baseline"], r["candidate"])
        t = table.get(key)
        if t is None:
            t = table[key] = JudgeTally(r["judge"], r.get("judge_model"), r["baseline"], r["candidate"])
        winner = r["winner"]
        if winner is None:
            t.invalid += 1
        elif winner == "tie":
            t.ties += 1
        elif winner == r["candidate"]:
            t.wins += 1
        elif winner == r["baseline"]:
            t.losses += 1
        else:  # pragma: no cover - unblinding guarantees one of the above
            raise ValueError(f"winner {winner!r} is neither contender")
    return sorted(table.values(), key=lambda t: (t.candidate, t.judge))


def error_counts(errors: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """name -> {"retried": transient attempts, "failed": final failures}."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"retried": 0, "failed": 0})
    for e in errors:
        if e["final"]:
            out[e["name"]]["failed"] += 1
        else:
            out[e["name"]]["retried"] += 1
    return dict(out)
