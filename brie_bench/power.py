"""Power and planning for blind A/B evaluations: what effect a layout can detect, and what it would take.

A "no significant difference" only means something next to the smallest difference the
run could have seen. This module answers that question, and the planning one before any
money is spent, following Evan Miller, "Adding Error Bars to Evals" (arXiv 2411.00640):
prompts are a sample from a super-population, judgments cluster by prompt, and the
variance of a win rate splits into a part *between* prompts (some prompts suit the
fine-tune, some do not) and a part *within* a prompt (another sample, the other order,
the same prompt replicated in another section). With K comparisons per prompt and n
prompts (Miller's resampling formula)

    Var(win rate) = σ_b² / n + σ_w² / (n K),

and for unequal cluster sizes m_p (M = Σ m_p comparisons) the same model gives
``(σ_b² Σ m_p² + σ_w² M) / M²``. Everything below is that one formula, turned around.

Conventions (as in `brie_bench.stats`): outcomes are 1 win, 0.5 tie, 0 loss, NaN
invalid; a cluster is a prompt. Effects are distances of the true win rate from 0.5
(0.10 = a true win rate of 60% or 40%). Tests are two-sided at ``alpha`` with the
given power. Where the report's interval is a cluster-robust *t* interval (few
prompts), critical values come from Student's t with (prompts − 1) degrees of freedom,
otherwise from the normal (`critical_values`), so the minimum detectable effect
(MDE) describes the test the report actually runs (benchmarks/power_simulation.py
checks that a planted effect equal to the MDE is found 80% of the time).

Only numpy and `brie_bench.stats.special` (scipy.special's functions without importing
scipy) are needed: `brie-bench run --dry-run --power` should start fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from brie_bench.stats import special

__all__ = [
    "ALPHA", "POWER", "DEFAULT_EFFECT", "DEFAULT_TOTAL_VARIANCE", "DEFAULT_BETWEEN_SHARE",
    "MIN_VARIANCE", "VarianceComponents", "critical_value", "critical_values", "decompose", "default_components",
    "degenerate_reason", "design_factor",
    "variance_of_mean", "mde", "mde_for_se", "prompts_needed", "recommended_samples", "paired_mdd",
    "paired_degenerate_reason",
    "detectable_sentence", "difference_sentence", "samples_sentence", "report_entry",
]

ALPHA: float = 0.05
POWER: float = 0.80
#: The effect `--dry-run --power` plans for unless told otherwise: a true win rate of 60%.
DEFAULT_EFFECT: float = 0.10
#: With no pilot: the largest variance an outcome in [0, 1] can have at a 50% win rate
#: (no ties, every verdict decisive). Ties only lower it, so this is conservative.
DEFAULT_TOTAL_VARIANCE: float = 0.25
#: With no pilot: half of that variance between prompts. Measured LLM evals usually show
#: at least as much noise within a question as between questions, so half is on the
#: cautious side; it only matters where a prompt has more than one comparison.
DEFAULT_BETWEEN_SHARE: float = 0.5
#: Cap on a recommended number of samples per prompt: beyond it the answer is "more prompts".
MAX_SAMPLES: int = 10
#: Below this outcome variance (taken at a 50% win rate) a run measured no usable spread: it is what
#: 96% ties at a 50% win rate give ((1 − 0.96)/4). A minimum detectable effect computed from it
#: would promise a precision the judge never showed, so none is given (`degenerate_reason`).
MIN_VARIANCE: float = 0.01

_NAN = float("nan")


def _check(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be between 0 and 1, got {power}")


def critical_values(alpha: float = ALPHA, power: float = POWER, n_prompts: int | None = None
                    ) -> tuple[float, float]:
    """(c_α, c_β): Student-t quantiles with n_prompts − 1 df, or z(1 − α/2) and z(power) when the count is unknown.

    The report's win-rate interval (`stats.effective_n_ci`) charges (t(K − 1) / z)² for
    estimating the clustered variance from K prompts at every prompt count, so the
    planner uses the same t quantiles; they approach z as prompts grow.
    """
    _check(alpha, power)
    if n_prompts is not None and n_prompts < 2:
        return _NAN, _NAN
    if n_prompts is not None:
        df = float(n_prompts - 1)
        return float(special.stdtrit(df, 1.0 - alpha / 2.0)), float(special.stdtrit(df, power))
    return float(special.ndtri(1.0 - alpha / 2.0)), float(special.ndtri(power))


def critical_value(alpha: float = ALPHA, power: float = POWER, n_prompts: int | None = None) -> float:
    """c_α + c_β: an effect of this many standard errors is detected with the given power
    by a two-sided test at level α (the opposite tail's tiny contribution ignored)."""
    ca, cb = critical_values(alpha, power, n_prompts)
    return ca + cb


# --------------------------------------------------------------------------- variance components


@dataclass(frozen=True)
class VarianceComponents:
    """A judge's outcome variance split into between-prompt and within-prompt parts.

    `total` is the variance of one comparison's outcome (population form);
    `between` = σ_b², the variance of the prompts' true mean outcomes; `within` =
    σ_w², the variance of comparisons around their prompt's mean (other samples,
    replicates of the prompt, the order drawn). `order` is the part of a single
    judgment's variance due to the order alone, from comparisons judged both ways
    (NaN without any); it is shown for reading, not used in the formulas, because
    the report counts a comparison judged both ways once. `identified` is false when
    no prompt had two comparisons, so the split is an assumption
    (`DEFAULT_BETWEEN_SHARE`), not a measurement. `sizes` are the comparisons per prompt.

    `flip_ties` is the share of valid comparisons that are ties only because their two
    orders disagreed (MT-Bench's rule), and `n_distinct` the number of distinct valid
    outcomes. Flip ties matter at the alternative: the further the true win rate is from
    50%, the more often both orders agree, so those ties turn into wins and the outcome
    variance falls more slowly than a fixed tie share predicts (`mde`).
    """

    mean: float
    total: float
    between: float
    within: float
    order: float
    sizes: tuple[int, ...]
    identified: bool
    n_order_pairs: int = 0
    flip_ties: float = 0.0
    n_distinct: int = 0

    @property
    def n_prompts(self) -> int:
        return len(self.sizes)

    @property
    def n_comparisons(self) -> int:
        return int(sum(self.sizes))

    @property
    def between_share(self) -> float:
        """σ_b² / (σ_b² + σ_w²): the intra-prompt correlation (ICC). NaN when both are 0."""
        s = self.between + self.within
        return self.between / s if s > 0 else _NAN

    def at_null(self) -> VarianceComponents:
        """The same split moved to a 50% win rate, keeping the tie share and the ICC.

        For outcomes in {0, ½, 1} with tie share t, Var = μ(1 − μ) − t/4. Ties of the judge's
        own stay put, but flip ties (orders disagreeing) scale with 4μ(1 − μ), the chance
        of a close call, so with f the flip-tie share at 50%, Var(μ) = V₀ − (1 − f)(μ − ½)²
        (checked against simulated judges in benchmarks/power_simulation.py). Moving the
        mean to ½ adds that back. A run the fine-tune won outright has almost no variance,
        yet the question "what effect could it detect?" is asked about a true rate near
        50%, where the variance is larger; without this a lopsided run would claim a tiny MDE.
        """
        if not math.isfinite(self.mean):
            return self
        close = 4.0 * self.mean * (1.0 - self.mean)
        flip0 = min(1.0, self.flip_ties / close) if close > 0 and self.flip_ties > 0 else 0.0
        null_total = self.total + (1.0 - flip0) * (self.mean - 0.5) ** 2
        share = self.between_share
        if not math.isfinite(share):
            share = DEFAULT_BETWEEN_SHARE
        between = null_total * share
        return replace(self, mean=0.5, total=null_total, between=between, within=null_total - between,
                       flip_ties=flip0)


def default_components(sizes: Sequence[int], total: float = DEFAULT_TOTAL_VARIANCE,
                       between_share: float = DEFAULT_BETWEEN_SHARE) -> VarianceComponents:
    """Conservative planning values for a layout with `sizes` comparisons per prompt (no pilot)."""
    if not 0.0 <= between_share <= 1.0:
        raise ValueError(f"between_share must be in [0, 1], got {between_share}")
    if total < 0:
        raise ValueError(f"total variance must be non-negative, got {total}")
    return VarianceComponents(0.5, total, total * between_share, total * (1.0 - between_share), _NAN,
                              tuple(int(s) for s in sizes), False)


def _cluster_index(clusters: ArrayLike | None, n: int) -> np.ndarray:
    if clusters is None:
        return np.arange(n)
    c = np.asarray(clusters, dtype=object).reshape(-1)
    if len(c) != n:
        raise ValueError(f"clusters has {len(c)} rows, expected {n}")
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(v, len(index)) for v in c.tolist()), dtype=np.intp, count=n)


