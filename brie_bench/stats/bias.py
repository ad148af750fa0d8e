"""Judge biases: label (A/B) bias, position consistency, length bias and the length-controlled win rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from brie_bench.stats.logistic import LOGIT_BOUND, logistic_fit
from brie_bench.stats import special

from brie_bench.stats.draws import _cluster_codes
from brie_bench.stats.intervals import Interval, wilson_ci
from brie_bench.stats.outcomes import _NAN, LOSS, TIE_OUTCOME, WIN, _check_level, _outcomes, _same_length
from brie_bench.stats.significance import _fisher_two_sided, _spearman, sign_test


def label_winners(outcomes: ArrayLike, ft_is_a: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """From outcomes and the stored assignment, the inputs `label_bias` needs.

    Keeps decisive verdicts only (ties and invalid carry no label preference) and
    returns (winning_label_is_a, ft_is_a) for them.
    """
    x = _outcomes(outcomes)
    a = np.asarray(ft_is_a, dtype=bool)
    _same_length("ft_is_a", a, len(x))
    decisive = (x == WIN) | (x == LOSS)
    ft_won = x[decisive] == WIN
    a = a[decisive]
    return ft_won == a, a


@dataclass(frozen=True)
class LabelBias:
    """Does the judge favour label A (always shown first) regardless of content?

    `label_a` is the share of decisive verdicts that went to label A (0.5 if unbiased)
    and `p_label` its two-sided binomial p-value. `ft_win_rate_as_a` / `_as_b` are the
    fine-tune's decisive win rate when it carried each label; `fisher_p` tests whether
    they differ (2x2 Fisher exact test). Label A is also the first position, so this
    is the position bias too.
    """

    label_a: Interval
    p_label: float
    ft_win_rate_as_a: float
    ft_win_rate_as_b: float
    odds_ratio: float
    fisher_p: float
    n: int


def label_bias(winning_label_is_a: ArrayLike, ft_is_a: ArrayLike, level: float = 0.95) -> LabelBias:
    """Label/position bias over decisive verdicts (see `label_winners` to build inputs).

    Because the assignment is randomised, a content-only judge gives label A about
    half of the wins and the fine-tune the same win rate whichever label it carries.
    """
    w = np.asarray(winning_label_is_a, dtype=bool)
    a = np.asarray(ft_is_a, dtype=bool)
    _same_length("ft_is_a", a, len(w))
    n = int(w.size)
    n_a_wins = int(w.sum())
    ft_won = w == a
    table = np.array([[np.sum(ft_won & a), np.sum(~ft_won & a)],
                      [np.sum(ft_won & ~a), np.sum(~ft_won & ~a)]])
    rate_a = float(table[0, 0] / table[0].sum()) if table[0].sum() else _NAN
    rate_b = float(table[1, 0] / table[1].sum()) if table[1].sum() else _NAN
    if n:
        odds, fisher_p = _fisher_two_sided(table)
    else:
        odds, fisher_p = _NAN, _NAN
    return LabelBias(
        label_a=wilson_ci(n_a_wins, n, level),
        p_label=sign_test(n_a_wins, n - n_a_wins),
        ft_win_rate_as_a=rate_a,
        ft_win_rate_as_b=rate_b,
        odds_ratio=odds,
        fisher_p=fisher_p,
        n=n,
    )


@dataclass(frozen=True, eq=False)
class PositionConsistency:
    """How often a verdict survives swapping the order of the two answers.

    `flipped` lists the indices of pairs whose two verdicts differ; `reversals`
    counts the worst case, a win in one order and a loss in the other. `combined`
    is one outcome per pair: the verdict when both orders agree, a tie when they
    don't (MT-Bench's rule), NaN when either order was invalid.
    """

    consistent: float
    n_pairs: int
    flipped: tuple[int, ...]
    reversals: int
    combined: NDArray[np.float64]


def position_consistency(pairs: ArrayLike) -> PositionConsistency:
    """Consistency of verdicts judged in both orders; `pairs` is (n, 2) outcomes.

    Both columns are outcomes from the fine-tune's side (already unblinded), so a
    judge that reads content, not position, gives equal values. Pairs with an
    invalid verdict are excluded from the fraction.
    """
    p = np.asarray(pairs, dtype=float)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pairs must have shape (n, 2), got {p.shape}")
    first, second = _outcomes(p[:, 0], "pairs[:, 0]"), _outcomes(p[:, 1], "pairs[:, 1]")
    valid = ~(np.isnan(first) | np.isnan(second))
    same = valid & (first == second)
    flipped = np.flatnonzero(valid & (first != second))
    reversals = int(np.sum(valid & (np.abs(first - second) == 1.0)))
    n = int(valid.sum())
    combined = np.where(valid, np.where(same, first, TIE_OUTCOME), np.nan)
    return PositionConsistency(float(same.sum() / n) if n else _NAN, n,
                               tuple(int(i) for i in flipped), reversals, combined)


#: Order flips are called systematic (position bias) when the exact two-sided sign test of
#: flips towards the first-shown answer against flips towards the second gives p below this.
#: Measured in tests/report/test_order_flip_warning.py: a fair but noisy judge over 40
#: prompts in both orders trips it in about 3% of runs, a judge whose first-shown answer
#: wins 70% of the time in about 96% (the best a 5% test can do with ~23 flips).
FLIP_ALPHA: float = 0.05
#: Same-order replicates needed before flips are compared with the judge's own replicate noise.
REPLICATE_MIN_PAIRS: int = 5


@dataclass(frozen=True)
class FlipDirection:
    """Which way the verdicts of comparisons judged in both orders moved when the answers swapped.

    A flip *towards first* is one where the candidate did better in the order that
    showed it first (and so the baseline did better when it was first): the position,
    not the content, moved the verdict. A fair but noisy judge flips as often one way
    as the other; a judge with a position bias flips mostly one way. `p_value` is the
    exact two-sided sign test of the two counts; `systematic` is p < `FLIP_ALPHA`.
    """

    n_pairs: int
    n_flipped: int
    toward_first: int
    toward_second: int
    p_value: float
    systematic: bool


def flip_direction(pairs: ArrayLike, candidate_first: ArrayLike, alpha: float = FLIP_ALPHA) -> FlipDirection:
    """Flip counts by direction for `pairs` ((n, 2): the candidate's outcomes in the first and the
    second order) and `candidate_first` (n: the candidate was shown first in the first order)."""
    p = np.asarray(pairs, dtype=float).reshape(-1, 2)
    first = np.asarray(candidate_first, dtype=bool).reshape(-1)
    _same_length("candidate_first", first, len(p))
    valid = ~np.isnan(p).any(axis=1)
    p, first = p[valid], first[valid]
    when_first = np.where(first, p[:, 0], p[:, 1])
    when_second = np.where(first, p[:, 1], p[:, 0])
    toward_first = int(np.count_nonzero(when_first > when_second))
    toward_second = int(np.count_nonzero(when_first < when_second))
    pv = sign_test(toward_first, toward_second)
    return FlipDirection(int(len(p)), toward_first + toward_second, toward_first, toward_second, pv,
                         bool(math.isfinite(pv) and pv < alpha))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def excess_flips(n_flipped: int, n_pairs: int, n_disagree: int, n_replicates: int) -> float:
    """One-sided Fisher exact p that flips between orders are more frequent than same-order replicate disagreement.

    Two judgments of one comparison in the same order disagree only through the judge's
    own noise; if swapping the order added nothing, flips would be as frequent as that.
    The table is flipped / kept (both-orders pairs) against disagree / agree (same-order
    replicate pairs); p is the chance of at least `n_flipped` flips with the margins
    fixed (hypergeometric upper tail). NaN without replicates or pairs.
    """
    if n_pairs <= 0 or n_replicates <= 0:
        return _NAN
    total, hits = n_pairs + n_replicates, n_flipped + n_disagree
    denom = _log_comb(total, n_pairs)
    tail = 0.0
    for x in range(n_flipped, min(hits, n_pairs) + 1):
        if hits - x > n_replicates:
            continue
        tail += math.exp(_log_comb(hits, x) + _log_comb(total - hits, n_pairs - x) - denom)
    return float(min(1.0, tail))


#: A judge carries no information when, on each side of the random assignment (the
#: candidate shown first and shown second, or carrying label A and label B), at least this
#: share of its decisive verdicts went to the same position or label ...
FOLLOW_SHARE: float = 0.9
#: ... over at least this many decisive verdicts in all (9 of 10 one way: sign test p = 0.02) ...
FOLLOW_MIN_DECISIVE: int = 10
#: ... and at least this many on each side, so that the assignment really varied.
FOLLOW_MIN_EACH: int = 3
#: Or when every one of at least this many comparisons judged in both orders flipped.
FLIP_ALL_MIN_PAIRS: int = 10


@dataclass(frozen=True)
class Information:
    """Whether a judge's verdicts carry information about the answers (`judge_information`).

    `follows` is None for an informative judge, else what explains its verdicts:
    "position" (the answer shown first, or second), "label" (label A or B) or "order"
    (every comparison judged in both orders flipped). `share` is the share of decisive
    verdicts (of pairs, for "order") that followed it, over `n`; `side` says which
    position or label ("first", "second", "A", "B"). `reason` is the plain-words line
    the report and the run summary print.
    """

    follows: str | None
    share: float
    n: int
    side: str | None = None
    reason: str | None = None

    @property
    def informative(self) -> bool:
        return self.follows is None


def _follows(cand_won: np.ndarray, cand_side: np.ndarray) -> tuple[bool, float]:
    """(every side of the assignment went the same way, share), for decisive verdicts.

    `cand_side` is the candidate's side (shown first / carried label A). A judge that
    follows that side makes the candidate win when it holds it and lose otherwise;
    one that follows the other side, the reverse. Conditioning on the side keeps a
    candidate that truly wins 95% from looking like a biased judge, and an unbalanced
    assignment (the candidate nearly always first) from hiding or faking one.
    """
    on, off = cand_won[cand_side], cand_won[~cand_side]
    if len(cand_won) < FOLLOW_MIN_DECISIVE or len(on) < FOLLOW_MIN_EACH or len(off) < FOLLOW_MIN_EACH:
        return False, _NAN
    to_side = int(np.sum(on)) + int(np.sum(~off))  # decisive verdicts that went to the candidate's side
    hit_on, hit_off = float(np.mean(on)), float(np.mean(~off))
    if min(hit_on, hit_off) >= FOLLOW_SHARE:
        return True, to_side / len(cand_won)
    if max(hit_on, hit_off) <= 1.0 - FOLLOW_SHARE:
        return True, 1.0 - to_side / len(cand_won)
    return False, _NAN


NO_WIN_RATE = "no win rate can come from it"
ADVICE = "Use a stronger judge, or check the judging template (does it show both answers and ask for a verdict?)."


def judge_information(outcomes: ArrayLike, candidate_first: ArrayLike, candidate_label_a: ArrayLike,
                      pairs: ArrayLike | None = None) -> Information:
    """Is a judge's verdict explained by the position or label of the answers rather than their content?

    One row per judgment: the candidate's `outcomes` (1 win, 0.5 tie, 0 loss, NaN
    invalid), whether the candidate was shown first, whether it carried label A. `pairs`
    are the comparisons judged in both orders ((n, 2) outcomes). The rule, in order:

    * position: on both sides of the assignment (candidate first / second), at least
      `FOLLOW_SHARE` of the decisive verdicts went to the same position, with at least
      `FOLLOW_MIN_DECISIVE` decisive verdicts and `FOLLOW_MIN_EACH` on each side;
    * label: the same with label A / B (never fires on legacy imports, whose candidate
      always carried label B: one side is empty);
    * order: at least `FLIP_ALL_MIN_PAIRS` comparisons judged in both orders, and every
      one flipped, so every combined outcome is a tie.

    Any of them means the verdicts say nothing about which answer is better.
    """
    x = np.asarray(outcomes, dtype=float).reshape(-1)
    first = np.asarray(candidate_first, dtype=bool).reshape(-1)
    label_a = np.asarray(candidate_label_a, dtype=bool).reshape(-1)
    _same_length("candidate_first", first, len(x))
    _same_length("candidate_label_a", label_a, len(x))
    decisive = (x == WIN) | (x == LOSS)
    won = x[decisive] == WIN
    n = int(decisive.sum())
    for what, side_of in (("position", first), ("label", label_a)):
        hit, share = _follows(won, side_of[decisive])
        if not hit:
            continue
        on = won[side_of[decisive]]
        to_side = bool(np.mean(on) >= 0.5)  # the candidate won when it held the side: the side wins
        if what == "position":
            side = "first" if to_side else "second"
            where = f"the answer shown {side} won {share:.0%} of {n} decisive verdicts, whichever answer it was"
        else:
            side = "A" if to_side else "B"
            where = f"label {side} won {share:.0%} of {n} decisive verdicts, whichever answer carried it"
        reason = (f"this judge's verdicts follow the {what} of the answers, not their content ({where}); "
                  f"{NO_WIN_RATE}")
        return Information(what, share, n, side, reason)
    if pairs is not None:
        p = np.asarray(pairs, dtype=float).reshape(-1, 2)
        p = p[~np.isnan(p).any(axis=1)]
        if len(p) >= FLIP_ALL_MIN_PAIRS and bool(np.all(p[:, 0] != p[:, 1])):
            reason = (f"this judge's verdicts follow the order of the answers, not their content (every one of the "
                      f"{len(p)} comparisons judged in both orders changed verdict when the answers swapped places, "
                      f"so every one is a tie); {NO_WIN_RATE}")
            return Information("order", 1.0, int(len(p)), None, reason)
    return Information(None, _NAN, n)


@dataclass(frozen=True)
class LengthBias:
    """Win rate when the fine-tune's answer is longer vs shorter than the baseline's.

    A large gap suggests the judge rewards length. `spearman_rho` / `p_value` relate
    the length difference to the outcome over all valid rows.
    """

    longer: Interval
    shorter: Interval
    n_equal: int
    share_ft_longer: float
    spearman_rho: float
    p_value: float
    #: Win rate when longer minus win rate when shorter (ties as halves); NaN if a side is empty.
    gap: float = _NAN
    #: Fisher's exact test on decisive verdicts: longer/shorter x win/loss.
    fisher_p: float = _NAN
    #: `gap` >= LENGTH_BIAS_GAP and `fisher_p` < LENGTH_BIAS_ALPHA: the report warns.
    flagged: bool = False


#: Length-bias warning: the candidate's win rate when longer must exceed its win rate when
#: shorter by at least this much ...
LENGTH_BIAS_GAP: float = 0.25
#: ... and Fisher's exact test of longer/shorter against win/loss must give p below this.
#: Chosen with benchmarks/coverage.py: with 40 prompts a content-only judge trips the
#: warning in under 5% of runs, a judge that follows length 80% of the time in most.
LENGTH_BIAS_ALPHA: float = 0.05


def length_bias(outcomes: ArrayLike, len_ft: ArrayLike, len_base: ArrayLike, level: float = 0.95) -> LengthBias:
    """Split valid outcomes by which answer is longer; Wilson intervals, ties as halves.

    `flagged` is the report's warning rule: a gap of at least `LENGTH_BIAS_GAP` between
    the win rate when longer and when shorter, significant by Fisher's exact test on
    decisive verdicts (`LENGTH_BIAS_ALPHA`). Both are needed: the test alone flags
    tiny gaps on huge runs, the gap alone flags noise on small ones.
    """
    x = _outcomes(outcomes)
    lf = np.asarray(len_ft, dtype=float)
    lb = np.asarray(len_base, dtype=float)
    _same_length("len_ft", lf, len(x))
    _same_length("len_base", lb, len(x))
    valid = ~(np.isnan(x) | np.isnan(lf) | np.isnan(lb))
    x, d = x[valid], (lf - lb)[valid]
    longer, shorter = x[d > 0], x[d < 0]
    n = int(x.size)
    if n >= 3 and np.ptp(x) > 0 and np.ptp(d) > 0:
        rho, p = _spearman(d, x)
    else:
        rho, p = _NAN, _NAN
    lw = wilson_ci(float(longer.sum()), int(longer.size), level)
    sw = wilson_ci(float(shorter.sum()), int(shorter.size), level)
    gap = lw.estimate - sw.estimate if longer.size and shorter.size else _NAN
    table = np.array([[np.sum(longer == WIN), np.sum(longer == LOSS)],
                      [np.sum(shorter == WIN), np.sum(shorter == LOSS)]])
    fisher_p = _fisher_two_sided(table)[1] if table[0].sum() and table[1].sum() else _NAN
    flagged = bool(math.isfinite(gap) and math.isfinite(fisher_p) and gap >= LENGTH_BIAS_GAP
                   and fisher_p < LENGTH_BIAS_ALPHA)
    return LengthBias(
        longer=lw,
        shorter=sw,
        n_equal=int(np.sum(d == 0)),
        share_ft_longer=float(np.mean(d > 0)) if n else _NAN,
        spearman_rho=rho,
        p_value=p,
        gap=float(gap),
        fisher_p=fisher_p,
        flagged=flagged,
    )


@dataclass(frozen=True)
class LengthControlled:
    """Length-controlled win rate (AlpacaEval 2 style) and the fitted model.

    The model is logit P(win) = intercept + length_coef * tanh(Δlen / length_scale),
    Δlen = len_ft − len_base and length_scale its standard deviation. `win_rate` is
    the predicted P(win) at Δlen = 0, i.e. sigmoid(intercept): what the judge would
    say if both answers were the same length. Its interval uses cluster-robust
    (sandwich) standard errors on the logit scale, clustered by prompt.
    """

    win_rate: Interval
    raw_win_rate: float
    intercept: float
    length_coef: float
    length_scale: float
    #: A coefficient stopped at the optimiser's bound (±30): the data separate, the maximum
    #: likelihood estimate does not exist, and `win_rate.problem` says so.
    at_bound: bool = False


_LOGIT_BOUND = LOGIT_BOUND


def _separated(y: NDArray[Any], x: NDArray[Any], has_length: bool) -> str | None:
    """True when no finite maximum-likelihood fit exists (complete or quasi-complete separation).

    Rows with y > 0 carry some win, rows with y < 1 some loss (a tie carries both). With
    no length term the intercept diverges when every row is a win or every one a loss;
    with one, the slope diverges when a threshold on x puts all wins on one side and all
    losses on the other. The optimiser then stops wherever its tolerance or bound says,
    so the "estimate" is an artefact.
    """
    wins, losses = x[y > 0], x[y < 1]
    if wins.size == 0 or losses.size == 0:
        return "every valid verdict goes the same way"
    if has_length and (wins.min() >= losses.max() or wins.max() <= losses.min()):
        return "the length difference separates wins from losses"
    return None


def _logit_fit(y: NDArray[Any], x: NDArray[Any]) -> tuple[NDArray[Any], bool]:
    """Maximum likelihood for logit P = a + b x with fractional targets y in [0, 1] (`logistic.logistic_fit`).

    A tie (y = 0.5) contributes half a win and half a loss to the likelihood.
    Coefficients are bounded to ±30 so that a run the fine-tune wins outright
    (perfect separation, where the MLE runs to infinity) still returns a number.
    """
    return logistic_fit(y, np.column_stack([np.ones_like(x), x]), bound=_LOGIT_BOUND)


def length_controlled_win_rate(
    outcomes: ArrayLike,
    len_ft: ArrayLike,
    len_base: ArrayLike,
    clusters: ArrayLike | None = None,
    level: float = 0.95,
) -> LengthControlled:
    """Win rate with the length difference regressed out, as in AlpacaEval 2.

    Judges prefer longer answers; a fine-tune that only learnt to write more would
    "win" without being better. Fitting the outcome on a bounded, normalised length
    difference (tanh keeps a few very long answers from dominating) and reading the
    prediction at zero difference removes that effect. Unlike AlpacaEval there is no
    per-instruction difficulty term: both models answer the same prompts here. The fit
    is plain maximum likelihood (a Newton solve); ties count as half-weights. When all
    lengths are equal the length term is dropped and the result is the raw win rate.
    """
    _check_level(level)
    x_out = _outcomes(outcomes)
    lf = np.asarray(len_ft, dtype=float)
    lb = np.asarray(len_base, dtype=float)
    _same_length("len_ft", lf, len(x_out))
    _same_length("len_base", lb, len(x_out))
    codes = _cluster_codes(clusters, len(x_out))
    valid = ~(np.isnan(x_out) | np.isnan(lf) | np.isnan(lb))
    y, delta, codes = x_out[valid], (lf - lb)[valid], codes[valid]
    n = int(y.size)
    method = "cluster-robust logit" if clusters is not None else "robust logit"
    if n == 0:
        return LengthControlled(Interval(_NAN, _NAN, _NAN, level, method, 0, 0), _NAN, _NAN, _NAN, _NAN)
    scale = float(np.std(delta, ddof=1)) if n > 1 else 0.0
    has_length = math.isfinite(scale) and scale > 0.0
    xs = np.tanh(delta / scale) if has_length else np.zeros(n)
    if has_length:
        theta, _ = _logit_fit(y, xs)
    else:
        mean = float(np.clip(y.mean(), special.expit(-_LOGIT_BOUND), special.expit(_LOGIT_BOUND)))
        theta = np.array([special.logit(mean), 0.0])
    design = np.column_stack([np.ones(n), xs])[:, : 2 if has_length else 1]
    params = theta[: design.shape[1]]
    prob = special.expit(design @ params)
    g = np.unique(codes, return_inverse=True)[1].reshape(-1)
    n_groups = int(g.max()) + 1
    low = high = _NAN
    hessian = design.T @ (design * (prob * (1.0 - prob))[:, None])
    k = design.shape[1]
    if n_groups >= 2 and n > k and np.linalg.cond(hessian) < 1e12:
        scores = design * (y - prob)[:, None]
        per_group = np.zeros((n_groups, k))
        np.add.at(per_group, g, scores)
        meat = per_group.T @ per_group * (n_groups / (n_groups - 1.0)) * ((n - 1.0) / (n - k))
        bread = np.linalg.inv(hessian)
        se = math.sqrt(max(float((bread @ meat @ bread)[0, 0]), 0.0))
        z = float(special.ndtri(0.5 + level / 2.0))
        low, high = float(special.expit(theta[0] - z * se)), float(special.expit(theta[0] + z * se))
    why = _separated(y, xs, has_length)
    if why is None and np.any(np.abs(params) >= _LOGIT_BOUND - 1e-3):
        why = "a coefficient reached the optimiser's bound"
    at_bound = why is not None
    problem = None
    if why is not None:
        problem = (f"cannot be estimated: {why}, so the logistic fit has no finite maximum and its "
                   "estimate and interval are artefacts of where the optimiser stopped")
    return LengthControlled(
        win_rate=Interval(float(special.expit(theta[0])), low, high, level, method, n, n_groups, problem),
        raw_win_rate=float(y.mean()),
        intercept=float(theta[0]),
        length_coef=float(theta[1]) if has_length else _NAN,
        length_scale=scale if has_length else _NAN,
        at_bound=at_bound,
    )
