"""The end-of-run summary: per judge and candidate, wins, losses, ties, invalid — straight from stored rows.

Counts are over comparisons, the same way the report counts them: a pair judged in
both orders is one comparison (its agreeing verdict, a tie when the orders disagree,
invalid when either is invalid).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

from brie_bench.rows import JudgmentRow
from brie_bench.stats.outcomes import LOSS, TIE_OUTCOME, WIN, combine_orders, outcome_of, rate_from_counts


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
    #: Set when the judge's verdicts follow the position or label of the answers
    #: (`stats.bias.judge_information`): the plain-words reason; the summary then shows no win rate.
    no_information: str | None = None

    @property
    def valid(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        """Ties count half; invalid verdicts are excluded (and shown separately); None without information."""
        if self.no_information:
            return None
        return rate_from_counts(self.wins, self.ties, self.valid) if self.valid else None


def comparisons(rows: Iterable[JudgmentRow]) -> list[tuple[JudgmentRow, float]]:
    """One (row, outcome) per comparison: a pair judged in both orders counts once, through the same
    `stats.combine_orders` the report uses."""
    groups: dict[tuple[Any, ...], list[JudgmentRow]] = defaultdict(list)
    for r in rows:
        groups[(r.judge, r.baseline, r.candidate, r.section, r.prompt_id, r.sample_index)].append(r)
    out = []
    for group in groups.values():
        first = group[0]
        outcomes = [outcome_of(r.winner, r.baseline, r.candidate) for r in group]
        outcome = combine_orders(outcomes[0], outcomes[1]) if len(outcomes) == 2 else outcomes[0]
        out.append((first, outcome))
    return out


def _information(rows: list[JudgmentRow]) -> str | None:
    """The report's rule (`stats.bias.judge_information`) on one judge's stored rows: why it carries
    no information, or None. Label A is always shown first in a run Brie Bench made."""
    import numpy as np

    from brie_bench.stats.bias import judge_information

    outcomes = np.asarray([outcome_of(r.winner, r.baseline, r.candidate) for r in rows], dtype=float)
    cand_a = np.asarray([r.label_a == r.candidate for r in rows], dtype=bool)
    by_comparison: dict[tuple[Any, ...], dict[int, float]] = defaultdict(dict)
    for r, o in zip(rows, outcomes.tolist()):
        by_comparison[(r.section, r.prompt_id, r.sample_index)][r.presentation_order] = o
    pairs = [(d[0], d[1]) for d in by_comparison.values() if 0 in d and 1 in d]
    return judge_information(outcomes, cand_a, cand_a, np.asarray(pairs, dtype=float).reshape(-1, 2)).reason


def tally(rows: Iterable[JudgmentRow]) -> list[JudgeTally]:
    """Wins, losses, ties and invalid verdicts per judge and candidate, over comparisons.

    A judge whose verdicts follow the position or label of the answers is marked
    (`JudgeTally.no_information`), by the same rule as the report's headline.
    """
    rows = list(rows)
    table: dict[tuple[str, str, str], JudgeTally] = {}
    per_judge: dict[tuple[str, str, str], list[JudgmentRow]] = defaultdict(list)
    for r in rows:
        per_judge[(r.judge, r.baseline, r.candidate)].append(r)
    for r, outcome in comparisons(rows):
        key = (r.judge, r.baseline, r.candidate)
        t = table.get(key)
        if t is None:
            t = table[key] = JudgeTally(r.judge, r.judge_model, r.baseline, r.candidate)
        if outcome == WIN:
            t.wins += 1
        elif outcome == LOSS:
            t.losses += 1
        elif outcome == TIE_OUTCOME:
            t.ties += 1
        else:  # NaN: invalid
            t.invalid += 1
    for key, t in table.items():
        t.no_information = _information(per_judge[key])
    return sorted(table.values(), key=lambda t: (t.candidate, t.judge))


@dataclass
class Failures:
    """What went wrong for one contender or judge, as it stands now.

    `failed` counts units that are still not done (a rerun will try them again);
    `retried` counts failed attempts that were tried again afterwards, in the same
    run or a later one. A unit that failed on the first run and succeeded on the
    rerun adds to `retried` only. `kind` and `message` are those of the latest
    failure of a unit that is still failed (else of the latest failure at all).
    """

    name: str
    unit_kind: str
    failed: int = 0
    retried: int = 0
    kind: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "unit_kind": self.unit_kind, "failed_units": self.failed,
                "retried_attempts": self.retried, "kind": self.kind, "message": self.message}


#: Error rows that belong to no single unit (a batch id): they count as attempts, never as units.
_NOT_UNITS = ("batch_poll",)


def failures(errors: Iterable[dict[str, Any]], done: set[str]) -> dict[str, Failures]:
    """name -> `Failures`, from the stored error rows (oldest first) and the unit keys that are done now."""
    per_unit: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in errors:
        if e["kind"] == "truncated":  # a note that a stored text was cut (`brie_bench.outputs`), not a failure
            continue
        per_unit[(e["name"], e["unit_key"])].append(e)
    out: dict[str, Failures] = {}
    for (name, key), rows in per_unit.items():
        last = rows[-1]
        f = out.get(name)
        if f is None:
            f = out[name] = Failures(name, "judgment" if last["unit_kind"] != "generation" else "generation")
        still_failed = key not in done and last["unit_kind"] not in _NOT_UNITS
        if still_failed:
            f.failed += 1
            f.retried += len(rows) - 1
        else:
            f.retried += len(rows)
        if still_failed or f.failed == 0:
            f.kind, f.message = last["kind"], last["message"]
    return out


def done_keys(store: Any, run_id: str, errors: Iterable[dict[str, Any]]) -> set[str]:
    """The unit keys among `errors` that are done now: judgments stored in the run, generations stored."""
    gen_keys = [e["unit_key"] for e in errors if e["unit_kind"] == "generation"]
    return set(store.stored_judgment_keys(run_id)) | set(store.stored_generation_keys(gen_keys))
