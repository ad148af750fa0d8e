"""brie_bench.power against hand-computed cases, brute-force solutions and statsmodels' power functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import norm
from scipy.stats import t as t_dist
from statsmodels.stats import power as smp

from brie_bench import power as P

Z_A, Z_B = norm.ppf(0.975), norm.ppf(0.80)


# --------------------------------------------------------------------------- variance components


def test_decompose_matches_a_hand_computed_anova():
    # prompts a: [1, 0], b: [1, 1], c: [0, 0]: mean 0.5; MSW = 0.5/3, MSB = 1.0/2, n0 = 2
    comp = P.decompose([1, 0, 1, 1, 0, 0], ["a", "a", "b", "b", "c", "c"])
    assert comp.identified
    assert comp.mean == pytest.approx(0.5)
    assert comp.total == pytest.approx(0.25)
    assert comp.within == pytest.approx(1 / 6)
    assert comp.between == pytest.approx((0.5 - 1 / 6) / 2)
    assert comp.sizes == (2, 2, 2) and comp.n_prompts == 3 and comp.n_comparisons == 6


def test_decompose_unequal_sizes_uses_n0_and_drops_invalid():
    # a: [1, 1, 0] b: [0] c: [0.5, 1]; plus two invalid rows that must vanish
    y = [1, 1, 0, 0, 0.5, 1, math.nan, math.nan]
    cl = ["a", "a", "a", "b", "c", "c", "b", "d"]
    comp = P.decompose(y, cl)
    vals = {"a": [1, 1, 0], "b": [0], "c": [0.5, 1]}
    allv = [v for vs in vals.values() for v in vs]
    mean = sum(allv) / 6
    ssw = sum(sum((v - sum(vs) / len(vs)) ** 2 for v in vs) for vs in vals.values())
    ssb = sum(len(vs) * (sum(vs) / len(vs) - mean) ** 2 for vs in vals.values())
    msw, msb = ssw / (6 - 3), ssb / 2
    n0 = (6 - (9 + 1 + 4) / 6) / 2
    assert comp.within == pytest.approx(msw)
    assert comp.between == pytest.approx(max(0.0, (msb - msw) / n0))
    assert sorted(comp.sizes) == [1, 2, 3]


def test_decompose_without_repeats_measures_only_the_total():
    comp = P.decompose([1, 0, 0.5, 1], ["a", "b", "c", "d"])
    assert not comp.identified
    assert comp.total == pytest.approx(np.var([1, 0, 0.5, 1]))
    assert comp.between + comp.within == pytest.approx(comp.total)
    assert comp.between_share == pytest.approx(P.DEFAULT_BETWEEN_SHARE)


def test_order_component_is_half_the_mean_squared_gap_between_orders():
    comp = P.decompose([0.5, 1], ["a", "b"], order_pairs=[(1, 0), (1, 1), (math.nan, 1)])
    assert comp.order == pytest.approx((1 + 0) / (2 * 2))
    assert comp.n_order_pairs == 2


def test_decompose_recovers_known_components_on_normal_data():
    rng = np.random.default_rng(0)
    n, k, sb, sw = 4000, 3, 0.3, 0.5
    y = (rng.normal(0, sb, n)[:, None] + rng.normal(0, sw, (n, k))).ravel()
    comp = P.decompose(y, np.repeat(np.arange(n), k))
    assert comp.between == pytest.approx(sb ** 2, rel=0.08)
    assert comp.within == pytest.approx(sw ** 2, rel=0.03)


def test_at_null_adds_the_squared_distance_from_half_keeping_the_icc():
    # binary outcomes at 80%: variance 0.16; at 50% it would be 0.25
    comp = P.VarianceComponents(0.8, 0.16, 0.04, 0.12, math.nan, (2,) * 10, True)
    null = comp.at_null()
    assert null.total == pytest.approx(0.25)
    assert null.between_share == pytest.approx(0.25)
    assert null.mean == 0.5


# --------------------------------------------------------------------------- design and detectable effects


def test_design_factor_is_the_design_effect_over_n_k():
    n, k, rho = 12, 4, 0.3
    assert P.design_factor([k] * n, rho) == pytest.approx((1 + (k - 1) * rho) / (n * k))
    # Miller's resampling formula: Var = (σ_b² + σ_w²/K)/n
    assert P.variance_of_mean(1 / 6, 1 / 6, [2, 2, 2]) == pytest.approx((1 / 6 + 1 / 12) / 3)


def test_mde_for_se_matches_statsmodels_normal_and_t_power():
    for n in (30, 60, 200):
        es = smp.NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=0)
        assert P.mde_for_se(1 / math.sqrt(n)) == pytest.approx(es, rel=1e-4)
    for n in (8, 12, 20):  # t approximation to the noncentral t: within 0.5% from 8 prompts on
        es = smp.TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8)
        assert P.mde_for_se(1 / math.sqrt(n), n_prompts=n) == pytest.approx(es, rel=5e-3)


def test_mde_has_power_080_by_statsmodels_heteroscedastic_normal_power():
    # 100 prompts, one comparison each, no ties: V0 = 0.25, and V(μ) = V0 − (μ − ½)²; normal quantiles.
    d = 1 / 100
    delta = P._mde_for(d, 0.25, Z_A, Z_B)
    e = Z_A * math.sqrt(0.25 / 100 / (1 + Z_A ** 2 / 100))  # the normal rejection boundary
    # The report's Clopper-Pearson interval passes 50% a continuity step 2 V later (V: variance at the boundary).
    e += 2 * d * (0.25 - e * e)
    # statsmodels' power with the boundary expressed as crit * std_null / sqrt(n), at the truth sqrt(V(½ + δ)/n).
    pw = smp.normal_power_het(delta, 100, 0.05, std_null=e * math.sqrt(100) / Z_A,
                              std_alternative=math.sqrt(0.25 - delta * delta))
    assert pw == pytest.approx(0.80, abs=2e-3)


def test_mde_solves_the_power_equation_found_by_brute_force():
    sizes = [1] * 35 + [6] * 3 + [2] * 2
    comp = P.VarianceComponents(0.5, 0.2, 0.06, 0.14, math.nan, tuple(sizes), True)
    m = sum(sizes)
    d = 0.3 * sum(s * s for s in sizes) / m ** 2 + 0.7 / m
    ca, cb = P.critical_values(n_prompts=len(sizes))  # 40 prompts: t quantiles with 39 df
    assert (ca, cb) == pytest.approx((t_dist.ppf(0.975, 39), t_dist.ppf(0.8, 39)))
    boundary = optimize.brentq(lambda e: e - ca * math.sqrt(d * (0.2 - e * e)), 0, 0.44)
    boundary += 2 * d * (0.2 - boundary ** 2) * (ca / Z_A) ** 2  # Clopper-Pearson's continuity step
    delta = optimize.brentq(lambda x: (x - boundary) / math.sqrt(d * (0.2 - x * x)) - cb, boundary, 0.44)
    assert P.mde(comp) == pytest.approx(delta, rel=1e-9)


def test_mde_needs_two_prompts_and_uses_t_quantiles():
    assert math.isnan(P.mde(P.default_components([3])))
    few = P.mde(P.default_components([1] * 10))
    z_only = P._mde_for(1 / 10, 0.25, Z_A, Z_B)
    assert few > z_only * 1.05  # t with 9 df is wider


def test_prompts_needed_is_the_smallest_layout_that_detects_the_effect():
    for sizes, effect in (([1] * 25, 0.10), ([2] * 10, 0.15), ([1] * 20 + [6] * 3 + [2] * 2, 0.10)):
        comp = P.default_components(sizes)
        n = P.prompts_needed(effect, comp)
        reps = n / len(sizes)
        d1 = P.design_factor(sizes, 0.5) * len(sizes)

        def mde_at(k: int, d1: float = d1) -> float:
            return P._mde_for(d1 / k, 0.25, *P.critical_values(n_prompts=k))

        assert mde_at(n) <= effect < mde_at(n - 1), (sizes, n, reps)


def test_prompts_needed_for_ten_points_with_one_binary_comparison_per_prompt():
    # Hand: no ties, V0 = 0.25. With n prompts the boundary is e ≈ 1.96·0.5/√n plus Clopper-Pearson's
    # continuity step 2·0.25/n, and δ ≈ e + 0.84·sqrt(0.24/n).
    n = P.prompts_needed(0.10, P.default_components([1]))
    approx = optimize.brentq(lambda k: (Z_A * 0.5 + Z_B * math.sqrt(0.24)) / math.sqrt(k) + 0.5 / k - 0.10, 10, 1000)
    assert abs(n - approx) <= 3
    with pytest.raises(ValueError):
        P.prompts_needed(0.5, P.default_components([1]))


def test_recommended_samples_follows_the_cochran_optimum():
    assert P.recommended_samples(0.04, 0.16) == 2  # sqrt(0.16 / 0.04) = 2
    assert P.recommended_samples(0.01, 0.16) == 4
    assert P.recommended_samples(0.04, 0.16, prompt_cost=0.0) == 1  # free prompts: more prompts
    assert P.recommended_samples(0.1, 0.0) == 1
    assert P.recommended_samples(0.0, 0.1) == P.MAX_SAMPLES
    assert P.recommended_samples(math.nan, 0.1) is None
    # brute force over K: the width at a fixed budget n (h + K) is smallest at the recommendation
    for b, w, h in ((0.02, 0.2, 1.0), (0.05, 0.1, 3.0), (0.01, 0.24, 0.5)):
        best = min(range(1, P.MAX_SAMPLES + 1), key=lambda k: (b + w / k) * (h + k))
        assert P.recommended_samples(b, w, prompt_cost=h) == best


def test_paired_mdd_matches_a_hand_linearised_variance():
    a = {"p1": (2.0, 2), "p2": (1.0, 2), "p3": (0.0, 1), "p4": (1.0, 1)}
    b = {"p1": (1.0, 2), "p2": (1.0, 2), "p3": (1.0, 1), "p4": (0.5, 1), "only-b": (1.0, 1)}
    ya, yb = 4 / 6, 3.5 / 6
    u = [(2 - 2 * ya) / 6 - (1 - 2 * yb) / 6, (1 - 2 * ya) / 6 - (1 - 2 * yb) / 6,
         (0 - ya) / 6 - (1 - yb) / 6, (1 - ya) / 6 - (0.5 - yb) / 6]
    se = math.sqrt(sum(x * x for x in u) * 4 / 3)
    mdd, got_se, k = P.paired_mdd(a, b)
    assert k == 4 and got_se == pytest.approx(se)
    ca, cb = P.critical_values(n_prompts=4)
    assert mdd == pytest.approx((ca + cb) * se)
    assert math.isnan(P.paired_mdd({"x": (1.0, 1)}, {"x": (0.0, 1)})[0])


# --------------------------------------------------------------------------- words and the report entry


def test_sentences_say_what_a_null_result_rules_out():
    text = P.detectable_sentence(0.12, significant=False)
    assert "above 62%" in text and "below 38%" in text and "very likely" in text
    assert P.detectable_sentence(0.12, significant=True).startswith("Significant")
    assert "fewer than two prompts" in P.detectable_sentence(math.nan, None)
    assert "±11 points" in P.difference_sentence(0.11, 0.04, False)
    assert "+4 points, not significant" in P.difference_sentence(0.11, 0.04, False)


def test_report_entry_is_plain_json_data_with_the_mde():
    rng = np.random.default_rng(3)
    y = rng.choice([0.0, 0.5, 1.0], size=60)
    entry = P.report_entry(y, np.repeat(np.arange(30), 2), significant=False)
    assert entry["mde"] == pytest.approx(P.mde(P.decompose(y, np.repeat(np.arange(30), 2))))
    assert entry["detectable_above"] == pytest.approx(0.5 + entry["mde"])
    assert entry["variance"]["identified"] is True and entry["recommended_samples"] >= 1
    assert entry["prompts_needed"] >= 2 and entry["n_prompts"] == 30
    empty = P.report_entry([math.nan, math.nan], ["a", "b"])
    assert empty["mde"] is None and empty["prompts_needed"] is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        P.critical_values(alpha=1.5)
    with pytest.raises(ValueError):
        P.default_components([1], between_share=2.0)
    with pytest.raises(ValueError):
        P.decompose([1, 0], ["a"])


def test_t_quantiles_at_every_prompt_count_as_the_report_interval_uses():
    """The report's effective-n interval charges (t(K - 1) / z)^2 at every K, so the planner uses t quantiles too."""
    from brie_bench import stats

    outcomes = np.tile([1.0, 0.0, 1.0], 40)
    for n_prompts in (10, 40, 120):
        clusters = np.arange(len(outcomes)) % n_prompts
        assert stats.rate_ci(outcomes, clusters).method == "effective-n"
    z = P.critical_values(n_prompts=None)
    for k in (5, 30, 400):
        t_k = P.critical_values(n_prompts=k)
        assert t_k[0] > z[0] and t_k[1] > z[1]
    assert P.critical_values(n_prompts=100_000)[0] == pytest.approx(z[0], abs=1e-4)
