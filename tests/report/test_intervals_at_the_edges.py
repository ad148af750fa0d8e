"""Rate and run-versus-run intervals that keep their coverage near 0 and 1, where fine-tunes live.

The effective-n interval and the paired Newcombe interval are each checked against an
independent computation (statsmodels' cluster-robust variance, scipy's beta quantiles),
and their coverage at a boundary layout is checked by a seeded simulation in which the
methods they replaced fall short (so the test fails if the choice is undone).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from brie_bench import stats as S


def _reference_effective_n(y: np.ndarray, groups: np.ndarray, credit: bool = True) -> tuple[float, float]:
    """Korn–Graubard by hand: statsmodels' CR1 variance, n_eff, t/z adjustment, scipy's beta quantiles."""
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    var = float(fit.bse[0]) ** 2
    k = len(np.unique(groups))
    p = float(y.mean())
    z, t = sps.norm.ppf(0.975), sps.t.ppf(0.975, k - 1)
    # Ties earn credit: up to p(1 - p) / var(rows) times the row count, faded out between 85% and 95%.
    fade = float(np.clip((0.95 - max(p, 1 - p)) / 0.10, 0.0, 1.0))
    factor = 1.0 + max(0.0, p * (1 - p) / float(np.var(y)) - 1.0) * fade if credit else 1.0
    n_eff = min(len(y) * factor, max(1.0, p * (1 - p) / var * (z / t) ** 2))
    x = p * n_eff
    return float(sps.beta.ppf(0.025, x, n_eff - x + 1)), float(sps.beta.ppf(0.975, x + 1, n_eff - x))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_effective_n_matches_an_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(12), rng.integers(1, 4, 12))
    y = rng.choice([0.0, 0.5, 1.0], size=groups.size, p=[0.2, 0.2, 0.6])
    ci = S.effective_n_ci(y, groups)
    assert ci.method == "effective-n" and ci.n_clusters == 12 and ci.estimate == pytest.approx(y.mean())
    assert (ci.low, ci.high) == pytest.approx(_reference_effective_n(y, groups), rel=1e-7)


def test_effective_n_is_asymmetric_near_one() -> None:
    """37 of 40 prompts won: the interval reaches further below the estimate than above it."""
    y = np.r_[np.ones(37), np.zeros(3)]
    ci = S.rate_ci(y, np.arange(40))
    assert ci.estimate - ci.low > ci.high - ci.estimate > 0


def _prompt_rates(rng: np.random.Generator, reps: int, k: int, p: float, phi: float) -> np.ndarray:
    return rng.beta(p * phi, (1 - p) * phi, size=(reps, k, 1))


def test_win_rate_interval_covers_at_97_percent_where_bootstrap_and_cluster_t_do_not() -> None:
    """40 prompts x 3 judgments, true rate 0.97 with strongly varying prompts (the issue's worst cell)."""
    rng = np.random.default_rng(20261206)
    reps, k, m, p = 400, 40, 3, 0.97
    outcomes = (rng.random((reps, k, m)) < _prompt_rates(rng, reps, k, p, 2.0)).astype(float)
    clusters = np.repeat(np.arange(k), m)
    hits = {"shown": 0, "cluster-t": 0, "bootstrap": 0}
    for r in range(reps):
        v = outcomes[r].reshape(-1)
        for name, ci in (("shown", S.rate_ci(v, clusters)), ("cluster-t", S.cluster_t_ci(v, clusters, bounds=(0, 1))),
                         ("bootstrap", S.clustered_bootstrap_ci(v, clusters, n_boot=500))):
            hits[name] += ci.low <= p <= ci.high
    cover = {name: h / reps for name, h in hits.items()}
    assert cover["shown"] >= 0.93, cover
    assert cover["cluster-t"] < 0.91 and cover["bootstrap"] < 0.91, cover


def _paired_reference(sa, na, sb, nb) -> tuple[float, float]:
    """Newcombe's hybrid interval from each side's reference effective-n bounds (no tie credit: sums only)."""
    ya, yb = sa / na, sb / nb
    groups = np.arange(len(sa))
    la, ua = _reference_effective_n(ya, groups, credit=False)
    lb, ub = _reference_effective_n(yb, groups, credit=False)
    pa, pb = ya.mean(), yb.mean()
    rho = float(np.corrcoef(ya, yb)[0, 1])
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 - 2 * rho * (pa - la) * (ub - pb) + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 - 2 * rho * (ua - pa) * (pb - lb) + (pb - lb) ** 2)
    return low, high


