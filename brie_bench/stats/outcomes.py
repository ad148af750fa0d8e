"""Outcome coding (win 1.0, tie 0.5, loss 0.0, NaN invalid), validation and win rates.

The base every other statistics module builds on: one place that says what an
outcome is and how a win rate counts ties and invalid rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

WIN: float = 1.0
#: A tie as an outcome. (A tie as a stored verdict or winner is the string `blinding.TIE`.)
TIE_OUTCOME: float = 0.5
LOSS: float = 0.0
#: The full outcome domain. Gwet's AC1 depends on how many categories a judge *could*
#: choose, not only on those it did, so agreement functions default to this domain.
OUTCOME_CATEGORIES: tuple[float, ...] = (LOSS, TIE_OUTCOME, WIN)

_NAN = float("nan")


def _outcomes(outcomes: ArrayLike, name: str = "outcomes") -> NDArray[np.float64]:
    """Return outcomes as a 1-D float array, rejecting values outside {0, 0.5, 1, NaN}.

    Any other value means a coding bug upstream (e.g. a label verdict that was never
    unblinded), and silently averaging it would corrupt the win rate.
    """
    x = np.asarray(outcomes, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    ok = np.isnan(x) | (x == LOSS) | (x == TIE_OUTCOME) | (x == WIN)
    if not ok.all():
        bad = x[~ok][:3].tolist()
        raise ValueError(f"{name} must be 1.0 (win), 0.5 (tie), 0.0 (loss) or NaN (invalid); got {bad}")
    return x


def _same_length(name: str, arr: NDArray[Any], n: int) -> None:
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows, expected {n}")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")


@dataclass(frozen=True)
class Counts:
    """How many judgments fell into each outcome. `n_valid` excludes invalid ones."""

    wins: int
    losses: int
    ties: int
    invalid: int
    n_valid: int

    @property
    def total(self) -> int:
        """All judgments, invalid included: the denominator for the invalid rate."""
        return self.n_valid + self.invalid


def outcome_of(winner: str | None, baseline: str, candidate: str) -> float:
    """A stored winner as an outcome: 1 / 0.5 / 0 / NaN for candidate win / tie / loss / invalid."""
    if winner is None:
        return _NAN
    if winner == candidate:
        return WIN
    if winner == baseline:
        return LOSS
    if winner == "tie":  # blinding.TIE; not imported, so statistics stay free of the blinding layer
        return TIE_OUTCOME
    raise ValueError(f"winner {winner!r} is neither {baseline!r}, {candidate!r} nor 'tie'")


def combine_orders(first: float, second: float) -> float:
    """The one counting rule for a pair judged in both orders (as MT-Bench): one comparison.

    Its outcome when the orders agree, a tie when they disagree, invalid (NaN) when
    either order is invalid: a single order cannot be trusted against position bias.
    The run summary, every report and the HTML list all count through this function.
    """
    if first != first or second != second:  # NaN: either order invalid
        return _NAN
    return first if first == second else TIE_OUTCOME


def rate_from_counts(wins: int, ties: int, n_valid: int) -> float:
    """Wins plus half the ties over valid comparisons; NaN when nothing is valid."""
    return (wins + 0.5 * ties) / n_valid if n_valid else _NAN


def counts(outcomes: ArrayLike) -> Counts:
    """Count wins, losses, ties and invalid verdicts (fine-tune's point of view)."""
    x = _outcomes(outcomes)
    wins = int(np.count_nonzero(x == WIN))
    losses = int(np.count_nonzero(x == LOSS))
    ties = int(np.count_nonzero(x == TIE_OUTCOME))
    invalid = int(np.count_nonzero(np.isnan(x)))
    return Counts(wins=wins, losses=losses, ties=ties, invalid=invalid, n_valid=wins + losses + ties)


def win_rate(outcomes: ArrayLike) -> float:
    """Share of valid judgments the fine-tune wins, a tie counting as half a win.

    This is the mean outcome, so it is symmetric: the baseline's win rate is exactly
    ``1 - win_rate``, and a judge that can't tell the answers apart scores 0.5.
    Invalid verdicts are excluded. NaN when nothing is valid.
    """
    c = counts(outcomes)
    return rate_from_counts(c.wins, c.ties, c.n_valid)


def strict_win_rate(outcomes: ArrayLike) -> float:
    """wins / (wins + losses + ties): the figure the original Brie Bench published.

    Ties count as not-a-win, so it is *not* symmetric (both models can be below 50%);
    it is kept to compare with published numbers. Invalid excluded; NaN when empty.
    """
    c = counts(outcomes)
    return c.wins / c.n_valid if c.n_valid else _NAN


def strict_outcomes(outcomes: ArrayLike) -> NDArray[np.float64]:
    """Recode outcomes as 1 for a win and 0 for a tie or loss, NaN kept for invalid.

    Feed the result to `clustered_bootstrap_ci` to get an interval for the strict win rate.
    """
    x = _outcomes(outcomes)
    return np.where(np.isnan(x), np.nan, (x == WIN).astype(float))
