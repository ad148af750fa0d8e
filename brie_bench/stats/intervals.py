"""Confidence intervals: Wilson, Clopper–Pearson, effective-n, cluster-t and the prompt-clustered bootstrap.

Callers never pick an interval method by hand: `rate_ci` gives the one that kept its
coverage for rates at every layout measured (`effective_n_ci`), `paired_rate_difference_ci`
the one for run-versus-run differences, and `mean_ci` switches between the bootstrap and
the cluster-t by prompt count for means that are not rates (docs/statistics.md says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from brie_bench.stats import special

from brie_bench.stats.draws import SHARED_MIN_CLUSTERS, Draws, _cluster_codes, cluster_resamples
from brie_bench.stats.outcomes import _NAN, _check_level, _same_length
from brie_bench.stats.ranks import count_unique, unique_inverse, unique_values


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval and what it was computed from.

    `method` names the interval ("wilson", "cluster-bootstrap", ...) so the report can
    say which one it shows. `low`/`high` are NaN when the data cannot support an
    interval (no rows, or a single prompt for a clustered interval).
    """

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int
    n_clusters: int | None = None
    #: Why the interval is not a finding even though its bounds exist (e.g. a fit at the
    #: optimiser's bound); None when nothing is known to be wrong with it.
    problem: str | None = None

    @property
    def reliable(self) -> bool:
        """True when both bounds exist; the report flags the number otherwise."""
        return math.isfinite(self.low) and math.isfinite(self.high)


def wilson_ci(successes: float, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps
    close to nominal coverage for small n and rates near 0 or 1, which is exactly
    where small evaluation runs live. It treats rows as independent, so it is the
    right interval only when each row is its own prompt; otherwise use
    `clustered_bootstrap_ci`. `successes` may be fractional (ties as halves).
    """
    _check_level(level)
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, level, "wilson", 0)
    z = float(special.ndtri(0.5 + level / 2.0))
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # Clamp so rounding never puts the estimate outside its own interval (e.g. 0 successes).
    low, high = min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)
    return Interval(p, low, high, level, "wilson", int(n))



def _is_mean(stat: Callable[..., Any] | str) -> bool:
    return stat is np.mean or stat is np.nanmean or stat == "mean"


def _valid_rows(values: ArrayLike, clusters: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The non-NaN values (1-D) and their cluster codes; a shape error is a caller's bug."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    codes = _cluster_codes(clusters, len(v))
    keep = ~np.isnan(v)
    return v[keep], codes[keep]


def clustered_bootstrap_ci(
    values: ArrayLike,
    clusters: ArrayLike | None,
    stat: Callable[[NDArray[np.float64]], float] | str = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    draws: Draws | None = None,
) -> Interval:
    """Percentile bootstrap interval that resamples whole clusters (prompts) with replacement.

    Why clusters: judgments of the same prompt share its answers and its difficulty,
    so they move together. Resampling rows as if independent understates the
    uncertainty (the original Brie Bench reported 57 rows that were only 42 distinct
    answer pairs over 25 prompts). Resampling prompts keeps that dependence inside
    each resample.

    NaN values (invalid verdicts) are dropped first, and a prompt left with no valid
    row drops out. The point estimate is `stat` on all valid rows. With fewer than
    two prompts no interval exists (every resample is the same prompt), so the bounds
    are NaN. For the mean (the default, and what a win rate is) the work is
    vectorised: each resample's mean is (sum of the drawn prompts' row sums) / (sum of
    their row counts), one matrix product of the draw counts with the per-prompt sums
    (`mean_bootstrap_cis`, which also says what `draws` does). Any other `stat` is called
    once per resample on the expanded rows, from its own draws. Resamples come from
    `cluster_resamples(K, n_boot, seed)` with prompts numbered in sorted-id order.
    """
    _check_level(level)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if _is_mean(stat):
        return mean_bootstrap_cis([values], clusters, n_boot=n_boot, level=level, seed=seed, draws=draws)[0]
    v, codes = _valid_rows(values, clusters)
    method = "cluster-bootstrap" if clusters is not None else "bootstrap"
    if v.size == 0:
        return Interval(_NAN, _NAN, _NAN, level, method, 0, 0)
    g = np.unique(codes, return_inverse=True)[1].reshape(-1)
    k = int(g.max()) + 1
    estimate = float(stat(v))  # type: ignore[operator]  # not _is_mean: stat is the callable
    if k < 2:
        return Interval(estimate, _NAN, _NAN, level, method, int(v.size), k)
    boots = np.empty(n_boot)
    done = 0
    rows = np.arange(v.size)
    for idx in cluster_resamples(k, n_boot, seed):
        for pick in idx:
            times = np.bincount(pick, minlength=k)[g]
            boots[done] = stat(v[np.repeat(rows, times)])  # type: ignore[operator]  # not _is_mean: callable
            done += 1
    return _percentile(boots, estimate, level, method, int(v.size), k)


def _percentile(boots: NDArray[np.float64], estimate: float, level: float, method: str, n: int, k: int) -> Interval:
    alpha = 1.0 - level
    low, high = np.nanquantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(estimate, float(low), float(high), level, method, n, k)


@dataclass
class _MeanParts:
    """What a mean's bootstrap needs: per-prompt row sums and row counts."""

    estimate: float
    n: int
    sums: NDArray[np.float64]
    sizes: NDArray[np.float64]

    @property
    def columns(self) -> NDArray[np.float64]:
        """(sums, sizes) side by side: what a matrix product of draw counts multiplies."""
        return np.column_stack([self.sums, self.sizes])


