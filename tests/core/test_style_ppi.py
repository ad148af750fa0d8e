"""Style features, the style-controlled fit (against statsmodels) and PPI++ (against ppi_py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from brie_bench import stats
from brie_bench.report.controls import human_calibrated_blocks
from brie_bench.stats.ppi import ppi_lambda, ppi_mean_ci
from brie_bench.stats.style import StyleCounts, logistic_fit, strip_code_blocks, style_differences
from helpers import human_calibrated_example

ANSWER = """# Plan
Intro with **bold** and __strong__ words, and a snake_case_name that is not bold.

- first
* second
+ third
1. one
2) two
---
* * *
```python
# a comment, not a header
- not a list item
**not bold**
```
## Details
"""


def test_style_counts_on_a_hand_written_answer() -> None:
    c = stats.style_counts(ANSWER)
    assert (c.headers, c.unordered_list_items, c.ordered_list_items, c.bold) == (2, 3, 2, 2)
    assert "not a list item" not in strip_code_blocks(ANSWER)
    assert c.length == len(strip_code_blocks(ANSWER))
    # An unclosed fence runs to the end, as markdown renders it.
    assert stats.style_counts("text\n```\n# x\n- y\n") == StyleCounts(5, 0, 0, 0, 0)
    assert stats.style_counts("Plain prose, no markdown at all.") == StyleCounts(32, 0, 0, 0, 0)


def test_style_differences_follow_the_issue_definitions() -> None:
    cand, base = StyleCounts(300, 0, 6, 0, 2), StyleCounts(100, 1, 0, 0, 0)
    d = style_differences(cand, base)
    assert d[0] == pytest.approx((300 - 100) / 400)
    dc = 1 / 101  # the baseline's header density; the candidate's is 0
    assert d[1] == pytest.approx((0 - dc) / (0 + dc + 1))  # headers: the baseline has one
    dc = 6 / 301
    assert d[2] == pytest.approx(dc / (dc + 1))
    assert d[3] == 0.0
    assert style_differences(StyleCounts(0, 0, 0, 0, 0), StyleCounts(0, 0, 0, 0, 0)).tolist() == [0.0] * 5


def _simulated(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) * [0.3, 0.01, 0.02, 0.01, 0.005] + [0.05, 0, 0.01, 0, 0]
    eta = 0.3 + 0.6 * x[:, 0] / 0.3 + 0.8 * x[:, 2] / 0.02
    p = 1 / (1 + np.exp(-eta))
    u = rng.random(n)
    y = np.where(u < 0.1, 0.5, np.where(rng.random(n) < p, 1.0, 0.0))
    return y, x, rng.integers(0, n // 4, n)


def test_style_fit_matches_statsmodels_glm_with_fractional_outcomes() -> None:
    y, x, clusters = _simulated(3)
    res = stats.style_controlled_win_rate(y, x, clusters, n_boot=200)
    z = np.column_stack([np.ones(len(y)), x / x.std(axis=0, ddof=1)])
    ref = sm.GLM(y, z, family=sm.families.Binomial()).fit(tol=1e-12)
    assert res.intercept == pytest.approx(ref.params[0], abs=1e-7)
    assert [c.coef.estimate for c in res.coefficients] == pytest.approx(ref.params[1:].tolist(), abs=1e-7)
    assert res.win_rate.estimate == pytest.approx(1 / (1 + math.exp(-ref.params[0])), abs=1e-9)
    # Frequency weights: the weighted fit (what each bootstrap resample is) matches too.
    w = np.random.default_rng(1).integers(0, 4, len(y)).astype(float)
    theta, ok = logistic_fit(y, z, w)
    ref_w = sm.GLM(y, z, family=sm.families.Binomial(), freq_weights=w).fit(tol=1e-12)
    assert ok and theta.tolist() == pytest.approx(ref_w.params.tolist(), abs=1e-7)
    # Each interval brackets its estimate, and the clearly non-zero effects are stated as preferences.
    for c in res.coefficients:
        assert c.coef.low <= c.coef.estimate <= c.coef.high
    assert res.win_rate.low < res.win_rate.estimate < res.win_rate.high
    assert any(s.startswith("judges favour the longer answer (+") for s in res.sentences())
    assert any("more bulleted list items" in s for s in res.sentences())


def test_features_are_not_centred_so_the_intercept_is_the_rate_at_equal_style() -> None:
    # The candidate always has more list items and the judge loves them; at equal style it is a coin flip.
    rng = np.random.default_rng(5)
    n = 2000
    lists = rng.uniform(0.005, 0.03, n)  # always positive: a fixed orientation
    x = np.column_stack([rng.normal(0, 0.2, n), np.zeros(n), lists, np.zeros(n), np.zeros(n)])
    p = 1 / (1 + np.exp(-(lists / 0.01)))
    y = (rng.random(n) < p).astype(float)
    res = stats.style_controlled_win_rate(y, x, np.arange(n), n_boot=50)
    assert res.raw_win_rate > 0.8
    assert res.win_rate.estimate == pytest.approx(0.5, abs=0.06)
    assert res.coefficients[1].constant and math.isnan(res.coefficients[1].coef.estimate)


def test_separated_style_fit_cannot_be_estimated() -> None:
    x = np.zeros((20, 5))
    x[:, 2] = np.linspace(-0.02, 0.02, 20)
    y = (x[:, 2] > 0).astype(float)  # list density explains every verdict
    res = stats.style_controlled_win_rate(y, x, np.arange(20), n_boot=20)
    assert res.at_bound and res.win_rate.problem and res.win_rate.problem.startswith("cannot be estimated")
    all_wins = stats.style_controlled_win_rate(np.ones(20), np.random.default_rng(0).normal(size=(20, 5)), None,
                                               n_boot=20)
    assert all_wins.at_bound and "same way" in (all_wins.win_rate.problem or "")


def test_ppi_matches_ppi_py_on_the_same_arrays() -> None:
    ppi_py = pytest.importorskip("ppi_py")
    rng = np.random.default_rng(2)
    y = rng.choice([0.0, 0.5, 1.0], 40)
    yhat = np.where(rng.random(40) < 0.8, y, rng.choice([0.0, 0.5, 1.0], 40))
    yhat_all = rng.choice([0.0, 0.5, 1.0], 300, p=[0.3, 0.1, 0.6])
    est, low, high, lam = ppi_mean_ci(y, yhat, yhat_all, level=0.9)
    assert est == pytest.approx(float(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_all)[0]), abs=1e-12)
    ref_low, ref_high = ppi_py.ppi_mean_ci(y, yhat, yhat_all, alpha=0.1)
    assert (low, high) == pytest.approx((float(ref_low[0]), float(ref_high[0])), abs=1e-12)
    assert 0.0 < lam < 1.0
    # λ = 0 is the classical interval; λ = 1 plain PPI: both as ppi_py computes them.
    for fixed in (0.0, 1.0):
        got = ppi_mean_ci(y, yhat, yhat_all, level=0.9, lam=fixed)
        ref = ppi_py.ppi_mean_ci(y, yhat, yhat_all, alpha=0.1, lam=fixed)
        assert got[1:3] == pytest.approx((float(ref[0][0]), float(ref[1][0])), abs=1e-12)
    # A judge that says the opposite of people gives nothing to borrow: λ clips to 0.
    assert ppi_lambda(y, 1.0 - y, 1.0 - yhat_all) == 0.0


def test_human_calibrated_aggregates_to_prompts_first() -> None:
    # Prompt 0 has two comparisons, both judged by a person; prompt 1 one; prompts 2-9 none.
    clusters = np.array([0, 0, 1] + list(range(2, 10)))
    judge = np.array([1.0, 0.0, 1.0] + [1.0, 0.0] * 4)
    human = np.array([1.0, 1.0, 0.5] + [np.nan] * 8)
    res = stats.human_calibrated_win_rate(human, judge, clusters)
    y, yl = np.array([1.0, 0.5]), np.array([0.5, 1.0])  # per-prompt means
    yall = np.array([0.5, 1.0] + [1.0, 0.0] * 4)
    lam = ppi_lambda(y, yl, yall)
    assert res.lam == pytest.approx(lam)
    assert res.win_rate.estimate == pytest.approx(lam * yall.mean() + np.mean(y - lam * yl))
    assert (res.n_human, res.n_labelled, res.n_prompts) == (3, 2, 10)
    assert not res.win_rate.reliable  # 2 labelled prompts: below PPI_MIN_LABELLED, no interval


def test_report_block_per_llm_judge_with_human_only_beside_it() -> None:
    entries, units = human_calibrated_example()
    people = units[("ft", "ann")].outcomes  # the truth on the 40 prompts people judged
    k = len(units[("ft", "gpt")].keys)
    blocks = human_calibrated_blocks(entries, units, level=0.95)
    block = blocks[("ft", "gpt")]
    assert ("ft", "ann") not in blocks
    assert block.n_human_verdicts == 40 and block.n_labelled_prompts == 40 and block.n_judged_prompts == k
    assert block.low <= block.estimate <= block.high
    assert block.narrower_by > 0  # the judge agrees 85% of the time: PPI is narrower than people alone
    assert block.human_only.estimate == pytest.approx(float(people.mean()))
    assert "40 human verdicts" in block.sentence and "people alone" in block.sentence


def test_one_step_bootstrap_tracks_the_weighted_refit_per_resample() -> None:
    # Each resample's coefficients are one Newton step from the full fit: close to refitting
    # that resample (first-order), and exactly the full fit when no prompt is drawn at all.
    from brie_bench.stats.draws import Draws
    from brie_bench.stats.style import _one_step_bootstraps

    y, x, clusters = _simulated(7, n=2000)
    z = np.column_stack([np.ones(len(y)), x / x.std(axis=0, ddof=1)])
    theta, _ = logistic_fit(y, z)
    draws = Draws(int(clusters.max()) + 1, 40, seed=3)
    boots = _one_step_bootstraps(y, z, theta, clusters.astype(np.intp), draws, 30.0)
    counts = draws.counts().counts
    spread = boots.std(axis=0)
    for b in range(0, 40, 8):
        refit, ok = logistic_fit(y, z, counts[b, clusters].astype(float))
        assert ok and np.max(np.abs(boots[b] - refit) / spread) < 0.15  # 0.08 measured; a wrong step is ~1
    none = _one_step_bootstraps(y, z, theta, np.zeros(len(y), dtype=np.intp), Draws(2, 30, seed=0), 30.0)
    drawn = Draws(2, 30, seed=0).counts().counts[:, 0]
    assert (drawn == 0).any() and np.allclose(none[drawn == 0], theta)
