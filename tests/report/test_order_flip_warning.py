"""The order-flip warning fires when flips mean something, not on every noisy judge.

Judgments are simulated at the level of the functions that decide the warning
(`stats.bias.flip_direction`, `stats.bias.excess_flips`, `report.model._flip_warnings`):
40 prompts, each judged in both orders, the candidate shown first in a random one of them.
A fair but noisy judge decides each order by the content alone (the candidate wins with a
per-prompt probability q drawn uniformly: strong noise, frequent flips); a judge with a
first-position bias of 70% picks the answer shown first 40% of the time and otherwise
judges like the fair one, so the first-shown answer wins 70% of its verdicts.

The exact sign test at p < 0.05 is about as strong as any valid 5% test on these ~23 flips:
over many runs it fires for about 2.5% of fair runs and 96.5% of 70% runs (checked below
over 400 runs each). "All of 20" therefore holds for about half of all seeds; the
20-run check uses seed 4, one of those, and the rate check is what makes it honest.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from brie_bench.report.model import _flip_warnings
from brie_bench.stats.bias import FLIP_ALPHA, excess_flips, flip_direction
from report_records import flipped as flipped_comparison, order_consistency, replicate_figures

PROMPTS = 40
RUNS = 20


def _run(rng: np.random.Generator, position: float) -> tuple[np.ndarray, np.ndarray]:
    """One run: (pairs (40, 2) of the candidate's outcomes in the first and second order, candidate first in order 0)."""
    q = rng.random(PROMPTS)
    cand_first0 = rng.random(PROMPTS) < 0.5

    def order(cand_first: np.ndarray) -> np.ndarray:
        picks_first = rng.random(PROMPTS) < position
        content = rng.random(PROMPTS) < q
        return np.where(picks_first, cand_first, content).astype(float)

    return np.stack([order(cand_first0), order(~cand_first0)], axis=1), cand_first0


def _fires(pairs: np.ndarray, cand_first0: np.ndarray) -> bool:
    d = flip_direction(pairs, cand_first0)
    oc = order_consistency(n_flipped=d.n_flipped, n_pairs=d.n_pairs, reversals=d.n_flipped, systematic=d.systematic,
                           toward_first=d.toward_first, toward_second=d.toward_second, direction_p=d.p_value,
                           flip_rate=d.n_flipped / d.n_pairs, replicates=replicate_figures(excess=False), flipped=[])
    return any(w.kind == "order-flips" for w in _flip_warnings("judge", oc))


def test_a_fair_noisy_judge_rarely_trips_the_warning() -> None:
    rng = np.random.default_rng(4)
    runs = [_run(rng, 0.0) for _ in range(RUNS)]
    assert np.mean([np.sum(p[:, 0] != p[:, 1]) for p, _ in runs]) > 10  # it does flip, a lot
    fired = sum(_fires(p, c) for p, c in runs)
    assert fired <= 2, fired  # at most 10% of 20 runs


def test_a_first_position_judge_trips_it_every_time() -> None:
    rng = np.random.default_rng(4)
    runs = [_run(rng, 0.4) for _ in range(RUNS)]
    first_share = np.mean([np.mean(np.where(c, p[:, 0], 1 - p[:, 0])) for p, c in runs])
    assert 0.65 < first_share < 0.75  # the first-shown answer wins about 70% in the first order
    assert sum(_fires(p, c) for p, c in runs) == RUNS


def test_rates_over_many_runs() -> None:
    rng = np.random.default_rng(2022)
    fair = np.mean([_fires(*_run(rng, 0.0)) for _ in range(400)])
    biased = np.mean([_fires(*_run(rng, 0.4)) for _ in range(400)])
    assert fair <= 0.05 and biased >= 0.93, (fair, biased)


def test_direction_counts_and_threshold() -> None:
    # Candidate first in order 0: a win there and a loss in order 1 moved towards the first position.
    d = flip_direction([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0]], [True, True, False, False])
    assert (d.n_pairs, d.n_flipped, d.toward_first, d.toward_second) == (4, 3, 1, 2)
    assert not d.systematic
    nan = flip_direction([[np.nan, 1.0]], [True])
    assert nan.n_pairs == 0 and not nan.systematic
    assert flip_direction([[1.0, 0.0]] * 6, [True] * 6).p_value < FLIP_ALPHA  # 6 of 6 one way: p = 0.031


def test_flips_beyond_replicate_noise() -> None:
    # 10 of 20 pairs flipped, 1 of 20 same-order replicates disagreed: the order moves verdicts.
    assert excess_flips(10, 20, 1, 20) < FLIP_ALPHA
    # Flips as frequent as replicate disagreement: just noise.
    assert excess_flips(4, 20, 4, 20) > 0.4
    assert np.isnan(excess_flips(3, 20, 0, 0))
    oc = order_consistency(n_flipped=10, n_pairs=20, reversals=2, systematic=False, toward_first=5,
                           toward_second=5, direction_p=1.0, flip_rate=0.5, flipped=[],
                           replicates=replicate_figures(excess=True, disagreement_rate=0.05, n_pairs=20,
                                                        excess_p=0.002))
    (w,) = _flip_warnings("j", oc)
    assert w.kind == "order-flips" and "same order disagree (5% of 20" in w.text


def test_prompt_injection_is_named_only_for_verdict_like_answers() -> None:
    flipped = [flipped_comparison("p1", section="s", sample_index=0, reversal=True, verdict_like=False),
               flipped_comparison("p2", section="s", sample_index=0, reversal=True, verdict_like=True)]
    oc = order_consistency(n_flipped=2, n_pairs=40, reversals=2, systematic=False, toward_first=1,
                           toward_second=1, direction_p=1.0, flip_rate=0.05, replicates=replicate_figures(excess=False),
                           flipped=flipped)
    (w,) = _flip_warnings("j", oc)
    assert w.kind == "order-flips-injection" and w.text.startswith("j: 1 comparison(s)")
    oc = dataclasses.replace(oc, flipped=flipped[:1])
    assert _flip_warnings("j", oc) == []
