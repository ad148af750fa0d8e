"""Human-calibrated win rate: prediction-powered inference (PPI++) from a few human verdicts.

"Your judges are LLMs" has an honest answer when people judged a random subset of the
comparisons: estimate the *human* win rate, using the LLM verdicts on every prompt to
sharpen it (Angelopoulos et al., *Prediction-powered inference*, Science 2023; PPI++,
arXiv 2311.01453). With Y the human outcome and Ŷ the judge's,

    θ̂ = λ · mean(Ŷ over all N prompts) + mean(Y − λŶ over the n human-labelled prompts).

The second term corrects the judge's bias on the prompts people saw, so θ̂ estimates the
human rate whatever the judge does; the more the judge agrees with people, the more of
the first term's precision it borrows. λ is the PPI++ power-tuning rule (the variance-
minimising weight, `ppi_py`'s `_calc_lam_glm` for a mean) clipped to [0, 1]: λ = 0 is the
human-only mean, λ = 1 plain PPI. Everything is aggregated to per-prompt means first, so
prompts, not comparisons, are the independent units: the estimand is the human win rate
over prompts (each prompt weighs the same).

Its variance is λ²·Var(Ŷ)/N + Var(Y − λŶ)/n (`ppi_mean_ci`, checked against `ppi_py` in
tests), with sample variances and Student's t on n − 1 degrees of freedom: of the normal
interval (`ppi_py`'s), this one and a prompt-clustered bootstrap of the same estimator, it
is the one that kept 93% coverage with 20 labelled prompts (benchmarks/ppi_coverage.py,
docs/statistics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brie_bench.stats import special
from brie_bench.stats.draws import _cluster_codes
from brie_bench.stats.intervals import Interval
from brie_bench.stats.outcomes import _NAN, _check_level, _outcomes, _same_length

#: Fewer human-labelled prompts than this give no interval: the variance of Y − λŶ is a guess.
PPI_MIN_LABELLED = 5


def ppi_lambda(y: ArrayLike, yhat: ArrayLike, yhat_all: ArrayLike) -> float:
    """The PPI++ weight for a mean, clipped to [0, 1]: Cov(Y, Ŷ) / ((1 + n/N) · Var(Ŷ)).

    As `ppi_py`: the covariance over the n labelled points (1/n, around a point estimate
    with λ = 1, which cancels for a mean), Var(Ŷ) over the labelled and all points pooled
    (ddof 1). A judge with no variation gives λ = 0 (nothing to borrow).
    """
    yv, hv, av = (np.asarray(a, dtype=float).reshape(-1) for a in (y, yhat, yhat_all))
    n, big_n = len(yv), len(av)
    if n < 2 or big_n < 1:
        return 0.0
    cov = float(np.mean((yv - yv.mean()) * (hv - hv.mean())))
    var = float(np.var(np.concatenate([hv, av]), ddof=1))
    if not var > 0.0:
        return 0.0
    return float(np.clip(cov / ((1.0 + n / big_n) * var), 0.0, 1.0))


def ppi_mean_ci(y: ArrayLike, yhat: ArrayLike, yhat_all: ArrayLike, level: float = 0.95,
                lam: float | None = None, small_sample: bool = False) -> tuple[float, float, float, float]:
    """(estimate, low, high, λ): the PPI++ mean and its interval, on plain arrays.

    `y`, `yhat`: the human and the judge value of the n labelled units; `yhat_all`: the
    judge value of all N units. The standard error is sqrt(λ²·Var(Ŷ_all)/N +
    Var(Y − λŶ)/n). By default exactly `ppi_py.ppi_mean_ci`: population variances and a
    normal quantile. `small_sample` uses sample variances (ddof 1) and Student's t with
    n − 1 degrees of freedom: with 20 labelled prompts the normal interval covered 90.7%,
    this one 93.2% (benchmarks/ppi_coverage.py), so the report uses it.
    """
    _check_level(level)
    yv, hv, av = (np.asarray(a, dtype=float).reshape(-1) for a in (y, yhat, yhat_all))
    _same_length("yhat", hv, len(yv))
    n, big_n = len(yv), len(av)
    if n == 0 or big_n == 0:
        return _NAN, _NAN, _NAN, _NAN
    lam = ppi_lambda(yv, hv, av) if lam is None else float(lam)
    est = lam * float(av.mean()) + float(np.mean(yv - lam * hv))
    if small_sample and (n < 2 or big_n < 2):
        return est, _NAN, _NAN, lam
    ddof = 1 if small_sample else 0
    se = math.sqrt(lam * lam * float(np.var(av, ddof=ddof)) / big_n + float(np.var(yv - lam * hv, ddof=ddof)) / n)
    q = float(special.stdtrit(n - 1, 0.5 + level / 2.0)) if small_sample else float(special.ndtri(0.5 + level / 2.0))
    return est, est - q * se, est + q * se, lam


@dataclass(frozen=True)
class HumanCalibrated:
    """The human win rate estimated with PPI++, beside the human-only estimate it sharpens.

    `win_rate` is θ̂ with its interval (clipped to [0, 1]); `human_only` the mean of the
    human verdicts over the same labelled prompts with the same kind of interval (λ = 0). `lam` is the
    PPI++ weight; `n_human` counts the human verdicts that went in (over `n_labelled`
    prompts), `n_prompts` the prompts the judge covered.
    """

    win_rate: Interval
    human_only: Interval
    lam: float
    n_human: int
    n_labelled: int
    n_prompts: int
    #: λ²·Var(Ŷ)/N and Var(Y − λŶ) (per labelled prompt): the two parts of the PPI variance.
    judge_variance: float = _NAN
    residual_variance: float = _NAN

    @property
    def narrower_by(self) -> float:
        """1 − (PPI width / human-only width): the share of the human-only interval PPI saves."""
        a, b = self.win_rate, self.human_only
        if not (a.reliable and b.reliable) or b.high <= b.low:
            return _NAN
        return 1.0 - (a.high - a.low) / (b.high - b.low)


def human_calibrated_win_rate(human: ArrayLike, judge: ArrayLike, clusters: ArrayLike | None = None,
                              level: float = 0.95) -> HumanCalibrated:
    """PPI++ human win rate from per-comparison outcomes (NaN where a verdict is missing or invalid).

    `human` and `judge` are aligned by comparison; `clusters` names each comparison's prompt.
    A human value may be the mean of several people's outcomes on the comparison.
    Per prompt: Ŷ over all of the judge's valid verdicts (the N prompts of the first term);
    on prompts where people judged, Y and Ŷ over the comparisons that have both a human
    and a judge verdict (so Y − λŶ is paired). The labelled prompts must be a random subset
    (`brie-bench judge --web --sample N` draws one) for θ̂ to be unbiased.
    """
    _check_level(level)
    h = np.asarray(human, dtype=float).reshape(-1)
    if np.any((h < 0.0) | (h > 1.0)):  # NaN compares false: missing stays allowed
        raise ValueError("human values must lie in [0, 1] (a mean of outcomes) or be NaN")
    j = _outcomes(judge, "judge")
    _same_length("judge", j, len(h))
    codes = _cluster_codes(clusters, len(h))
    k = int(codes.max()) + 1 if len(codes) else 0
    ok_j, both = ~np.isnan(j), ~np.isnan(j) & ~np.isnan(h)

    def per_prompt(values: NDArray[np.float64], keep: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        sizes = np.bincount(codes[keep], minlength=k).astype(float)
        sums = np.bincount(codes[keep], weights=values[keep], minlength=k)
        has = sizes > 0
        return sums[has] / sizes[has], has

    yhat_all, _ = per_prompt(j, ok_j)
    y, has_l = per_prompt(h, both)
    yhat_l, _ = per_prompt(j, both)
    n, big_n, n_human = int(has_l.sum()), int(len(yhat_all)), int(both.sum())
    method = "ppi++"
    if n == 0:
        nan = Interval(_NAN, _NAN, _NAN, level, method, 0, 0)
        return HumanCalibrated(nan, Interval(_NAN, _NAN, _NAN, level, "t", 0, 0), _NAN, n_human, 0, big_n)
    est, low, high, lam = ppi_mean_ci(y, yhat_l, yhat_all, level, small_sample=True)
    h_est = float(y.mean())
    # The human-only interval is the same construction with λ = 0 (t, sample variance): like for like.
    _, h_low, h_high, _ = ppi_mean_ci(y, yhat_l, yhat_all, level, lam=0.0, small_sample=True)
    if n < PPI_MIN_LABELLED:
        low = high = h_low = h_high = _NAN
    else:
        low, high = max(0.0, low), min(1.0, high)
        h_low, h_high = max(0.0, h_low), min(1.0, h_high)
    return HumanCalibrated(
        win_rate=Interval(float(min(1.0, max(0.0, est))), low, high, level, method, n_human, big_n),
        human_only=Interval(h_est, h_low, h_high, level, "t", n_human, n),
        lam=lam, n_human=n_human, n_labelled=n, n_prompts=big_n,
        judge_variance=lam * lam * float(np.var(yhat_all, ddof=1)) / big_n if big_n > 1 else _NAN,
        residual_variance=float(np.var(y - lam * yhat_l, ddof=1)) if n > 1 else _NAN,
    )


def humans_for_width(result: HumanCalibrated, width: float) -> int | None:
    """Labelled prompts needed for a PPI interval of total `width`, at this run's variances.

    The width is 2t·sqrt(A + B/n) (t at the current n − 1 degrees of freedom) with
    A = λ²Var(Ŷ)/N (fixed by the judged prompts) and B = Var(Y − λŶ) (estimated from the
    labelled ones); solving for n gives the answer.
    None when no n reaches it (A alone is too wide) or nothing can be estimated.
    """
    ci = result.win_rate
    if not ci.reliable or result.n_labelled < PPI_MIN_LABELLED or width <= 0:
        return None
    q = float(special.stdtrit(result.n_labelled - 1, 0.5 + ci.level / 2.0))
    room = (width / (2.0 * q)) ** 2 - result.judge_variance
    if room <= 0.0:
        return None
    return max(int(math.ceil(result.residual_variance / room)), PPI_MIN_LABELLED)