def mean_bootstrap_cis(columns: Sequence[ArrayLike], clusters: ArrayLike | None, n_boot: int = 2000,
                       level: float = 0.95, seed: int = 0, draws: Draws | None = None) -> list[Interval]:
    """`clustered_bootstrap_ci` of the mean for several value columns over the same rows and prompts.

    Each column keeps its own valid rows (NaN dropped per column) and its own interval,
    exactly as one call per column would give. Each resample's mean is the drawn prompts'
    row sums over their row counts: one matrix product of the draw counts with per-prompt
    (sums, counts), all columns in as few products as `Draws.totals` allows.

    Which draws, decided by the arguments alone:

    * `draws` given (a report's `Draws` over its whole run): `clusters` must be the run's
      prompt numbers (integers in 0..draws.n_clusters-1) and `n_boot`/`seed` the draws' own;
      a column over all of them, or over at least `SHARED_MIN_CLUSTERS` of them, uses those
      draws (over a subset: the Poisson-weighted cluster bootstrap, `Draws`);
    * otherwise, or for a smaller subset: the column's own draws, `Draws(K, n_boot, seed)`
      over its K prompts numbered in sorted-id order (the plain cluster bootstrap).
    """
    _check_level(level)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if draws is not None and (draws.n_boot, draws.seed) != (n_boot, seed):
        raise ValueError(f"draws were made for n_boot={draws.n_boot}, seed={draws.seed}, not {n_boot}, {seed}")
    method = "cluster-bootstrap" if clusters is not None else "bootstrap"
    values = [np.asarray(col, dtype=float) for col in columns]
    if not values:
        return []
    n = len(values[0])
    for v in values:
        if v.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
        _same_length("values", v, n)
    codes = _cluster_codes(clusters, n)
    numbers: NDArray[np.int64] | None = None
    if draws is not None:
        given = np.asarray(clusters) if clusters is not None else np.zeros(0)
        if given.dtype.kind not in "iu":
            raise ValueError("with draws, clusters must be the run's integer prompt numbers")
        numbers = given.astype(np.int64)
    out: list[Interval | None] = [None] * len(values)
    own: dict[int, Draws] = {}
    jobs: dict[Draws, list[tuple[int, _MeanParts, NDArray[np.int64]]]] = {}
    for i, v in enumerate(values):
        keep = ~np.isnan(v)
        kept = v[keep]
        if kept.size == 0:
            out[i] = Interval(_NAN, _NAN, _NAN, level, method, 0, 0)
            continue
        g = unique_inverse(codes[keep])
        k = int(g.max()) + 1
        estimate = float(np.mean(kept))
        if k < 2:
            out[i] = Interval(estimate, _NAN, _NAN, level, method, int(kept.size), k)
            continue
        part = _MeanParts(estimate, int(kept.size), np.bincount(g, weights=kept, minlength=k).astype(float),
                          np.bincount(g, minlength=k).astype(float))
        if draws is not None and numbers is not None and (k == draws.n_clusters or k >= SHARED_MIN_CLUSTERS):
            prompts, use = unique_values(numbers[keep]).astype(np.int64), draws
        else:
            prompts, use = np.arange(k, dtype=np.int64), own.setdefault(k, Draws(k, n_boot, seed))
        jobs.setdefault(use, []).append((i, part, prompts))
    for use, items in jobs.items():
        totals = use.totals([(prompts, part.columns) for _, part, prompts in items])
        for (i, part, _), tot in zip(items, totals):
            out[i] = _percentile(tot[:, 0] / tot[:, 1], part.estimate, level, method, part.n, len(part.sums))
    return [ci for ci in out if ci is not None]