def decompose(outcomes: ArrayLike, clusters: ArrayLike | None,
              order_pairs: ArrayLike | None = None) -> VarianceComponents:
    """Between- and within-prompt variance of comparison outcomes (one-way random-effects ANOVA).

    Method of moments for unequal cluster sizes (Searle's ANOVA estimator):
    σ_w² = pooled within-prompt variance (MSW), σ_b² = max(0, (MSB − MSW) / n₀) with
    n₀ = (M − Σm_p²/M)/(n − 1). When no prompt has two comparisons σ_w² cannot be
    told apart from σ_b²: the total is measured and split by `DEFAULT_BETWEEN_SHARE`
    (`identified` false). `order_pairs` (shape (k, 2), the two orders' outcomes of
    comparisons judged both ways) gives the order component Σ(a − b)²/(2k) and the
    flip-tie share (pairs whose orders disagree, over the valid comparisons).
    NaN outcomes (invalid) are dropped first.
    """
    y = np.asarray(outcomes, dtype=float).reshape(-1)
    g = _cluster_index(clusters, len(y))
    keep = ~np.isnan(y)
    y, g = y[keep], g[keep]
    order, n_pairs, n_flips = _NAN, 0, 0
    if order_pairs is not None:
        p = np.asarray(order_pairs, dtype=float).reshape(-1, 2)
        p = p[~np.isnan(p).any(axis=1)]
        n_pairs = int(len(p))
        if n_pairs:
            order = float(np.sum((p[:, 0] - p[:, 1]) ** 2) / (2.0 * n_pairs))
            n_flips = int(np.count_nonzero(p[:, 0] != p[:, 1]))
    if y.size == 0:
        return VarianceComponents(_NAN, _NAN, _NAN, _NAN, order, (), False, n_pairs)
    flips = min(1.0, n_flips / y.size)
    distinct = int(np.unique(y).size)
    g = np.unique(g, return_inverse=True)[1].reshape(-1)
    k = int(g.max()) + 1
    sizes = np.bincount(g, minlength=k).astype(float)
    sums = np.bincount(g, weights=y, minlength=k)
    big_m = float(sizes.sum())
    mean = float(y.mean())
    total = float(np.mean((y - mean) ** 2))
    cmeans = sums / sizes
    ssw = float(np.sum((y - cmeans[g]) ** 2))
    df_w = big_m - k
    sizes_t = tuple(int(s) for s in sizes)
    if df_w <= 0 or k < 2:
        share = DEFAULT_BETWEEN_SHARE
        return VarianceComponents(mean, total, total * share, total * (1.0 - share), order, sizes_t, False, n_pairs,
                                  flips, distinct)
    msw = ssw / df_w
    ssb = float(np.sum(sizes * (cmeans - mean) ** 2))
    msb = ssb / (k - 1)
    n0 = (big_m - float(np.sum(sizes ** 2)) / big_m) / (k - 1)
    between = max(0.0, (msb - msw) / n0)
    return VarianceComponents(mean, total, between, msw, order, sizes_t, True, n_pairs, flips, distinct)


