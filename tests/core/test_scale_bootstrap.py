"""Speed without new figures: the per-prompt-sum bootstrap and the scipy.special statistics give the report's old figures.

The clustered bootstrap of a mean now multiplies how often each prompt was drawn by
per-prompt sums (with the draws shared between statistics over the same prompts);
these tests pin it, bit for bit, to the row-level computation it replaced: gather the
drawn prompts' rows for every resample, at the same seed. The distribution functions
that replaced scipy.stats / scipy.optimize are checked against scipy itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special
from scipy import stats as sps

from brie_bench import stats as S


def row_level_bootstrap(values: np.ndarray, clusters: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """The reference: every resample expands the drawn prompts back into their rows and averages them."""
    keep = ~np.isnan(values)
    v, c = values[keep], clusters[keep]
    names, g = np.unique(c, return_inverse=True)
    k = len(names)
    members = [np.flatnonzero(g == i) for i in range(k)]
    boots = []
    for idx in S.cluster_resamples(k, n_boot, seed):
        for pick in idx:
            rows = np.concatenate([members[i] for i in pick])
            boots.append(v[rows].mean())
    alpha = 1.0 - level
    low, high = np.nanquantile(np.asarray(boots), [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def layout(seed: int, n_prompts: int, per_prompt: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clusters = np.repeat([f"prompt {i}" for i in range(n_prompts)], per_prompt)
    outcomes = rng.choice([0.0, 0.5, 1.0, np.nan], size=clusters.size, p=[0.35, 0.15, 0.45, 0.05])
    return outcomes, clusters


@pytest.mark.parametrize("n_prompts,per_prompt", [(40, 3), (157, 5)])
def test_per_prompt_sums_give_the_row_level_interval_bit_for_bit(n_prompts: int, per_prompt: int) -> None:
    outcomes, clusters = layout(n_prompts, n_prompts, per_prompt)
    for values in (outcomes, S.strict_outcomes(outcomes)):
        ci = S.clustered_bootstrap_ci(values, clusters, n_boot=400, seed=3)
        assert (ci.low, ci.high) == row_level_bootstrap(values, clusters, n_boot=400, seed=3)


def test_integer_score_differences_take_the_same_exact_path() -> None:
    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(60), 4)
    diffs = rng.integers(-4, 5, size=clusters.size).astype(float)
    diffs[::17] = np.nan
    ci = S.clustered_bootstrap_ci(diffs, clusters, n_boot=300, seed=0)
    assert (ci.low, ci.high) == row_level_bootstrap(diffs, clusters, n_boot=300, seed=0)


def test_probabilities_that_float32_cannot_hold_still_match_the_row_level_interval() -> None:
    rng = np.random.default_rng(9)
    clusters = np.repeat(np.arange(50), 3)
    p = rng.random(clusters.size)
    ci = S.clustered_bootstrap_ci(p, clusters, n_boot=300, seed=1)
    low, high = row_level_bootstrap(p, clusters, n_boot=300, seed=1)
    assert ci.low == pytest.approx(low, rel=1e-12) and ci.high == pytest.approx(high, rel=1e-12)


def test_shared_draws_do_not_leak_between_layouts() -> None:
    """Interleaving many prompt counts (more than the draws kept) never changes a figure."""
    layouts = [layout(s, 30 + s, 2) for s in range(7)]
    first = [S.clustered_bootstrap_ci(v, c, n_boot=200) for v, c in layouts]
    again = [S.clustered_bootstrap_ci(v, c, n_boot=200) for v, c in reversed(layouts)][::-1]
    assert [(a.low, a.high) for a in first] == [(b.low, b.high) for b in again]
    v, c = layouts[0]
    assert (first[0].low, first[0].high) == row_level_bootstrap(v, c, n_boot=200)


@pytest.mark.parametrize("wins,losses", [(0, 1), (3, 2), (7, 0), (40, 61), (500, 530), (2, 2)])
def test_sign_test_is_scipys_binomial_test(wins: int, losses: int) -> None:
    assert S.sign_test(wins, losses) == pytest.approx(sps.binomtest(wins, wins + losses).pvalue, rel=1e-9)


@pytest.mark.parametrize("table", [[[3, 1], [1, 3]], [[10, 0], [2, 9]], [[0, 5], [0, 7]], [[120, 80], [80, 120]],
                                   [[15, 15], [15, 15]], [[1, 40], [30, 2]], [[700, 650], [600, 720]]])
def test_fisher_exact_is_scipys(table: list[list[int]]) -> None:
    ref = sps.fisher_exact(table)
    odds, p = S._fisher_two_sided(np.asarray(table))
    assert p == pytest.approx(ref.pvalue, rel=1e-8)
    assert (math.isnan(odds) and math.isnan(ref.statistic)) or odds == pytest.approx(ref.statistic)


def test_spearman_and_the_quantile_functions_are_scipys() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-50, 50, size=80).astype(float)
    y = rng.choice([0.0, 0.5, 1.0], size=80)
    rho, p = S._spearman(x, y)
    ref = sps.spearmanr(x, y)
    assert rho == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert S.wilson_ci(7, 10).high == pytest.approx(
        _wilson_high(7, 10, float(sps.norm.ppf(0.975))), rel=1e-15)
    cp = S.clopper_pearson_ci(3, 11)
    assert cp.low == pytest.approx(sps.beta.ppf(0.025, 3, 9), rel=1e-13)
    assert cp.high == pytest.approx(sps.beta.ppf(0.975, 4, 8), rel=1e-13)
    ct = S.cluster_t_ci([1.0, 0.0, 1.0, 1.0, 0.5, 0.0], [1, 1, 2, 3, 3, 4])
    half = ct.high - ct.estimate
    assert half / sps.t.ppf(0.975, 3) == pytest.approx((ct.estimate - ct.low) / sps.t.ppf(0.975, 3))


def _wilson_high(successes: float, n: int, z: float) -> float:
    p = successes / n
    z2n = z * z / n
    return (p + z2n / 2 + z * math.sqrt(p * (1 - p) / n + z2n / (4 * n))) / (1 + z2n)


def test_newton_logit_fit_finds_scipys_optimum() -> None:
    rng = np.random.default_rng(4)
    x = np.tanh(rng.normal(size=400))
    y = rng.choice([0.0, 0.5, 1.0], size=400, p=[0.3, 0.1, 0.6])
    y[x > 0.8] = 1.0
    theta, ok = S._logit_fit(y, x)
    design = np.column_stack([np.ones_like(x), x])

    def nll(t: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ t
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta)), design.T @ (special.expit(eta) - y)

    ref = optimize.minimize(nll, np.zeros(2), jac=True, method="L-BFGS-B", bounds=[(-30, 30)] * 2,
                            options={"gtol": 1e-10, "ftol": 1e-14})
    assert ok and np.allclose(theta, ref.x, atol=1e-6)
    separated, _ = S._logit_fit((x > 0).astype(float), x)
    assert abs(separated[1]) >= 29.0  # no finite maximum: the fit stops at the bound, as L-BFGS-B did
