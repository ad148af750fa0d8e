"""The end-of-run summary: per judge and candidate, wins, losses, ties, invalid — straight from stored rows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable


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


def tally(rows: Iterable[dict[str, Any]]) -> list[JudgeTally]:
    table: dict[tuple[str, str, str], JudgeTally] = {}
    for r in rows:
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
