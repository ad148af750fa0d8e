"""Exact tests and per-criterion score differences: sign test, Fisher, Spearman, log-prob preference.

The hypothesis tests are written on `brie_bench.stats.special` rather than imported from
`scipy.stats` (a second of import time); tests check them against scipy.stats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from brie_bench.stats import special

from brie_bench.stats.draws import Draws
from brie_bench.stats.intervals import Interval, mean_ci, mean_cis
from brie_bench.stats.outcomes import _NAN, _same_length


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins vs losses against 1/2, ties excluded.

    Answers "is the fine-tune preferred more often than not?" without any model of
    ties: a tie carries no direction. It assumes independent verdicts, so on
    clustered data trust the clustered interval first. NaN when there is no
    decisive verdict.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be non-negative, got wins={wins}, losses={losses}")
    n = int(wins) + int(losses)
    if n == 0:
        return _NAN
    k = int(wins)
    # scipy.stats.binomtest's two-sided rule at p = 1/2: by symmetry, the outcomes at most as
    # likely as k are those at least as far from n/2, so the p-value is both tails.
    if 2 * k == n:
        return 1.0
    low = min(k, n - k)
    return min(1.0, float(special.bdtr(low, n, 0.5) + special.bdtrc(n - low - 1, n, 0.5)))


#: Two tables count as equally likely within this relative difference (scipy uses 1e-14 on
#: probabilities it computes to a few ulps; the ratio recursion here is good to ~1e-12).
_FISHER_RTOL = 1e-9


def _fisher_two_sided(table: NDArray[Any]) -> tuple[float, float]:
    """Sample odds ratio and two-sided p-value of Fisher's exact test on a 2x2 table.

    As scipy.stats.fisher_exact: the p-value sums the hypergeometric probabilities of
    every table with the same margins that is no more likely than the observed one
    (relative tolerance `_FISHER_RTOL`); a row or column of zeros gives (NaN, 1).
    """
    c = np.asarray(table, dtype=np.int64)
    if 0 in c.sum(axis=0) or 0 in c.sum(axis=1):
        return _NAN, 1.0
    odds = float(c[0, 0] * c[1, 1] / (c[1, 0] * c[0, 1])) if c[1, 0] > 0 and c[0, 1] > 0 else math.inf
    n1, n2, n = int(c[0, 0] + c[0, 1]), int(c[1, 0] + c[1, 1]), int(c[0, 0] + c[1, 0])
    lo, hi = max(0, n - n2), min(n, n1)
    # Unnormalised log-probabilities from the ratios pmf(x + 1) / pmf(x): no lgamma of large
    # numbers, so tables that mirror each other get the same probability to ~1e-13.
    x = np.arange(lo, hi, dtype=float)
    steps = np.log((n1 - x) * (n - x)) - np.log((x + 1.0) * (n2 - n + x + 1.0))
    logp = np.concatenate([[0.0], np.cumsum(steps)])
    logp -= logp.max()
    pmf = np.exp(logp)
    observed = pmf[int(c[0, 0]) - lo]
    if observed >= 1.0 - _FISHER_RTOL:  # the observed table is the most likely one
        return odds, 1.0
    p = float(pmf[pmf <= observed * (1.0 + _FISHER_RTOL)].sum() / pmf.sum())
    return odds, min(p, 1.0)


def _rank(x: NDArray[Any]) -> NDArray[np.float64]:
    """Ranks 1..n, tied values sharing their average rank (scipy.stats.rankdata's default)."""
    _, inverse, counts_ = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts_)
    return ((ends - (counts_ - 1) / 2.0)[inverse.reshape(-1)]).astype(float)


def _spearman(x: NDArray[Any], y: NDArray[Any]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (t with n - 2 degrees of freedom), as scipy.stats.spearmanr."""
    rx, ry = _rank(x), _rank(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    dof = x.size - 2
    denom = (rho + 1.0) * (1.0 - rho)
    t = math.inf if denom <= 0 else rho * math.sqrt(max(dof / denom, 0.0))
    return rho, float(2.0 * special.stdtr(dof, -abs(t)))



@dataclass(frozen=True)
class CriterionDifference:
    """Mean 1–5 score of each model on one criterion and the paired difference."""

    criterion: str
    mean_ft: float
    mean_base: float
    difference: Interval


def criterion_differences(
    scores_ft: Mapping[str, ArrayLike],
    scores_base: Mapping[str, ArrayLike],
    clusters: ArrayLike | None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    min_boot_clusters: int | None = None,
    draws: Draws | None = None,
) -> dict[str, CriterionDifference]:
    """Per criterion, mean (fine-tune score − baseline score) with a clustered interval.

    The difference is taken within each judgment (the same judge scored both answers
    at once), which removes the judge's overall harshness from the comparison. Rows
    where either score is missing (NaN) are dropped for that criterion only. `draws`:
    a report's draws over its run (`stats.mean_bootstrap_cis`).
    """
    if set(scores_ft) != set(scores_base):
        raise ValueError(f"criteria differ: {sorted(scores_ft)} vs {sorted(scores_base)}")
    means: dict[str, tuple[float, float]] = {}
    diffs = []
    for name in scores_ft:
        ft = np.asarray(scores_ft[name], dtype=float)
        base = np.asarray(scores_base[name], dtype=float)
        _same_length(f"scores_base[{name!r}]", base, len(ft))
        both = ~(np.isnan(ft) | np.isnan(base))
        diffs.append(np.where(both, ft - base, np.nan))
        means[name] = (float(ft[both].mean()) if both.any() else _NAN, float(base[both].mean()) if both.any() else _NAN)
    cis = mean_cis(diffs, clusters, n_boot=n_boot, level=level, seed=seed, bounds=(-4.0, 4.0),
                   min_boot_clusters=min_boot_clusters, draws=draws)  # every criterion in one pass over the draws
    return {name: CriterionDifference(name, *means[name], ci) for name, ci in zip(scores_ft, cis)}


def logprob_preference(
    p_ft: ArrayLike,
    clusters: ArrayLike | None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    min_boot_clusters: int | None = None,
    draws: Draws | None = None,
) -> Interval:
    """Mean probability the judge gives to the fine-tune winning, with a clustered interval.

    Read from the judge's token log-probabilities, it is a graded preference: it keeps
    information a hard verdict throws away (a 51/49 call and a 99/1 call both count as
    one win). NaN rows (no logprobs) are dropped. `draws`: as in `criterion_differences`.
    """
    p = np.asarray(p_ft, dtype=float)
    finite = p[~np.isnan(p)]
    if ((finite < 0) | (finite > 1)).any():
        raise ValueError("p_ft must be probabilities in [0, 1] (or NaN)")
    return mean_ci(p, clusters, n_boot=n_boot, level=level, seed=seed, bounds=(0.0, 1.0),
                   min_boot_clusters=min_boot_clusters, draws=draws)
