"""Tests for brie_bench.stats: each statistic against an independent implementation.

Cross-checks use statsmodels, the krippendorff package, scipy, published reference
values and plain-loop re-implementations; edge cases check that empty or degenerate
input gives NaN instead of an exception.
"""

from __future__ import annotations

import math
from itertools import combinations

import krippendorff
import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import expit
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from brie_bench import stats as S

# The reference libraries warn (0/0) on degenerate random tables; our code must not.
pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning:statsmodels.*"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning:krippendorff.*")]

NAN = float("nan")
HYP = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
outcome_values = st.sampled_from([0.0, 0.5, 1.0, NAN])


def _random_outcomes(rng: np.random.Generator, n: int, p=(0.3, 0.2, 0.45, 0.05)) -> np.ndarray:
    return rng.choice([0.0, 0.5, 1.0, np.nan], size=n, p=list(p))


# --------------------------------------------------------------------------- counts and win rates


@HYP
@given(st.lists(outcome_values, max_size=60))
def test_counts_and_win_rates_match_a_plain_loop(values: list[float]) -> None:
    wins = sum(1 for v in values if v == 1.0)
    losses = sum(1 for v in values if v == 0.0)
    ties = sum(1 for v in values if v == 0.5)
    invalid = sum(1 for v in values if math.isnan(v))
    c = S.counts(values)
    assert (c.wins, c.losses, c.ties, c.invalid, c.n_valid) == (wins, losses, ties, invalid, wins + losses + ties)
    assert c.total == len(values)
    valid = wins + losses + ties
    if valid:
        assert S.win_rate(values) == pytest.approx((wins + ties / 2) / valid)
        assert S.strict_win_rate(values) == pytest.approx(wins / valid)
        # Symmetry: the baseline's win rate is the complement (ties count half for both).
        flipped = [1.0 - v for v in values]
        assert S.win_rate(flipped) == pytest.approx(1.0 - S.win_rate(values))
    else:
        assert math.isnan(S.win_rate(values)) and math.isnan(S.strict_win_rate(values))


def test_edge_cases_give_nan_not_exceptions() -> None:
    assert S.counts([]) == S.Counts(0, 0, 0, 0, 0)
    assert math.isnan(S.win_rate([]))
    assert math.isnan(S.win_rate([NAN, NAN]))
    assert S.counts([NAN, NAN]).invalid == 2
    assert S.win_rate([0.5, 0.5, 0.5]) == 0.5
    assert S.strict_win_rate([0.5, 0.5, 0.5]) == 0.0
    assert math.isnan(S.wilson_ci(0, 0).estimate)
    ci = S.clustered_bootstrap_ci([NAN, NAN], ["p1", "p2"])
    assert ci.n == 0 and math.isnan(ci.estimate) and not ci.reliable
    assert math.isnan(S.sign_test(0, 0))
    assert math.isnan(S.cohen_kappa([], []))
    assert math.isnan(S.fleiss_kappa(np.full((3, 2), np.nan)))
    assert math.isnan(S.krippendorff_alpha(np.full((3, 2), np.nan)))
    assert math.isnan(S.gwet_ac1(np.full((3, 2), np.nan)))
    assert math.isnan(S.percent_agreement(np.empty((0, 3))))
    lc = S.length_controlled_win_rate([], [], [])
    assert math.isnan(lc.win_rate.estimate) and math.isnan(lc.raw_win_rate)
    lb = S.length_bias([NAN], [10], [5])
    assert lb.longer.n == 0 and math.isnan(lb.longer.estimate)
    assert S.position_consistency(np.empty((0, 2))).n_pairs == 0
    assert S.label_bias([], []).n == 0


def test_outcomes_outside_the_coding_are_rejected() -> None:
    with pytest.raises(ValueError, match="1.0 \\(win\\)"):
        S.counts([1.0, 2.0])
    with pytest.raises(ValueError):
        S.win_rate([[1.0, 0.0]])