#: Below this many prompts the percentile cluster bootstrap can cover less than 93% under a
#: judge with no preference (84% at 5 prompts x 3 judgments, 92.5% in one run at 25 x 3,
#: in benchmarks/coverage.py; docs/statistics.md), so `mean_ci` (score differences,
#: probabilities) uses the cluster-robust t interval there. Rates no longer switch: they
#: use `effective_n_ci` at every prompt count.
BOOTSTRAP_MIN_CLUSTERS: int = 30


def clopper_pearson_ci(successes: int, n: int, level: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson) interval for a binomial proportion; `n` = 0 gives NaN.

    Used on *prompts* when every valid verdict is a win (or every one a loss): then
    every bootstrap resample has the same mean and the percentile interval collapses
    to a point, [100%, 100%], which claims certainty that 5 prompts cannot give. The
    exact interval treats each prompt as one success and never collapses.
    """
    _check_level(level)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, level, "clopper-pearson", 0)
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else float(special.betaincinv(successes, n - successes + 1, alpha / 2.0))
    high = 1.0 if successes == n else float(special.betaincinv(successes + 1, n - successes, 1.0 - alpha / 2.0))
    return Interval(successes / n, low, high, level, "clopper-pearson", int(n))


def cluster_t_ci(values: ArrayLike, clusters: ArrayLike | None, level: float = 0.95,
                 bounds: tuple[float, float] | None = None) -> Interval:
    """Cluster-robust t interval for the mean of rows: mean ± t(K − 1) · CR1 standard error.

    The mean over rows is a ratio (sum of the prompts' row sums over their row counts);
    its linearised standard error uses each prompt's residual sum
    e_k = s_k − mean · n_k, with the usual K / (K − 1) small-sample factor, and the
    critical value comes from Student's t with K − 1 degrees of freedom. With few
    prompts this is much wider than the percentile bootstrap, which behaves like a
    normal interval with a variance shrunk by (K − 1) / K and under-covers there.
    `bounds` clips the interval to the range the statistic can take (a rate: [0, 1]).
    NaN rows are dropped; fewer than two prompts give NaN bounds.
    """
    _check_level(level)
    v, codes = _valid_rows(values, clusters)
    if v.size == 0:
        return Interval(_NAN, _NAN, _NAN, level, "cluster-t", 0, 0)
    sums, sizes = _cluster_totals(v, codes)
    k = len(sums)
    mean = float(v.mean())
    if k < 2:
        return Interval(mean, _NAN, _NAN, level, "cluster-t", int(v.size), k)
    se = math.sqrt(_ratio_variance(sums, sizes, mean))
    t = float(special.stdtrit(k - 1, 0.5 + level / 2.0))
    low, high = mean - t * se, mean + t * se
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Interval(mean, low, high, level, "cluster-t", int(v.size), k)


def _cluster_totals(v: NDArray[np.float64], codes: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per prompt, the sum of its valid rows and their count (prompts numbered in sorted order)."""
    g = unique_inverse(codes)
    k = int(g.max()) + 1 if g.size else 0
    return np.bincount(g, weights=v, minlength=k).astype(float), np.bincount(g, minlength=k).astype(float)


def _ratio_variance(sums: NDArray[np.float64], sizes: NDArray[np.float64], mean: float) -> float:
    """CR1 (cluster-robust) variance of the row mean sum(s) / sum(n): the linearised ratio variance.

    Each prompt's residual sum e_k = s_k − mean · n_k carries its rows' dependence; the
    K / (K − 1) factor is the usual small-sample correction. The same formula as
    `cluster_t_ci` and as statsmodels' cluster-robust OLS on a constant.
    """
    k = len(sums)
    resid = sums - mean * sizes
    total = float(sizes.sum())
    return float(np.sum(resid * resid)) * k / (k - 1.0) / (total * total)


#: Ties earn credit (a tie is half a win, so a tie-rich judge's verdicts vary less than
#: coin flips) only away from the bounds: full credit for estimates between 15% and 85%,
#: fading linearly to none at 5% and 95%. Nearer the bounds the clustered variance rests
#: on the few prompts not won outright, and crediting ties there covered only 91.5% (95%
#: true rate, 25 prompts x 3, strongly varying prompts; benchmarks/coverage.py).
TIE_CREDIT_FULL: float = 0.85
TIE_CREDIT_NONE: float = 0.95


def tie_credit(mean: float, row_variance: float | None) -> float:
    """How many times the judgment count the effective sample may reach: p(1 − p) / s², faded near 0 and 1.

    s² is the variance of the valid outcomes as if independent. Without ties it equals
    p(1 − p) and the credit is 1 (a design effect below one is never credited); every tie
    lowers it. None (unknown) gives 1.
    """
    if row_variance is None:
        return 1.0
    pq = mean * (1.0 - mean)
    ratio = pq / row_variance if row_variance > 0.0 else 1e6
    edge = max(mean, 1.0 - mean)
    fade = min(1.0, max(0.0, (TIE_CREDIT_NONE - edge) / (TIE_CREDIT_NONE - TIE_CREDIT_FULL)))
    return 1.0 + max(0.0, ratio - 1.0) * fade


def _effective_n_bounds(mean: float, variance: float, n: int, k: int, level: float,
                        credit: float = 1.0) -> tuple[float, float]:
    """Korn–Graubard bounds: Clopper–Pearson on the design-effect, degrees-of-freedom adjusted sample size.

    n_eff = p(1 − p) / V is the number of independent Bernoulli rows that would give the
    observed clustered variance V of the mean; multiplying by (z / t_{K−1})² charges for
    estimating V from only K prompts. Capped at `credit` times the number of rows (see
    `tie_credit`: a design effect below one is credited only for ties) and floored at one.
    Clopper–Pearson then keeps the interval's asymmetry near 0 and 1, which is where
    symmetric intervals (cluster-t, percentile bootstrap) lose coverage: their misses are
    one-sided, a few bad prompts rarely drawn. Korn & Graubard, Survey Methodology 24
    (1998) 193–201.
    """
    alpha = 1.0 - level
    z = float(special.ndtri(1.0 - alpha / 2.0))
    t = float(special.stdtrit(k - 1, 1.0 - alpha / 2.0))
    cap = float(n) * credit
    n_eff = mean * (1.0 - mean) / variance if variance > 0.0 else cap
    n_eff = min(cap, max(1.0, n_eff * (z / t) ** 2))
    x = mean * n_eff
    low = 0.0 if x <= 0.0 else float(special.betaincinv(x, n_eff - x + 1.0, alpha / 2.0))
    high = 1.0 if x >= n_eff else float(special.betaincinv(x + 1.0, n_eff - x, 1.0 - alpha / 2.0))
    return min(low, mean), max(high, mean)


def effective_n_ci(values: ArrayLike, clusters: ArrayLike | None, level: float = 0.95) -> Interval:
    """The report's interval for a rate clustered by prompt (method ``effective-n``).

    Clopper–Pearson on the effective sample size (`_effective_n_bounds`): the one method
    that kept at least 93% coverage over the whole grid of `benchmarks/coverage.py` (true
    rates 0.5–0.99, 5–400 prompts, 1–3 judgments each, low and high prompt heterogeneity,
    no, some and many ties). Ties narrow it (`tie_credit`) away from the bounds. The
    percentile bootstrap and the cluster-t fell to 77–87% at 90–99% win rates, the rates
    good fine-tunes reach. Every valid row a win (or every one
    a loss) has no variance to measure: then it is Clopper–Pearson over prompts (method
    ``clopper-pearson-prompts``), each prompt one success. Fewer than two prompts: NaN bounds.
    """
    _check_level(level)
    v, codes = _valid_rows(values, clusters)
    if v.size == 0:
        return Interval(_NAN, _NAN, _NAN, level, "effective-n", 0, 0)
    sums, sizes = _cluster_totals(v, codes)
    k = len(sums)
    mean = float(sums.sum() / sizes.sum())
    if mean in (0.0, 1.0):
        ci = clopper_pearson_ci(k if mean == 1.0 else 0, k, level)
        return Interval(mean, ci.low if k >= 2 else _NAN, ci.high if k >= 2 else _NAN, level,
                        "clopper-pearson-prompts", int(v.size), k)
    if k < 2:
        return Interval(mean, _NAN, _NAN, level, "effective-n", int(v.size), k)
    row_variance = float(np.mean((v - mean) ** 2))
    low, high = _effective_n_bounds(mean, _ratio_variance(sums, sizes, mean), int(v.size), k, level,
                                    tie_credit(mean, row_variance))
    return Interval(mean, low, high, level, "effective-n", int(v.size), k)


def rate_ci(values: ArrayLike, clusters: ArrayLike | None, level: float = 0.95) -> Interval:
    """The interval the report shows for a rate (values in [0, 1]): `effective_n_ci`.

    One method at every prompt count, chosen by measured coverage (docs/statistics.md,
    "Coverage"); it needs no resampling, so a rate's interval is the same in any thread,
    notebook or report.
    """
    return effective_n_ci(values, clusters, level=level)


def rate_cis(columns: Sequence[ArrayLike], clusters: ArrayLike | None, level: float = 0.95) -> list[Interval]:
    """`rate_ci` for several columns over the same rows (a win rate and its strict version)."""
    return [effective_n_ci(col, clusters, level=level) for col in columns]


def paired_rate_difference_ci(a: tuple[ArrayLike, ArrayLike], b: tuple[ArrayLike, ArrayLike],
                              level: float = 0.95) -> Interval:
    """Rate A − rate B over the same prompts: Newcombe's hybrid score interval on effective sizes.

    `a` and `b` are (per-prompt sums of valid outcomes, per-prompt counts), aligned prompt by
    prompt. Each rate gets its own `effective_n_ci`-style interval [l, u]; the difference's
    bounds combine the two distances with the correlation ρ of the prompts' residuals
    (Newcombe 1998, method 10, with ρ estimated over prompts):

        low  = d − sqrt((p_a − l_a)² − 2ρ (p_a − l_a)(u_b − p_b) + (u_b − p_b)²)
        high = d + sqrt((u_a − p_a)² − 2ρ (u_a − p_a)(p_b − l_b) + (p_b − l_b)²)

    Why not the paired bootstrap or a t interval on per-prompt differences: near 90–99% both
    rates are skewed and those intervals covered 69–88% over 5–40 prompts (and 73% at 5
    prompts for the bootstrap), while this one kept at least 92% over the grid in
    `benchmarks/coverage.py`. Method ``paired-newcombe``; fewer than two prompts: NaN bounds.
    """
    _check_level(level)
    sa, na = np.asarray(a[0], dtype=float), np.asarray(a[1], dtype=float)
    sb, nb = np.asarray(b[0], dtype=float), np.asarray(b[1], dtype=float)
    for arr in (na, sb, nb):
        _same_length("paired prompts", arr, len(sa))
    k = len(sa)
    n = int(na.sum() + nb.sum())
    if k == 0 or na.sum() == 0 or nb.sum() == 0:
        return Interval(_NAN, _NAN, _NAN, level, "paired-newcombe", n, k)
    pa, pb = float(sa.sum() / na.sum()), float(sb.sum() / nb.sum())
    estimate = pa - pb
    if k < 2:
        return Interval(estimate, _NAN, _NAN, level, "paired-newcombe", n, k)
    (la, ua), va = _side_bounds(sa, na, pa, level)
    (lb, ub), vb = _side_bounds(sb, nb, pb, level)
    cov = float(np.sum((sa - pa * na) * (sb - pb * nb))) * k / (k - 1.0) / (float(na.sum()) * float(nb.sum()))
    rho = cov / math.sqrt(va * vb) if va > 0.0 and vb > 0.0 else 0.0
    rho = min(1.0, max(-1.0, rho))
    da, ea = pa - la, ua - pa
    db, eb = pb - lb, ub - pb
    low = estimate - math.sqrt(max(0.0, da * da - 2.0 * rho * da * eb + eb * eb))
    high = estimate + math.sqrt(max(0.0, ea * ea - 2.0 * rho * ea * db + db * db))
    return Interval(estimate, max(-1.0, low), min(1.0, high), level, "paired-newcombe", n, k)


def _side_bounds(sums: NDArray[np.float64], sizes: NDArray[np.float64], mean: float,
                 level: float) -> tuple[tuple[float, float], float]:
    """One run's rate bounds for `paired_rate_difference_ci`, and its clustered variance."""
    k = len(sums)
    variance = _ratio_variance(sums, sizes, mean)
    if mean in (0.0, 1.0):
        ci = clopper_pearson_ci(k if mean == 1.0 else 0, k, level)
        return (ci.low, ci.high), variance
    return _effective_n_bounds(mean, variance, int(sizes.sum()), k, level), variance


def mean_ci(values: ArrayLike, clusters: ArrayLike | None, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
            bounds: tuple[float, float] | None = None, min_boot_clusters: int | None = None,
            draws: Draws | None = None) -> Interval:
    """Clustered interval for a mean that is not a 0/1 rate (score differences, probabilities).

    The percentile bootstrap, or, when `min_boot_clusters` is given and fewer prompts
    have a valid row, `cluster_t_ci` clipped to `bounds`: the same switch as `rate_ci`
    and for the same reason (with few prompts the bootstrap under-covers). `draws`: see
    `mean_bootstrap_cis`.
    """
    return mean_cis([values], clusters, n_boot=n_boot, level=level, seed=seed, bounds=bounds,
                    min_boot_clusters=min_boot_clusters, draws=draws)[0]


def mean_cis(columns: Sequence[ArrayLike], clusters: ArrayLike | None, n_boot: int = 2000, level: float = 0.95,
             seed: int = 0, bounds: tuple[float, float] | None = None,
             min_boot_clusters: int | None = None, draws: Draws | None = None) -> list[Interval]:
    """`mean_ci` for several columns over the same rows (one per scoring criterion), computed together."""
    return _chosen_cis(columns, clusters, n_boot, level, seed, min_boot_clusters, bounds, draws)


def _chosen_cis(columns: Sequence[ArrayLike], clusters: ArrayLike | None, n_boot: int, level: float, seed: int,
                min_boot_clusters: int | None, bounds: tuple[float, float] | None,
                draws: Draws | None = None) -> list[Interval]:
    """Per column, the interval `mean_ci` would choose; the bootstraps computed together."""
    values = [np.asarray(col, dtype=float) for col in columns]
    codes = _cluster_codes(clusters, len(values[0])) if values else np.zeros(0, dtype=np.intp)
    out: list[Interval | None] = [None] * len(values)
    boot: list[int] = []
    for i, v in enumerate(values):
        valid = ~np.isnan(v)
        k = count_unique(codes[valid])
        if min_boot_clusters is not None and k < min_boot_clusters:
            out[i] = cluster_t_ci(v, clusters, level=level, bounds=bounds)
        else:
            boot.append(i)
    for i, ci in zip(boot, mean_bootstrap_cis([values[i] for i in boot], clusters, n_boot=n_boot, level=level,
                                              seed=seed, draws=draws)):
        out[i] = ci
    return [ci for ci in out if ci is not None]


def degenerate_reason(ci: Interval, span: tuple[float, float] = (0.0, 1.0)) -> str | None:
    """Why an interval with finite bounds still says nothing, or None when it is usable.

    Three shapes are never a finding: zero width (every resample agreed, which only
    means the data had no variation to resample, e.g. a section won 5 of 5), an
    interval covering all but 0.1% of the possible range at either end (it rules
    nothing out), and an interval whose fit stopped at an optimiser bound (`problem`).
    """
    if ci.problem:
        return ci.problem
    if not ci.reliable:
        return None
    lo, hi = span
    width = hi - lo
    if ci.high - ci.low <= 1e-12 * max(width, 1.0):
        return "zero-width interval (no variation to resample)"
    if ci.low <= lo + 0.001 * width and ci.high >= hi - 0.001 * width:
        return "the interval spans almost the whole possible range"
    return None