def degenerate_reason(components: VarianceComponents) -> str | None:
    """Why these components give no minimum detectable effect, in plain words; None when they do.

    A power figure is a promise about how precisely this judge measures; it needs a
    spread of outcomes to rest on. No valid verdict, a single distinct outcome (all
    ties, all one way) or a variance below `MIN_VARIANCE` (nearly all ties) leaves the
    judge's noise unmeasured, and the formula would read that as no noise at all:
    "±0 points". Default components (no pilot) are never degenerate.
    """
    if components.n_comparisons == 0 or not math.isfinite(components.total):
        return "no valid verdict to measure the variance from"
    if components.n_distinct == 1:  # 0 for default components, which carry no data
        what = "is a tie" if components.mean == 0.5 else "went the same way"
        return f"every valid comparison {what}, so the spread of outcomes this judge would show is unknown"
    if components.at_null().total < MIN_VARIANCE:
        return (f"almost every valid comparison is a tie (outcome variance {components.total:.3f}), so "
                "the spread of outcomes this judge would show is unknown")
    return None


# --------------------------------------------------------------------------- detectable effects


def design_factor(sizes: Sequence[int], between_share: float) -> float:
    """Var(win rate) per unit of outcome variance: ρ Σm²/M² + (1 − ρ)/M.

    With equal sizes K this is (1 + (K − 1)ρ)/(nK): the familiar design effect over nK.
    """
    m = np.asarray(sizes, dtype=float)
    big_m = float(m.sum())
    if big_m <= 0:
        return _NAN
    return between_share * float(np.sum(m * m)) / big_m ** 2 + (1.0 - between_share) / big_m