def test_strict_outcomes_recode_for_a_strict_interval() -> None:
    x = S.strict_outcomes([1.0, 0.5, 0.0, NAN])
    assert x[:3].tolist() == [1.0, 0.0, 0.0] and math.isnan(x[3])
    assert S.win_rate(x[~np.isnan(x)]) == pytest.approx(S.strict_win_rate([1.0, 0.5, 0.0, NAN]))


# --------------------------------------------------------------------------- Wilson and sign test


@HYP
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_statsmodels(sn: tuple[int, int], level: float) -> None:
    successes, n = sn
    ci = S.wilson_ci(successes, n, level)
    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    assert ci.low == pytest.approx(low, abs=1e-12)
    assert ci.high == pytest.approx(high, abs=1e-12)
    assert ci.estimate == successes / n and ci.method == "wilson"
    assert ci.low <= ci.estimate <= ci.high


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        S.wilson_ci(5, 3)
    with pytest.raises(ValueError):
        S.wilson_ci(1, 3, level=1.5)


@HYP
@given(st.integers(0, 80), st.integers(0, 80))
def test_sign_test_matches_exact_binomial_sum(wins: int, losses: int) -> None:
    n = wins + losses
    if n == 0:
        assert math.isnan(S.sign_test(wins, losses))
        return
    # Independent two-sided exact p: total probability of outcomes no likelier than observed.
    probs = [math.comb(n, k) / 2**n for k in range(n + 1)]
    expected = min(1.0, sum(p for p in probs if p <= probs[wins] * (1 + 1e-7)))
    assert S.sign_test(wins, losses) == pytest.approx(expected, rel=1e-9)
    assert S.sign_test(wins, losses) == pytest.approx(sps.binomtest(wins, n).pvalue)


# --------------------------------------------------------------------------- clustered bootstrap


def _plain_loop_bootstrap(values, clusters, stat, n_boot, level, seed):
    """Reference: expand every resample to its rows one prompt at a time, then apply stat."""
    values = np.asarray(values, float)
    clusters = np.asarray(clusters)
    keep = ~np.isnan(values)
    values, clusters = values[keep], clusters[keep]
    ids = sorted(set(clusters.tolist()))
    rows_of = {cid: [i for i in range(len(values)) if clusters[i] == cid] for cid in ids}
    boots = []
    for chunk in S.cluster_resamples(len(ids), n_boot, seed):
        for pick in chunk:
            rows = []
            for c in pick:
                rows.extend(rows_of[ids[c]])
            boots.append(stat(values[rows]))
    alpha = 1 - level
    return np.quantile(boots, [alpha / 2, 1 - alpha / 2])


@pytest.mark.parametrize("stat", [np.mean, np.median])
def test_clustered_bootstrap_equals_a_plain_loop_with_the_same_draws(stat) -> None:
    rng = np.random.default_rng(7)
    values = _random_outcomes(rng, 300)
    clusters = np.array([f"prompt-{i:02d}" for i in rng.integers(0, 30, 300)])
    ci = S.clustered_bootstrap_ci(values, clusters, stat=stat, n_boot=300, level=0.9, seed=11)
    low, high = _plain_loop_bootstrap(values, clusters, stat, 300, 0.9, 11)
    assert ci.low == pytest.approx(low, abs=1e-12)
    assert ci.high == pytest.approx(high, abs=1e-12)
    assert ci.estimate == pytest.approx(stat(values[~np.isnan(values)]))
    assert ci.n == int((~np.isnan(values)).sum()) and ci.n_clusters == 30
    assert ci.method == "cluster-bootstrap"


def test_cluster_resamples_are_uniform_reproducible_and_chunked() -> None:
    chunks = list(S.cluster_resamples(5000, 2000, seed=3))
    assert len(chunks) > 1, "large problems must be generated in bounded chunks"
    draws = np.concatenate(chunks)
    assert draws.shape == (2000, 5000) and draws.min() >= 0 and draws.max() < 5000
    again = np.concatenate(list(S.cluster_resamples(5000, 2000, seed=3)))
    assert np.array_equal(draws, again)
    assert not np.array_equal(draws, np.concatenate(list(S.cluster_resamples(5000, 2000, seed=4))))
    freq = np.bincount(draws.reshape(-1), minlength=5000)
    chi2 = sps.chisquare(freq).pvalue
    assert chi2 > 1e-4