def test_paired_difference_matches_newcombe_by_hand() -> None:
    """One judgment per prompt on each side: each side's rows are its prompts, so the reference is exact."""
    rng = np.random.default_rng(4)
    k = 15
    sa = rng.choice([0.0, 0.5, 1.0], size=k, p=[0.1, 0.2, 0.7])
    sb = np.where(rng.random(k) < 0.7, sa, rng.choice([0.0, 0.5, 1.0], size=k))
    ones = np.ones(k)
    ci = S.paired_rate_difference_ci((sa, ones), (sb, ones))
    assert ci.method == "paired-newcombe" and ci.n_clusters == k
    assert ci.estimate == pytest.approx(sa.mean() - sb.mean())
    assert (ci.low, ci.high) == pytest.approx(_paired_reference(sa, ones, sb, ones), rel=1e-7)


def test_paired_difference_credits_the_pairing() -> None:
    """Two runs that agree prompt by prompt get a narrower interval than the same rates unpaired."""
    s = np.array([1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 1.0])
    b = np.array([1.0, 0.5, 1.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0])
    ones = np.ones(len(s))
    paired = S.paired_rate_difference_ci((s, ones), (b, ones))
    unpaired = S.paired_rate_difference_ci((s, ones), (b[::-1].copy(), ones))
    assert paired.low < 0.05 < paired.high
    assert paired.high - paired.low < unpaired.high - unpaired.low


def test_paired_difference_needs_two_prompts() -> None:
    one = S.paired_rate_difference_ci(([1.0], [1.0]), ([0.0], [1.0]))
    assert one.estimate == 1.0 and math.isnan(one.low)
    assert math.isnan(S.paired_rate_difference_ci(([], []), ([], [])).estimate)


def test_paired_difference_covers_at_small_suites_where_the_paired_bootstrap_does_not() -> None:
    """10 prompts x 1, rates 0.85 vs 0.80 with correlated prompts: the bootstrap covered about 78%."""
    rng = np.random.default_rng(7)
    reps, k, pa, pb, phi = 500, 10, 0.85, 0.80, 2.0
    z = rng.standard_normal((reps, k))
    za = np.sqrt(0.6) * z + np.sqrt(0.4) * rng.standard_normal((reps, k))
    zb = np.sqrt(0.6) * z + np.sqrt(0.4) * rng.standard_normal((reps, k))
    ta = sps.beta.ppf(sps.norm.cdf(za), pa * phi, (1 - pa) * phi)
    tb = sps.beta.ppf(sps.norm.cdf(zb), pb * phi, (1 - pb) * phi)
    ya = (rng.random((reps, k)) < ta).astype(float)
    yb = (rng.random((reps, k)) < tb).astype(float)
    ones = np.ones(k)
    shown = boot = 0
    idx = np.random.default_rng(0).integers(0, k, size=(1000, k))
    for r in range(reps):
        ci = S.paired_rate_difference_ci((ya[r], ones), (yb[r], ones))
        shown += ci.low <= pa - pb <= ci.high
        d = ya[r, idx].mean(1) - yb[r, idx].mean(1)
        lo, hi = np.quantile(d, [0.025, 0.975])
        boot += lo <= pa - pb <= hi
    assert shown / reps >= 0.92, shown / reps
    assert boot / reps < 0.88, boot / reps


def test_ties_narrow_the_interval_in_the_middle_but_not_near_the_bounds() -> None:
    """A tie varies less than a coin flip: credited at 60%, not at 97% (where crediting it under-covered)."""
    clusters = np.arange(40)
    tied = np.r_[np.full(24, 0.5), np.ones(12), np.zeros(4)]     # 60%, mostly ties
    decided = np.r_[np.ones(24), np.zeros(16)]                    # 60%, no ties
    assert S.rate_ci(tied, clusters).high - S.rate_ci(tied, clusters).low < \
        S.rate_ci(decided, clusters).high - S.rate_ci(decided, clusters).low
    assert S.tie_credit(0.97, 0.01) == 1.0 and S.tie_credit(0.6, 0.24) == 1.0
    assert S.tie_credit(0.6, 0.06) == pytest.approx(4.0)
    assert S.tie_credit(0.9, 0.06) == pytest.approx(1.0 + (0.09 / 0.06 - 1.0) * 0.5)