def variance_of_mean(between: float, within: float, sizes: Sequence[int]) -> float:
    """Var(win rate) = (σ_b² Σm_p² + σ_w² M) / M² for a layout with `sizes` comparisons per prompt."""
    m = np.asarray(sizes, dtype=float)
    big_m = float(m.sum())
    if big_m <= 0:
        return _NAN
    return (between * float(np.sum(m * m)) + within * big_m) / big_m ** 2


def mde_for_se(se: float, alpha: float = ALPHA, power: float = POWER, n_prompts: int | None = None) -> float:
    """Smallest effect detected with `power` when the estimate's standard error is `se`."""
    c = critical_value(alpha, power, n_prompts)
    return c * se if math.isfinite(se) and se >= 0 else _NAN


def mde(components: VarianceComponents, alpha: float = ALPHA, power: float = POWER,
        sizes: Sequence[int] | None = None) -> float:
    """Minimum detectable effect on the win rate (distance from 0.5) for a layout.

    `components` are taken at the null (`at_null`: variance V₀, between-prompt share ρ,
    flip-tie share f); D is the design factor of `sizes` (default: the layout the
    components were measured on). Away from 50% the variance falls: at a true win rate
    ½ + δ the total is V₀ − g δ² with g = 1 − f (ties from disagreeing orders turn into
    wins as the effect grows, see `VarianceComponents.at_null`), the between-prompt part
    falls by ρ δ² and the within-prompt part by the rest, so

        Var(win rate at δ) = D V₀ − D_g δ²,   D_g = ρ Σm²/M² + (g − ρ)/M  (= D when f = 0).

    The report's test estimates its standard error from the data, so it rejects once the
    estimate passes the boundary e with e² = c_α² (D V₀ − D_g e²), and the effect detected
    with the given power solves δ − e = c_β · sqrt(D V₀ − D_g δ²) (a quadratic in δ).
    Using the variance at δ alone for both terms (a plain Wald calculation) overstates
    power by about 4 points at 25 prompts; keeping the tie share fixed under
    ``orders: both`` overstated it by up to 5 points (75% instead of 80% at 10 prompts x 3
    samples); see benchmarks/power_simulation.py. NaN with fewer than two prompts.
    """
    comp = components.at_null()
    layout = tuple(sizes) if sizes is not None else comp.sizes
    if len(layout) < 2 or not math.isfinite(comp.total):
        return _NAN
    d, dg = _design_factors(layout, comp)
    return _mde_for(d, comp.total, *critical_values(alpha, power, len(layout)), dg, alpha)


def _share(comp: VarianceComponents) -> float:
    return comp.between_share if math.isfinite(comp.between_share) else DEFAULT_BETWEEN_SHARE


def _design_factors(layout: Sequence[int], comp: VarianceComponents) -> tuple[float, float]:
    """(D, D_g) of `mde` for a layout and components at the null."""
    share = _share(comp)
    g = 1.0 - min(max(comp.flip_ties, 0.0), 1.0)
    m = np.asarray(layout, dtype=float)
    big_m = float(m.sum())
    if big_m <= 0:
        return _NAN, _NAN
    return design_factor(layout, share), share * float(np.sum(m * m)) / big_m ** 2 + (g - share) / big_m