def _simulate_clustered(rng: np.random.Generator, k: int, per: int, prompt_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes whose win probability varies by prompt: rows of a prompt are correlated."""
    logit = rng.normal(0.0, prompt_sd, k)
    p = np.repeat(expit(logit), per)
    return (rng.random(k * per) < p).astype(float), np.repeat(np.arange(k), per)


def test_clustered_interval_covers_the_truth_and_a_row_bootstrap_does_not() -> None:
    rng = np.random.default_rng(2024)
    k, per, reps = 30, 8, 150
    truth = float(np.mean(expit(rng.normal(0.0, 2.0, 400_000))))  # population mean win rate
    hit_cluster = hit_rows = 0
    for rep in range(reps):
        values, clusters = _simulate_clustered(rng, k, per, prompt_sd=2.0)
        c = S.clustered_bootstrap_ci(values, clusters, n_boot=500, seed=rep)
        r = S.clustered_bootstrap_ci(values, None, n_boot=500, seed=rep)
        hit_cluster += c.low <= truth <= c.high
        hit_rows += r.low <= truth <= r.high
    assert 0.86 <= hit_cluster / reps <= 0.99
    # Ignoring the prompt structure gives intervals that are far too narrow.
    assert hit_rows / reps < hit_cluster / reps - 0.15


def test_clustered_bootstrap_edge_cases() -> None:
    one = S.clustered_bootstrap_ci([1.0, 0.0, 1.0], ["p", "p", "p"])
    assert one.estimate == pytest.approx(2 / 3) and one.n_clusters == 1
    assert math.isnan(one.low) and math.isnan(one.high) and not one.reliable
    # A prompt whose only verdicts are invalid drops out.
    ci = S.clustered_bootstrap_ci([1.0, NAN, 0.0], ["a", "b", "c"], n_boot=50)
    assert ci.n == 2 and ci.n_clusters == 2 and ci.reliable
    ties = S.clustered_bootstrap_ci([0.5] * 20, np.arange(20) // 2)
    assert (ties.estimate, ties.low, ties.high) == (0.5, 0.5, 0.5)
    a = S.clustered_bootstrap_ci(_random_outcomes(np.random.default_rng(1), 100), np.arange(100) % 9, seed=5)
    b = S.clustered_bootstrap_ci(_random_outcomes(np.random.default_rng(1), 100), np.arange(100) % 9, seed=5)
    assert a == b
    with pytest.raises(ValueError):
        S.clustered_bootstrap_ci([1.0, 0.0], ["a"])


# --------------------------------------------------------------------------- scores and logprobs


def test_criterion_differences_are_paired_and_clustered() -> None:
    rng = np.random.default_rng(5)
    n = 200
    clusters = rng.integers(0, 25, n)
    ft = {"depth": rng.integers(1, 6, n).astype(float), "clarity": rng.integers(1, 6, n).astype(float)}
    base = {"depth": rng.integers(1, 6, n).astype(float), "clarity": rng.integers(1, 6, n).astype(float)}
    ft["depth"][:10] = np.nan
    out = S.criterion_differences(ft, base, clusters, n_boot=400, seed=2)
    assert set(out) == {"depth", "clarity"}
    d = out["depth"]
    both = ~np.isnan(ft["depth"])
    assert d.mean_ft == pytest.approx(ft["depth"][both].mean())
    assert d.mean_base == pytest.approx(base["depth"][both].mean())
    assert d.difference.estimate == pytest.approx(d.mean_ft - d.mean_base)
    assert d.difference.n == n - 10
    ref = S.clustered_bootstrap_ci(np.where(both, ft["depth"] - base["depth"], np.nan), clusters, n_boot=400, seed=2)
    assert d.difference == ref
    with pytest.raises(ValueError):
        S.criterion_differences({"a": [1.0]}, {"b": [1.0]}, None)


def test_logprob_preference() -> None:
    p = np.array([0.9, 0.8, np.nan, 0.6, 0.7])
    ci = S.logprob_preference(p, ["a", "a", "b", "c", "c"], n_boot=200)
    assert ci.estimate == pytest.approx(0.75) and ci.n == 4 and ci.n_clusters == 2
    assert 0.6 <= ci.low <= ci.high <= 0.9
    with pytest.raises(ValueError):
        S.logprob_preference([1.2], None)


# --------------------------------------------------------------------------- agreement


def _random_labels(rng: np.random.Generator, items: int, raters: int, missing: float) -> np.ndarray:
    truth = rng.choice([0.0, 0.5, 1.0], size=items, p=[0.3, 0.2, 0.5])
    m = np.where(rng.random((items, raters)) < 0.7, truth[:, None],
                 rng.choice([0.0, 0.5, 1.0], size=(items, raters)))
    m[rng.random((items, raters)) < missing] = np.nan
    return m


@HYP
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(5, 80))
def test_agreement_coefficients_match_reference_implementations(seed: int, raters: int, items: int) -> None:
    rng = np.random.default_rng(seed)
    m = _random_labels(rng, items, raters, missing=0.15)
    # Krippendorff (the package takes raters x units, NaN missing).
    try:
        ref_alpha = krippendorff.alpha(reliability_data=m.T, level_of_measurement="nominal")
    except ValueError:  # the package refuses one-value domains; we return NaN
        ref_alpha = NAN
    got = S.krippendorff_alpha(m)
    assert (math.isnan(got) and math.isnan(ref_alpha)) or got == pytest.approx(ref_alpha, abs=1e-9)
    # Cohen per pair against statsmodels on the contingency table of shared items.
    for (i, j), pair in zip(combinations(range(raters), 2), S.pairwise_agreement(m)):
        assert pair.raters == (i, j)
        both = ~(np.isnan(m[:, i]) | np.isnan(m[:, j]))
        assert pair.n == both.sum()
        if pair.n == 0:
            assert math.isnan(pair.cohen_kappa)
            continue
        cats = np.union1d(m[both, i], m[both, j])
        table = np.array([[np.sum((m[both, i] == a) & (m[both, j] == b)) for b in cats] for a in cats])
        assert pair.percent == pytest.approx(np.trace(table) / table.sum())
        pe = (table.sum(0) * table.sum(1)).sum() / table.sum() ** 2
        if pe < 1:
            assert pair.cohen_kappa == pytest.approx(sm_cohens_kappa(table).kappa, abs=1e-9)
    # Fleiss on complete items against statsmodels.
    complete = m[~np.isnan(m).any(axis=1)]
    got_f = S.fleiss_kappa(m)
    if complete.shape[0] and len(np.unique(complete)) > 1:
        table, _ = aggregate_raters(complete)
        assert got_f == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-9)
    # Percent of complete items where every rater agrees.
    if complete.shape[0]:
        expected = np.mean([len(set(row.tolist())) == 1 for row in complete])
        assert S.percent_agreement(m) == pytest.approx(expected)


def test_gwet_ac1_reproduces_the_published_handbook_example() -> None:
    # Gwet, Handbook of Inter-Rater Reliability: 12 subjects, 4 raters, 5 categories,
    # missing ratings; published AC1 = 0.77544 (pa 0.81818, pe 0.19032).
    n = np.nan
    data = np.array([
        [1, 1, n, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
        [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [n, 5, 5, 5], [n, n, 1, 1], [n, n, 3, n],
    ], dtype=float)
    assert S.gwet_ac1(data, categories=[1, 2, 3, 4, 5]) == pytest.approx(0.77544, abs=5e-6)
    assert S.gwet_ac1(data, categories=None) == pytest.approx(0.77544, abs=5e-6)
    with pytest.raises(ValueError):
        S.gwet_ac1(data)  # labels 2..5 are not outcome codes


@HYP
@given(st.integers(0, 10_000), st.integers(4, 60))
def test_gwet_ac1_two_raters_matches_the_two_rater_formula(seed: int, items: int) -> None:
    rng = np.random.default_rng(seed)
    m = _random_labels(rng, items, 2, missing=0.0)
    q = 3
    pa = np.mean(m[:, 0] == m[:, 1])
    pi = [(np.mean(m[:, 0] == c) + np.mean(m[:, 1] == c)) / 2 for c in S.OUTCOME_CATEGORIES]
    pe = sum(p * (1 - p) for p in pi) / (q - 1)
    assert S.gwet_ac1(m) == pytest.approx((pa - pe) / (1 - pe), abs=1e-12)


def test_kappa_paradox_high_agreement_low_kappa_high_ac1() -> None:
    # Two judges, 100 items: both say "win" on 90, disagree on 10 → 90% agreement.
    a = np.array([1.0] * 90 + [1.0] * 5 + [0.0] * 5)
    b = np.array([1.0] * 90 + [0.0] * 5 + [1.0] * 5)
    m = np.column_stack([a, b])
    res = S.agreement(m)
    assert res.percent_all == pytest.approx(0.90)
    assert res.pairs[0].cohen_kappa < 0.0  # chance agreement is already 0.905
    assert res.gwet_ac1 > 0.85
    assert "paradox" in S.KAPPA_PARADOX and "90%" in S.KAPPA_PARADOX
    assert res.note == S.KAPPA_PARADOX


def test_agreement_degenerate_inputs() -> None:
    same = np.ones((10, 3))
    res = S.agreement(same)
    assert res.percent_all == 1.0
    assert math.isnan(res.fleiss_kappa) and math.isnan(res.krippendorff_alpha)
    assert math.isnan(res.pairs[0].cohen_kappa)
    assert res.gwet_ac1 == pytest.approx(1.0)
    with pytest.raises(ValueError):
        S.agreement(np.ones((4, 1)))
    single = np.array([[1.0, np.nan], [np.nan, 0.0]])  # no item rated twice
    assert math.isnan(S.krippendorff_alpha(single)) and math.isnan(S.gwet_ac1(single))
    assert S.agreement(single).n_complete == 0


# --------------------------------------------------------------------------- majority vote


def test_majority_vote_rules() -> None:
    m = np.array([
        [1.0, 1.0, 0.0],      # majority win
        [1.0, 0.0, np.nan],   # one each → tie
        [1.0, 0.0, 0.5],      # three-way split → tie
        [np.nan, np.nan, np.nan],  # nobody answered → invalid
        [0.0, 0.0, 0.5],      # majority loss
        [0.5, 0.5, 1.0],      # majority tie
    ])
    mv = S.majority_vote(m)
    assert mv.consensus[[0, 1, 2, 4, 5]].tolist() == [1.0, 0.5, 0.5, 0.0, 0.5]
    assert math.isnan(mv.consensus[3])
    assert mv.counts == S.Counts(wins=1, losses=1, ties=3, invalid=1, n_valid=5)
    assert mv.win_rate == pytest.approx(0.5) and mv.strict_win_rate == pytest.approx(0.2)
    assert S.majority_vote(np.array([[1.0], [np.nan]])).consensus[0] == 1.0


@HYP
@given(st.lists(st.lists(outcome_values, min_size=3, max_size=3), min_size=1, max_size=30), st.permutations([0, 1, 2]))
def test_majority_vote_ignores_judge_order(rows: list[list[float]], perm: list[int]) -> None:
    m = np.array(rows)
    a = S.majority_vote(m).consensus
    b = S.majority_vote(m[:, perm]).consensus
    assert np.array_equal(a, b, equal_nan=True)
    # Swapping which model is "fine-tune" mirrors the consensus.
    c = S.majority_vote(1.0 - m).consensus
    assert np.array_equal(1.0 - a, c, equal_nan=True)


# --------------------------------------------------------------------------- bias diagnostics


def test_label_winners_and_label_bias_against_fisher() -> None:
    outcomes = np.array([1.0, 1.0, 0.0, 0.5, np.nan, 0.0, 1.0])
    ft_is_a = np.array([True, False, True, True, False, False, True])
    won_a, a = S.label_winners(outcomes, ft_is_a)
    # decisive rows: 0,1,2,5,6 → label A won when (ft won and ft was A) or (ft lost and ft was B)
    assert won_a.tolist() == [True, False, False, True, True]
    assert a.tolist() == [True, False, True, False, True]
    res = S.label_bias(won_a, a)
    table = [[2, 1], [1, 1]]  # rows ft=A / ft=B; cols ft won / ft lost
    ref = sps.fisher_exact(table)
    assert res.fisher_p == pytest.approx(ref.pvalue) and res.odds_ratio == pytest.approx(ref.statistic)
    assert res.ft_win_rate_as_a == pytest.approx(2 / 3) and res.ft_win_rate_as_b == pytest.approx(1 / 2)
    assert res.label_a.estimate == pytest.approx(3 / 5) and res.n == 5
    assert res.p_label == pytest.approx(sps.binomtest(3, 5).pvalue)


def test_label_bias_detects_a_judge_that_prefers_label_a() -> None:
    rng = np.random.default_rng(9)
    n = 600
    ft_is_a = rng.random(n) < 0.5
    # Judge: 75% of the time picks label A whatever the content.
    picks_a = rng.random(n) < 0.75
    outcomes = np.where(picks_a == ft_is_a, 1.0, 0.0)
    res = S.label_bias(*S.label_winners(outcomes, ft_is_a))
    assert res.label_a.low > 0.7 and res.p_label < 1e-6
    assert res.fisher_p < 1e-6 and res.ft_win_rate_as_a > res.ft_win_rate_as_b
    # Randomised labels keep the overall win rate near 0.5 despite the bias.
    assert abs(S.win_rate(outcomes) - 0.5) < 0.06
    # A content-only judge shows no label effect.
    fair = np.where(rng.random(n) < 0.6, 1.0, 0.0)
    fair_res = S.label_bias(*S.label_winners(fair, ft_is_a))
    assert fair_res.fisher_p > 0.001 and fair_res.label_a.low < 0.5 < fair_res.label_a.high


def test_position_consistency() -> None:
    pairs = np.array([[1.0, 1.0], [1.0, 0.0], [0.5, 1.0], [0.0, 0.0], [np.nan, 1.0], [0.5, 0.5]])
    res = S.position_consistency(pairs)
    assert res.n_pairs == 5
    assert res.consistent == pytest.approx(3 / 5)
    assert res.flipped == (1, 2) and res.reversals == 1
    assert res.combined[[0, 1, 2, 3, 5]].tolist() == [1.0, 0.5, 0.5, 0.0, 0.5] and math.isnan(res.combined[4])
    with pytest.raises(ValueError):
        S.position_consistency(np.ones((3, 3)))


def test_length_bias() -> None:
    outcomes = np.array([1.0, 1.0, 0.5, 0.0, 0.0, 1.0, np.nan])
    len_ft = np.array([500, 400, 300, 100, 100, 200, 900])
    len_base = np.array([100, 100, 100, 300, 300, 200, 100])
    res = S.length_bias(outcomes, len_ft, len_base)
    assert res.longer.estimate == pytest.approx(2.5 / 3) and res.longer.n == 3
    assert res.shorter.estimate == 0.0 and res.shorter.n == 2
    assert res.n_equal == 1 and res.share_ft_longer == pytest.approx(3 / 6)
    rho = sps.spearmanr(np.array([400, 300, 200, -200, -200, 0]), outcomes[:6]).statistic
    assert res.spearman_rho == pytest.approx(rho) and res.spearman_rho > 0


# --------------------------------------------------------------------------- length-controlled win rate


def _length_biased_run(rng: np.random.Generator, n: int, quality: float, length_effect: float):
    clusters = rng.integers(0, 60, n)
    len_base = rng.integers(100, 600, n)
    len_ft = len_base + rng.normal(250, 150, n).astype(int)  # the fine-tune writes longer
    delta = len_ft - len_base
    x = np.tanh(delta / np.std(delta, ddof=1))
    p = expit(quality + length_effect * x)
    u = rng.random(n)
    outcomes = np.where(u < p * 0.9, 1.0, np.where(u < p * 0.9 + 0.1, 0.5, 0.0))
    return outcomes, len_ft, len_base, clusters, x


def test_length_controlled_matches_statsmodels_glm_with_cluster_se() -> None:
    rng = np.random.default_rng(3)
    outcomes, len_ft, len_base, clusters, x = _length_biased_run(rng, 800, 0.1, 1.0)
    outcomes[:20] = np.nan
    res = S.length_controlled_win_rate(outcomes, len_ft, len_base, clusters)
    ok = ~np.isnan(outcomes)
    d = (len_ft - len_base)[ok]
    xs = np.tanh(d / np.std(d, ddof=1))
    glm = sm.GLM(outcomes[ok], np.column_stack([np.ones(ok.sum()), xs]), family=sm.families.Binomial())
    fit = glm.fit(cov_type="cluster", cov_kwds={"groups": clusters[ok]})
    assert res.intercept == pytest.approx(fit.params[0], abs=1e-6)
    assert res.length_coef == pytest.approx(fit.params[1], abs=1e-6)
    z = sps.norm.ppf(0.975)
    assert res.win_rate.low == pytest.approx(expit(fit.params[0] - z * fit.bse[0]), abs=1e-6)
    assert res.win_rate.high == pytest.approx(expit(fit.params[0] + z * fit.bse[0]), abs=1e-6)
    assert res.win_rate.estimate == pytest.approx(expit(fit.params[0]))
    assert res.raw_win_rate == pytest.approx(S.win_rate(outcomes))
    assert res.win_rate.n_clusters == len(np.unique(clusters[ok]))


def test_length_control_removes_a_pure_length_preference() -> None:
    rng = np.random.default_rng(11)
    outcomes, len_ft, len_base, clusters, _ = _length_biased_run(rng, 3000, 0.0, 2.0)
    res = S.length_controlled_win_rate(outcomes, len_ft, len_base, clusters)
    assert res.raw_win_rate > 0.7  # the judge loves length: raw numbers flatter the fine-tune
    assert res.win_rate.low < 0.5 < res.win_rate.high  # equal quality once length is controlled
    assert res.length_coef > 1.0


def test_length_control_without_length_variation_is_the_raw_win_rate() -> None:
    outcomes = np.array([1.0, 1.0, 0.0, 0.5, 1.0, 0.0])
    same = np.full(6, 100)
    res = S.length_controlled_win_rate(outcomes, same, same, clusters=[1, 1, 2, 2, 3, 3])
    assert res.win_rate.estimate == pytest.approx(S.win_rate(outcomes))
    assert math.isnan(res.length_coef)
    all_wins = S.length_controlled_win_rate(np.ones(10), np.arange(10) * 10, np.full(10, 50), np.arange(10))
    assert all_wins.win_rate.estimate > 0.99  # separation: bounded, finite, not a crash


# --------------------------------------------------------------------------- Bradley–Terry


def _simulate_games(rng, strengths, n, tie_rate=0.15):
    p = len(strengths)
    a = rng.integers(0, p, n)
    b = (a + rng.integers(1, p, n)) % p
    a_wins = rng.random(n) < expit(strengths[a] - strengths[b])
    ties = rng.random(n) < tie_rate
    return np.where(a_wins, a, b), np.where(a_wins, b, a), ties


def test_bradley_terry_matches_a_logistic_glm() -> None:
    rng = np.random.default_rng(21)
    strengths = np.array([0.0, 0.8, -0.5, 1.5])
    win, lose, ties = _simulate_games(rng, strengths, 2000)
    res = S.bradley_terry(win, lose, 4, ties=ties, prior=1e-9, n_boot=200)
    # Independent fit: y = P(first listed beats second), ties 0.5, design e_first − e_second.
    flip = rng.random(len(win)) < 0.5
    first, second = np.where(flip, lose, win), np.where(flip, win, lose)
    y = np.where(ties, 0.5, np.where(flip, 0.0, 1.0))
    design = np.zeros((len(win), 4))
    design[np.arange(len(win)), first] += 1
    design[np.arange(len(win)), second] -= 1
    fit = sm.GLM(y, design[:, 1:], family=sm.families.Binomial()).fit()
    assert res.scores[0] == 0.0
    assert res.scores[1:] == pytest.approx(fit.params, abs=1e-5)
    assert res.converged
    assert np.all(res.low[1:] < res.scores[1:]) and np.all(res.scores[1:] < res.high[1:])
    # Without ties (which pull strengths together) the intervals cover the true strengths.
    win, lose, _ = _simulate_games(rng, strengths, 2000, tie_rate=0.0)
    clean = S.bradley_terry(win, lose, 4, n_boot=300)
    assert np.all((clean.low[1:] < strengths[1:]) & (strengths[1:] < clean.high[1:]))
    assert res.win_rate_vs_anchor[3] == pytest.approx(expit(res.scores[3]))


def test_bradley_terry_symmetry_anchor_and_two_players() -> None:
    rng = np.random.default_rng(4)
    win, lose, ties = _simulate_games(rng, np.array([0.0, 1.0, 0.5]), 500)
    a = S.bradley_terry(win, lose, 3, ties=ties, n_boot=100)
    b = S.bradley_terry(lose, win, 3, ties=ties, n_boot=100)
    assert a.scores == pytest.approx(-b.scores, abs=1e-8)
    c = S.bradley_terry(win, lose, 3, ties=ties, anchor=1, n_boot=100)
    assert c.scores == pytest.approx(a.scores - a.scores[1], abs=1e-8)
    # Two players: BT strength is the logit of the win rate (ties half).
    w2 = np.array([1] * 30 + [0] * 10 + [1] * 10)
    l2 = np.array([0] * 30 + [1] * 10 + [0] * 10)
    t2 = np.array([False] * 40 + [True] * 10)
    two = S.bradley_terry(w2, l2, 2, ties=t2, prior=1e-9, n_boot=50)
    assert expit(two.scores[1]) == pytest.approx(35 / 50, abs=1e-6)


def test_bradley_terry_clustered_bootstrap_and_degenerate_inputs() -> None:
    rng = np.random.default_rng(8)
    win, lose, ties = _simulate_games(rng, np.array([0.0, 0.7]), 400)
    clusters = rng.integers(0, 40, 400)
    clustered = S.bradley_terry(win, lose, 2, ties=ties, clusters=clusters, n_boot=300)
    assert clustered.low[1] < clustered.scores[1] < clustered.high[1]
    # A player that never wins still gets a finite, very low score thanks to the prior.
    never = S.bradley_terry(np.zeros(20, int), np.ones(20, int), 2, n_boot=50)
    assert math.isfinite(never.scores[1]) and never.scores[1] < -5
    # Players outside the anchor's component, or without games, are NaN.
    apart = S.bradley_terry([0, 0, 2], [1, 1, 3], 5, n_boot=50)
    assert math.isfinite(apart.scores[1]) and np.isnan(apart.scores[2:]).all()
    empty = S.bradley_terry([], [], 3)
    assert np.isnan(empty.scores).all() and empty.n_games == 0
    with pytest.raises(ValueError):
        S.bradley_terry([0], [0], 2)
    with pytest.raises(ValueError):
        S.bradley_terry([0], [1], 2, prior=0.0)
