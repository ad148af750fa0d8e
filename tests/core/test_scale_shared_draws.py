"""One set of bootstrap draws per report (`stats.Draws`, passed to each statistic) and batched intervals.

A report computes dozens of prompt-clustered intervals over subsets of one run's
prompts. Given the report's `Draws` they all use one multinomial resample of the run's K
prompts: over all K prompts that is exactly the statistic's own bootstrap (same draws,
same digits); over a subset it is the Poisson-weighted cluster bootstrap. These tests
check both claims, that batching several columns changes no digit, and that the subset
intervals keep their coverage.
"""

from __future__ import annotations

import numpy as np
import pytest

from brie_bench import stats as S

N_BOOT, SEED = 2000, 0


def _run(rng: np.random.Generator, k: int, per_prompt: int = 3, rate: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes (wins, ties, losses, a few invalid) of `per_prompt` judgments on each of k prompts."""
    clusters = np.repeat(np.arange(k), per_prompt)
    p = np.clip(rng.normal(rate, 0.15, size=k), 0.02, 0.98)[clusters]
    u = rng.random(len(clusters))
    out = np.where(u < p, 1.0, 0.0)
    out[rng.random(len(out)) < 0.08] = 0.5
    out[rng.random(len(out)) < 0.03] = np.nan
    return out, clusters


def test_over_all_prompts_the_shared_draws_are_the_statistics_own() -> None:
    out, clusters = _run(np.random.default_rng(1), 120)
    alone = S.mean_ci(out, clusters, n_boot=N_BOOT, seed=SEED)
    shared = S.mean_ci(out, clusters, n_boot=N_BOOT, seed=SEED, draws=S.Draws(120, N_BOOT, SEED))
    assert (shared.low, shared.high, shared.estimate) == (alone.low, alone.high, alone.estimate)


def test_a_subset_uses_the_shared_draws_and_stays_close_to_its_own_bootstrap() -> None:
    out, clusters = _run(np.random.default_rng(2), 400)
    subset = clusters % 4 == 1  # 100 of the run's 400 prompts, as one section of four
    alone = S.mean_ci(out[subset], clusters[subset], n_boot=N_BOOT, seed=SEED)
    shared = S.mean_ci(out[subset], clusters[subset], n_boot=N_BOOT, seed=SEED, draws=S.Draws(400, N_BOOT, SEED))
    other_seed = S.mean_ci(out[subset], clusters[subset], n_boot=N_BOOT, seed=SEED + 1)
    assert shared.method == alone.method == "cluster-bootstrap"
    assert shared.estimate == alone.estimate
    assert (shared.low, shared.high) != (alone.low, alone.high)  # really the shared draws, not its own
    # Another resample of the same data: the bounds differ by Monte Carlo error only.
    assert shared.low == pytest.approx(alone.low, abs=0.015)
    assert shared.high == pytest.approx(alone.high, abs=0.015)
    assert other_seed.low == pytest.approx(alone.low, abs=0.015)


def test_batched_columns_give_the_same_digits_as_one_call_each() -> None:
    out, clusters = _run(np.random.default_rng(3), 90)
    strict = S.strict_outcomes(out)
    diffs = np.where(np.isnan(out), np.nan, np.round(out * 4) - 2)
    for draws in (None, S.Draws(90, N_BOOT, SEED)):
        one_by_one = [S.rate_ci(out, clusters), S.rate_ci(strict, clusters)]
        together = S.rate_cis([out, strict], clusters)
        means = S.mean_cis([diffs, out], clusters, bounds=(-4.0, 4.0), min_boot_clusters=30, draws=draws)
        means_alone = [S.mean_ci(diffs, clusters, bounds=(-4.0, 4.0), min_boot_clusters=30, draws=draws),
                       S.mean_ci(out, clusters, bounds=(-4.0, 4.0), min_boot_clusters=30, draws=draws)]
        assert together == one_by_one
        assert means == means_alone


def test_small_subsets_and_names_draw_for_themselves() -> None:
    out, clusters = _run(np.random.default_rng(4), 200)
    small = clusters < 20  # below SHARED_MIN_CLUSTERS prompts
    names = np.asarray([f"p{c}" for c in clusters], dtype=object)
    draws = S.Draws(200, N_BOOT, SEED)
    inside = S.clustered_bootstrap_ci(out[small], clusters[small], n_boot=N_BOOT, seed=SEED, draws=draws)
    assert inside == S.clustered_bootstrap_ci(out[small], clusters[small], n_boot=N_BOOT, seed=SEED)
    # Names are not run prompt numbers: given draws they are refused, not silently resampled apart.
    with pytest.raises(ValueError, match="integer prompt numbers"):
        S.clustered_bootstrap_ci(out, names, n_boot=N_BOOT, seed=SEED, draws=draws)
    by_name = S.clustered_bootstrap_ci(out, names, n_boot=N_BOOT, seed=SEED)
    assert by_name == S.clustered_bootstrap_ci(out, names, n_boot=N_BOOT, seed=SEED)


def test_subset_intervals_from_shared_draws_keep_their_coverage() -> None:
    """300 simulated runs of 160 prompts; the interval over one quarter (40 prompts) must cover the truth.

    The truth of the subset's win rate (valid rows, ties as halves) is known from the
    simulation. Monte Carlo error of the coverage over 300 runs is about 1.3 points.
    """
    rng = np.random.default_rng(5)
    covered = 0
    reps, k = 300, 160
    draws = S.Draws(k, N_BOOT, SEED)
    for _ in range(reps):
        clusters = np.repeat(np.arange(k), 2)
        p = rng.uniform(0.35, 0.85, size=k)
        out = (rng.random(len(clusters)) < p[clusters]).astype(float)
        subset = clusters % 4 == 0
        truth = 0.6  # mean of uniform(0.35, 0.85)
        ci = S.mean_ci(out[subset], clusters[subset], n_boot=N_BOOT, seed=SEED, draws=draws)
        assert ci.method == "cluster-bootstrap"
        covered += ci.low <= truth <= ci.high
    assert 0.91 <= covered / reps <= 0.99