def _mde_for(d: float, v0: float, ca: float, cb: float, dg: float | None = None, alpha: float = ALPHA) -> float:
    """The δ of `mde` for design factors d and d_g (default d), null variance v0 and critical values (c_α, c_β).

    The report's interval is Clopper–Pearson on an effective sample size n* = p(1 − p) / V ·
    (z / c_α)², which behaves like a score interval with a continuity correction of
    1 / (2 n*): its lower bound passes 50% only once the estimate is a further
    2 V (c_α / z)² above the normal boundary (p(1 − p) = 1/4 there). Without that shift
    the formula promised 80% where the interval delivered 73–78%.
    """
    if dg is None:
        dg = d
    if not (math.isfinite(d) and math.isfinite(dg) and math.isfinite(v0) and math.isfinite(ca)):
        return _NAN
    e = ca * math.sqrt(d * v0 / (1.0 + ca * ca * dg))
    z = float(special.ndtri(1.0 - alpha / 2.0))
    e += 2.0 * max(d * v0 - dg * e * e, 0.0) * (ca / z) ** 2
    a = 1.0 + cb * cb * dg
    disc = cb * cb * (a * d * v0 - dg * e * e)
    return (e + math.sqrt(max(disc, 0.0))) / a


def prompts_needed(effect: float, components: VarianceComponents, alpha: float = ALPHA, power: float = POWER,
                   sizes: Sequence[int] | None = None) -> int:
    """Prompts needed to detect `effect` with `power`, keeping the layout's comparisons per prompt.

    The layout (`sizes`, default the components' own) is repeated at scale n / len(sizes),
    which divides its design factor by that scale; the answer is the smallest n whose
    `mde` is at most `effect` (a search, since the t critical values depend on n). At
    least 2. A layout that cannot reach the effect at any size (a tie share so high
    that the win rate cannot move that far) raises ValueError.
    """
    if not 0.0 < effect < 0.5:
        raise ValueError(f"effect must be between 0 and 0.5 (a win-rate distance from 50%), got {effect}")
    comp = components.at_null()
    layout = tuple(sizes) if sizes is not None else comp.sizes
    if not layout or not math.isfinite(comp.total):
        raise ValueError("no layout or variance to plan from")
    d, dg = _design_factors(layout, comp)
    d1, dg1 = d * len(layout), dg * len(layout)  # design factors × prompts: constant under scaling

    def detects(n: int) -> bool:
        return _mde_for(d1 / n, comp.total, *critical_values(alpha, power, n), dg1 / n, alpha) <= effect

    hi = 2
    while not detects(hi):
        hi *= 2
        if hi > 1 << 40:
            raise ValueError(f"no number of prompts detects an effect of {effect}")
    if hi == 2:
        return 2
    lo = hi // 2
    while hi - lo > 1:  # detects(hi) and not detects(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if detects(mid) else (mid, hi)
    return hi


def recommended_samples(between: float, within: float, prompt_cost: float = 1.0,
                        max_samples: int = MAX_SAMPLES) -> int | None:
    """Samples per prompt K that give the narrowest interval for a fixed budget (Cochran / Miller).

    Budget = n (h + K) with h = `prompt_cost`, what adding a prompt costs beyond its
    comparisons, in units of one comparison's calls; the variance is
    (σ_b² + σ_w²/K)/n. Their product is smallest at K* = sqrt(h σ_w² / σ_b²); the
    better of the two integers around K* is returned, at least 1 and at most
    `max_samples`. With h = 0 (new prompts come free) K = 1: a new prompt shrinks both
    parts, another sample only the within part. None when the split is unknown.
    """
    if not (math.isfinite(between) and math.isfinite(within)) or between < 0 or within < 0:
        return None
    if prompt_cost < 0:
        raise ValueError(f"prompt_cost must be non-negative, got {prompt_cost}")
    if within == 0:
        return 1
    if between == 0:
        return max_samples

    def cost(k: int) -> float:
        return (between + within / k) * (prompt_cost + k)

    star = math.sqrt(prompt_cost * within / between)
    candidates = {max(1, min(max_samples, k)) for k in (math.floor(star), math.ceil(star))}
    return min(sorted(candidates), key=cost)


