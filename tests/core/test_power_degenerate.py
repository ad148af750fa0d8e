"""Power never over-promises. Degenerate outcomes give no MDE, with a reason; flip ties shrink."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brie_bench import power


@pytest.mark.parametrize(("outcomes", "words"), [
    (np.full(24, 0.5), "every valid comparison is a tie"),
    (np.ones(24), "every valid comparison went the same way"),
    (np.zeros(24), "every valid comparison went the same way"),
    (np.full(24, np.nan), "no valid verdict"),
    (np.r_[np.full(59, 0.5), 1.0], "almost every valid comparison is a tie"),
])
def test_degenerate_outcomes_give_no_mde_and_say_why(outcomes: np.ndarray, words: str) -> None:
    clusters = np.arange(len(outcomes)) % 12
    entry = power.report_entry(outcomes, clusters)
    assert entry["mde"] is None and entry["detectable_above"] is None and entry["prompts_needed"] is None
    assert words in entry["mde_reason"] and entry["statement"].startswith("No power figure: ")
    assert entry["recommended_samples"] is None
    assert "±0" not in entry["statement"]


def test_a_spread_of_outcomes_still_gives_an_mde() -> None:
    rng = np.random.default_rng(1)
    outcomes = rng.choice([0.0, 0.5, 1.0], size=60)
    entry = power.report_entry(outcomes, np.arange(60) % 20)
    assert entry["mde_reason"] is None and 0 < entry["mde"] < 0.5
    assert power.degenerate_reason(power.default_components((1,) * 20)) is None  # the defaults always plan


def test_no_information_overrides_any_figure() -> None:
    outcomes = np.tile([0.0, 1.0, 0.5], 20)
    entry = power.report_entry(outcomes, np.arange(60) % 20, no_information="this judge follows the position")
    assert entry["mde"] is None and entry["mde_reason"] == "this judge follows the position"


def test_flip_ties_make_the_mde_larger_and_vanish_without_pairs() -> None:
    """Ties from disagreeing orders turn into wins as the effect grows: the variance falls more slowly."""
    rng = np.random.default_rng(2)
    n = 300
    a = rng.choice([0.0, 1.0], size=n)
    b = np.where(rng.random(n) < 0.4, 1.0 - a, a)  # 40% of pairs flip
    combined = np.where(a == b, a, 0.5)
    clusters = np.arange(n) % 100
    with_pairs = power.decompose(combined, clusters, np.stack([a, b], axis=1))
    without = power.decompose(combined, clusters)
    assert with_pairs.flip_ties == pytest.approx(np.mean(a != b))
    assert without.flip_ties == 0.0
    assert power.mde(with_pairs) > power.mde(without)
    # With no flip ties the generalised formula is the earlier one: D_g = D.
    d, dg = power._design_factors((3,) * 10, without.at_null())
    assert dg == pytest.approx(d)
    assert math.isfinite(power.prompts_needed(0.1, with_pairs))
    assert power.prompts_needed(0.1, with_pairs) >= power.prompts_needed(0.1, without)


def test_two_runs_that_agree_prompt_by_prompt_get_no_detectable_difference() -> None:
    """The paired design's MDD from runs whose per-prompt difference never varies would read "±0 points"."""
    from brie_bench import power as P

    same = {f"p{i}": (float(i % 2), 1) for i in range(12)}
    mdd, se, k = P.paired_mdd(same, dict(same))
    assert math.isnan(mdd) and se == 0.0 and k == 12
    reason = P.paired_degenerate_reason(se, k)
    assert reason and "barely differ prompt by prompt" in reason
    assert P.difference_sentence(mdd, 0.0, None, reason=reason).startswith("No detectable-difference figure")
    varied = {f"p{i}": (float(i % 3 == 0), 1) for i in range(12)}
    mdd, se, k = P.paired_mdd(same, varied)
    assert math.isfinite(mdd) and mdd > 0 and P.paired_degenerate_reason(se, k) is None