def paired_mdd(a: Mapping[Any, tuple[float, int]], b: Mapping[Any, tuple[float, int]], alpha: float = ALPHA,
               power: float = POWER) -> tuple[float, float, int]:
    """Minimum detectable difference between two runs' win rates over their shared prompts.

    `a` and `b` map a prompt to (sum of valid outcomes, valid comparisons), as
    `report.compare` builds them. The difference of the two ratio means has the
    linearised cluster-robust variance k/(k − 1) Σ_p u_p² with
    u_p = (s_ap − m_ap ȳ_A)/M_A − (s_bp − m_bp ȳ_B)/M_B: pairing by prompt lets each
    prompt's difficulty cancel. Returns (MDD, standard error, shared prompts);
    NaN with fewer than two shared prompts.
    """
    shared = [p for p in a if p in b and a[p][1] > 0 and b[p][1] > 0]
    k = len(shared)
    if k < 2:
        return _NAN, _NAN, k
    sa = np.array([a[p][0] for p in shared], dtype=float)
    na = np.array([a[p][1] for p in shared], dtype=float)
    sb = np.array([b[p][0] for p in shared], dtype=float)
    nb = np.array([b[p][1] for p in shared], dtype=float)
    ya, yb = sa.sum() / na.sum(), sb.sum() / nb.sum()
    u = (sa - na * ya) / na.sum() - (sb - nb * yb) / nb.sum()
    se = math.sqrt(float(np.sum(u * u)) * k / (k - 1.0))
    if paired_degenerate_reason(se, k):
        return _NAN, se, k
    return mde_for_se(se, alpha, power, k), se, k


def paired_degenerate_reason(se: float, k: int) -> str | None:
    """Why two runs' pairing gives no detectable difference, or None.

    se² · k is about the variance of the per-prompt difference between the runs. Below
    `MIN_VARIANCE`, two runs that agree prompt by prompt (the same deterministic judge on
    the same answers, say) would "detect" differences of ±0 points: the variance measured is
    the runs' agreement, not the precision of a new comparison. As for one run
    (`degenerate_reason`), no figure is given then.
    """
    if k < 2 or not math.isfinite(se):
        return None
    if se * se * k < MIN_VARIANCE:
        return ("the two runs' results barely differ prompt by prompt (variance of the per-prompt difference "
                f"{se * se * k:.3f}, below {MIN_VARIANCE:g}), so their pairing shows no precision to read a "
                "detectable difference from")
    return None


# --------------------------------------------------------------------------- plain words


def _pts(x: float) -> str:
    return f"{100 * x:.0f}"


def detectable_sentence(effect: float, significant: bool | None, power: float = POWER) -> str:
    """What the layout could detect, in words, and what a non-significant result rules out."""
    if not math.isfinite(effect):
        return "No power figure: fewer than two prompts with a valid verdict."
    hi, lo = 0.5 + effect, 0.5 - effect
    if hi >= 1.0:
        return ("This layout is too small to detect any difference reliably: even a candidate that always "
                "wins would often look like chance.")
    if significant is None:
        return (f"With this layout a true win rate above {_pts(hi)}% (or below {_pts(lo)}%) would be detected "
                f"{power:.0%} of the time; this run's own interval cannot be trusted, so read it as a plan.")
    if significant:
        return (f"Significant. With this layout a true win rate of {_pts(hi)}% or more (or {_pts(lo)}% or less) "
                f"is detected {power:.0%} of the time; smaller real effects are often missed.")
    return (f"Not significant, which rules out only large effects: a true win rate above {_pts(hi)}% "
            f"(or below {_pts(lo)}%) would very likely ({power:.0%} power) have been detected; "
            f"a smaller real difference could easily have been missed.")


def difference_sentence(mdd: float, estimate: float | None, significant: bool | None,
                        power: float = POWER, reason: str | None = None) -> str:
    """Run against run: the observed difference next to the smallest one the pairing could detect."""
    if reason:
        return f"No detectable-difference figure: {reason}."
    if not math.isfinite(mdd):
        return "No detectable-difference figure: the runs share fewer than two prompts."
    observed = "" if estimate is None or not math.isfinite(estimate) else f"{100 * estimate:+.0f} points, "
    verdict = "significant" if significant else "not significant" if significant is not None else "interval not trusted"
    return (f"{observed}{verdict}; this comparison could only detect differences of about ±{_pts(mdd)} points "
            f"({power:.0%} power, paired by prompt).")


def samples_sentence(components: VarianceComponents, k: int | None) -> str:
    """The samples-per-prompt recommendation in one paragraph of plain words."""
    if not components.identified or k is None:
        return ("Samples per prompt: every prompt was judged once, so the variance between prompts cannot be "
                "told apart from the noise within one; run a pilot with `samples: 2` (or sections that reuse a prompt) to learn "
                "whether more samples per prompt would pay.")
    share = components.between_share
    where = "between prompts" if share >= 0.5 else "within prompts (samples, orders, replicates)"
    text = (f"Samples per prompt: {100 * share:.0f}% of the outcome variance lies between prompts and "
            f"{100 * (1 - share):.0f}% within a prompt, so most of the noise is {where}. ")
    if k <= 1:
        text += ("For a fixed number of judge calls, 1 sample per prompt gives the narrowest interval: "
                 "spend the calls on more prompts.")
    elif components.between <= 0:
        text += (f"No variance between prompts showed above the noise, so extra samples help about as much as "
                 f"extra prompts; up to {k} samples per prompt are worth it, but a larger pilot may well find "
                 "some between-prompt variance, and then more prompts win.")
    else:
        text += (f"For a fixed number of judge calls, about {k} samples per prompt give the narrowest interval "
                 "when writing a new prompt costs about as much as one more comparison; if new prompts come "
                 "free, more prompts (1 sample each) are better still.")
    return text


def report_entry(outcomes: ArrayLike, clusters: ArrayLike | None, order_pairs: ArrayLike | None = None,
                 significant: bool | None = None, alpha: float = ALPHA, power: float = POWER,
                 effect: float = DEFAULT_EFFECT, no_information: str | None = None) -> dict[str, Any]:
    """The report's per-judge `power` object (plain data; see docs/report-schema.md).

    No minimum detectable effect (null, with `mde_reason`) when the outcomes give no
    variance to rest it on (`degenerate_reason`) or when the caller says the judge
    carries no information (`no_information`, the reason in words): a "±0 points" that
    promises precision the judge never showed is worse than no figure.
    """
    comp = decompose(outcomes, clusters, order_pairs)
    null = comp.at_null()
    reason = no_information or degenerate_reason(comp)
    delta = _NAN if reason else mde(comp, alpha, power)
    if reason is None and not math.isfinite(delta):
        reason = "fewer than two prompts with a valid verdict"
    k = recommended_samples(comp.between, comp.within) if comp.identified and not reason else None

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    needed = None
    if not reason and comp.n_prompts >= 1 and math.isfinite(null.total) and null.total > 0:
        needed = prompts_needed(effect, comp, alpha, power)
    statement = (f"No power figure: {reason}. Plan the next run from the conservative defaults "
                 "(`brie-bench run SUITE --dry-run --power`)." if reason else detectable_sentence(delta, significant, power))
    return {
        "alpha": alpha, "power": power,
        "mde": num(delta),
        "mde_reason": reason,
        "detectable_above": num(0.5 + delta) if math.isfinite(delta) and delta < 0.5 else None,
        "detectable_below": num(0.5 - delta) if math.isfinite(delta) and delta < 0.5 else None,
        "n_prompts": comp.n_prompts, "n_comparisons": comp.n_comparisons,
        "comparisons_per_prompt": num(comp.n_comparisons / comp.n_prompts) if comp.n_prompts else None,
        "significant": significant,
        "statement": statement,
        "variance": {
            "total": num(comp.total), "between_prompt": num(comp.between), "within_prompt": num(comp.within),
            "between_share": num(comp.between_share), "order": num(comp.order), "n_order_pairs": comp.n_order_pairs,
            "identified": comp.identified, "total_at_null": num(null.total), "flip_ties": num(comp.flip_ties),
        },
        "recommended_samples": k,
        "recommendation": samples_sentence(comp, k) if not reason else
        f"Samples per prompt: no recommendation, {reason}.",
        "effect": effect,
        "prompts_needed": needed,
    }
