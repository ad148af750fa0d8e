"""Statistics over blind A/B judgments: win rates, intervals, judge agreement, biases, rankings.

Everything here is a pure function over numpy arrays (numpy and scipy only), so the
report, the CLI and notebooks can compose them freely and tests can check each one
against an independent implementation.

Conventions shared by every function:

* An *outcome* is one judgment seen from the fine-tune's side: ``1.0`` win,
  ``0.5`` tie, ``0.0`` loss, ``NaN`` invalid (unparseable, refused, errored).
  Invalid is never a tie and never a win: it is counted and then excluded.
* A *cluster* array gives the prompt id of each row. Rows that share a prompt are
  not independent (the same answers are judged by several judges, in both orders,
  several samples per prompt), so the default interval resamples whole prompts.
* Empty or degenerate input gives ``NaN``, never an exception: a report over a run
  that produced no valid verdict must still render and say so.
* Results are frozen dataclasses; those holding arrays use ``eq=False`` because
  element-wise ``==`` on arrays has no single truth value.

Programming errors (mismatched lengths, values outside the outcome coding) raise
``ValueError``: these arrays come from the store, not from the user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special
from scipy import stats as sps

__all__ = [
    "WIN", "TIE", "LOSS", "OUTCOME_CATEGORIES", "KAPPA_PARADOX",
    "Counts", "Interval", "CriterionDifference", "PairAgreement", "Agreement", "MajorityVote",
    "LabelBias", "PositionConsistency", "LengthBias", "LengthControlled", "BradleyTerry",
    "counts", "win_rate", "strict_win_rate", "strict_outcomes",
    "wilson_ci", "cluster_resamples", "clustered_bootstrap_ci", "sign_test",
    "criterion_differences", "logprob_preference",
    "percent_agreement", "pairwise_agreement", "cohen_kappa", "fleiss_kappa",
    "krippendorff_alpha", "gwet_ac1", "agreement", "majority_vote",
    "label_winners", "label_bias", "position_consistency", "length_bias",
    "length_controlled_win_rate", "bradley_terry",
]

WIN: float = 1.0
TIE: float = 0.5
LOSS: float = 0.0
#: The full outcome domain. Gwet's AC1 depends on how many categories a judge *could*
#: choose, not only on those it did, so agreement functions default to this domain.
OUTCOME_CATEGORIES: tuple[float, ...] = (LOSS, TIE, WIN)

KAPPA_PARADOX: str = (
    "Kappa can be low while judges agree 90% of the time because it discounts the agreement "
    "expected by chance from how often each judge uses each label, and when one outcome "
    "dominates (say most verdicts are 'fine-tune wins') chance agreement is already close to "
    "90%, so little is left above it: this prevalence effect is the kappa paradox, which is "
    "why Gwet's AC1 and raw percent agreement are shown alongside kappa."
)

_NAN = float("nan")
# Rows of bootstrap indices generated at once: bounds memory at about 16 MB of int32.
_CHUNK_CELLS = 1 << 22


# --------------------------------------------------------------------------- outcomes


def _outcomes(outcomes: ArrayLike, name: str = "outcomes") -> NDArray[np.float64]:
    """Return outcomes as a 1-D float array, rejecting values outside {0, 0.5, 1, NaN}.

    Any other value means a coding bug upstream (e.g. a label verdict that was never
    unblinded), and silently averaging it would corrupt the win rate.
    """
    x = np.asarray(outcomes, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    ok = np.isnan(x) | (x == LOSS) | (x == TIE) | (x == WIN)
    if not ok.all():
        bad = x[~ok][:3].tolist()
        raise ValueError(f"{name} must be 1.0 (win), 0.5 (tie), 0.0 (loss) or NaN (invalid); got {bad}")
    return x


def _same_length(name: str, arr: NDArray, n: int) -> None:
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows, expected {n}")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")


@dataclass(frozen=True)
class Counts:
    """How many judgments fell into each outcome. `n_valid` excludes invalid ones."""

    wins: int
    losses: int
    ties: int
    invalid: int
    n_valid: int

    @property
    def total(self) -> int:
        """All judgments, invalid included: the denominator for the invalid rate."""
        return self.n_valid + self.invalid


def counts(outcomes: ArrayLike) -> Counts:
    """Count wins, losses, ties and invalid verdicts (fine-tune's point of view)."""
    x = _outcomes(outcomes)
    wins = int(np.count_nonzero(x == WIN))
    losses = int(np.count_nonzero(x == LOSS))
    ties = int(np.count_nonzero(x == TIE))
    invalid = int(np.count_nonzero(np.isnan(x)))
    return Counts(wins=wins, losses=losses, ties=ties, invalid=invalid, n_valid=wins + losses + ties)


def win_rate(outcomes: ArrayLike) -> float:
    """Share of valid judgments the fine-tune wins, a tie counting as half a win.

    This is the mean outcome, so it is symmetric: the baseline's win rate is exactly
    ``1 - win_rate``, and a judge that can't tell the answers apart scores 0.5.
    Invalid verdicts are excluded. NaN when nothing is valid.
    """
    c = counts(outcomes)
    return (c.wins + 0.5 * c.ties) / c.n_valid if c.n_valid else _NAN


def strict_win_rate(outcomes: ArrayLike) -> float:
    """wins / (wins + losses + ties): the figure the original Brie Bench published.

    Ties count as not-a-win, so it is *not* symmetric (both models can be below 50%);
    it is kept to compare with published numbers. Invalid excluded; NaN when empty.
    """
    c = counts(outcomes)
    return c.wins / c.n_valid if c.n_valid else _NAN


def strict_outcomes(outcomes: ArrayLike) -> NDArray[np.float64]:
    """Recode outcomes as 1 for a win and 0 for a tie or loss, NaN kept for invalid.

    Feed the result to `clustered_bootstrap_ci` to get an interval for the strict win rate.
    """
    x = _outcomes(outcomes)
    return np.where(np.isnan(x), np.nan, (x == WIN).astype(float))


# --------------------------------------------------------------------------- intervals


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
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # Clamp so rounding never puts the estimate outside its own interval (e.g. 0 successes).
    low, high = min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)
    return Interval(p, low, high, level, "wilson", int(n))


def cluster_resamples(n_clusters: int, n_boot: int, seed: int = 0) -> Iterator[NDArray[np.int32]]:
    """Yield bootstrap resamples of cluster indices, in chunks of shape (rows, n_clusters).

    Resample ``b`` (counting across chunks) is ``n_clusters`` indices drawn uniformly
    with replacement. The generator is ``numpy.random.default_rng(seed)`` and each
    chunk is one ``rng.integers(0, n_clusters, size=(rows, n_clusters), dtype=int32)``
    call, with rows fixed by n_clusters alone; so a given (n_clusters, n_boot, seed)
    always gives the same resamples, which keeps reports reproducible. Every
    bootstrap in this module draws through here.
    """
    if n_clusters <= 0 or n_boot <= 0:
        return
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // n_clusters)
    done = 0
    while done < n_boot:
        take = min(rows, n_boot - done)
        yield rng.integers(0, n_clusters, size=(take, n_clusters), dtype=np.int32)
        done += take


def _cluster_codes(clusters: ArrayLike | None, n: int) -> NDArray[np.intp]:
    """Map arbitrary prompt ids (strings, ints) to 0..K-1; None means one cluster per row."""
    if clusters is None:
        return np.arange(n, dtype=np.intp)
    c = np.asarray(clusters)
    if c.ndim != 1:
        raise ValueError(f"clusters must be one-dimensional, got shape {c.shape}")
    _same_length("clusters", c, n)
    return np.unique(c, return_inverse=True)[1].astype(np.intp).reshape(-1)


def _is_mean(stat: Callable | str) -> bool:
    return stat is np.mean or stat is np.nanmean or stat == "mean"


def clustered_bootstrap_ci(
    values: ArrayLike,
    clusters: ArrayLike | None,
    stat: Callable[[NDArray[np.float64]], float] | str = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
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
    their row counts), computed with one gather per chunk of resamples. Any other
    `stat` is called once per resample on the expanded rows. Resamples come from
    `cluster_resamples(K, n_boot, seed)` with prompts numbered in sorted-id order.
    """
    _check_level(level)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    codes = _cluster_codes(clusters, len(v))
    keep = ~np.isnan(v)
    v, codes = v[keep], codes[keep]
    method = "cluster-bootstrap" if clusters is not None else "bootstrap"
    if v.size == 0:
        return Interval(_NAN, _NAN, _NAN, level, method, 0, 0)
    _, g = np.unique(codes, return_inverse=True)
    g = g.reshape(-1)
    k = int(g.max()) + 1
    estimate = float(np.mean(v)) if _is_mean(stat) else float(stat(v))  # type: ignore[operator]
    if k < 2:
        return Interval(estimate, _NAN, _NAN, level, method, int(v.size), k)

    boots = np.empty(n_boot)
    done = 0
    if _is_mean(stat):
        sums = np.bincount(g, weights=v, minlength=k)
        sizes = np.bincount(g, minlength=k).astype(float)
        for idx in cluster_resamples(k, n_boot, seed):
            boots[done:done + len(idx)] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
            done += len(idx)
    else:
        rows = np.arange(v.size)
        for idx in cluster_resamples(k, n_boot, seed):
            for pick in idx:
                times = np.bincount(pick, minlength=k)[g]
                boots[done] = stat(v[np.repeat(rows, times)])  # type: ignore[operator]
                done += 1
    alpha = 1.0 - level
    low, high = np.nanquantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(estimate, float(low), float(high), level, method, int(v.size), k)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins vs losses against 1/2, ties excluded.

    Answers "is the fine-tune preferred more often than not?" without any model of
    ties: a tie carries no direction. It assumes independent verdicts, so on
    clustered data trust the clustered interval first. NaN when there is no
    decisive verdict.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be non-negative, got wins={wins}, losses={losses}")
    n = int(wins) + int(losses)
    if n == 0:
        return _NAN
    return float(sps.binomtest(int(wins), n, 0.5, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class CriterionDifference:
    """Mean 1–5 score of each model on one criterion and the paired difference."""

    criterion: str
    mean_ft: float
    mean_base: float
    difference: Interval


def criterion_differences(
    scores_ft: Mapping[str, ArrayLike],
    scores_base: Mapping[str, ArrayLike],
    clusters: ArrayLike | None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, CriterionDifference]:
    """Per criterion, mean (fine-tune score − baseline score) with a clustered interval.

    The difference is taken within each judgment (the same judge scored both answers
    at once), which removes the judge's overall harshness from the comparison. Rows
    where either score is missing (NaN) are dropped for that criterion only.
    """
    if set(scores_ft) != set(scores_base):
        raise ValueError(f"criteria differ: {sorted(scores_ft)} vs {sorted(scores_base)}")
    out: dict[str, CriterionDifference] = {}
    for name in scores_ft:
        ft = np.asarray(scores_ft[name], dtype=float)
        base = np.asarray(scores_base[name], dtype=float)
        _same_length(f"scores_base[{name!r}]", base, len(ft))
        both = ~(np.isnan(ft) | np.isnan(base))
        diff = np.where(both, ft - base, np.nan)
        ci = clustered_bootstrap_ci(diff, clusters, n_boot=n_boot, level=level, seed=seed)
        mean_ft = float(ft[both].mean()) if both.any() else _NAN
        mean_base = float(base[both].mean()) if both.any() else _NAN
        out[name] = CriterionDifference(name, mean_ft, mean_base, ci)
    return out


def logprob_preference(
    p_ft: ArrayLike,
    clusters: ArrayLike | None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean probability the judge gives to the fine-tune winning, with a clustered interval.

    Read from the judge's token log-probabilities, it is a graded preference: it keeps
    information a hard verdict throws away (a 51/49 call and a 99/1 call both count as
    one win). NaN rows (no logprobs) are dropped.
    """
    p = np.asarray(p_ft, dtype=float)
    finite = p[~np.isnan(p)]
    if ((finite < 0) | (finite > 1)).any():
        raise ValueError("p_ft must be probabilities in [0, 1] (or NaN)")
    return clustered_bootstrap_ci(p, clusters, n_boot=n_boot, level=level, seed=seed)


# --------------------------------------------------------------------------- agreement


def _label_matrix(matrix: ArrayLike) -> NDArray[np.float64]:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"label matrix must be items x raters, got shape {m.shape}")
    if m.shape[1] < 2:
        raise ValueError(f"agreement needs at least two raters, got {m.shape[1]}")
    return m


def _category_counts(m: NDArray[np.float64], categories: Sequence[float] | None) -> NDArray[np.float64]:
    """Items x categories table: how many raters put each item in each category."""
    present = m[~np.isnan(m)]
    cats = np.unique(present) if categories is None else np.asarray(categories, dtype=float)
    if categories is not None and not np.isin(present, cats).all():
        extra = np.setdiff1d(present, cats)[:3].tolist()
        raise ValueError(f"labels {extra} are not among categories {list(categories)}")
    return np.stack([(m == c).sum(axis=1) for c in cats], axis=1).astype(float) if cats.size else \
        np.zeros((m.shape[0], 0))


def percent_agreement(matrix: ArrayLike) -> float:
    """Share of items on which every rater gave the same label.

    Only items every rater labelled count, so the figure means "all judges agreed",
    not "all judges that answered agreed". NaN when no item is complete.
    """
    m = _label_matrix(matrix)
    complete = m[~np.isnan(m).any(axis=1)]
    if complete.shape[0] == 0:
        return _NAN
    return float(np.mean((complete == complete[:, :1]).all(axis=1)))


def cohen_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's kappa between two raters over the items both labelled.

    (observed agreement − chance agreement) / (1 − chance agreement), chance taken from
    each rater's own label frequencies. NaN when no shared item or when chance
    agreement is 1 (both raters always use one and the same label).
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    _same_length("b", y, len(x))
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    if x.size == 0:
        return _NAN
    po = float(np.mean(x == y))
    cats = np.union1d(x, y)
    pe = float(sum(np.mean(x == c) * np.mean(y == c) for c in cats))
    return (po - pe) / (1.0 - pe) if pe < 1.0 else _NAN


@dataclass(frozen=True)
class PairAgreement:
    """Agreement between raters `raters[0]` and `raters[1]` (column indices)."""

    raters: tuple[int, int]
    n: int
    percent: float
    cohen_kappa: float


def pairwise_agreement(matrix: ArrayLike) -> tuple[PairAgreement, ...]:
    """Percent agreement and Cohen's kappa for every pair of raters (i < j).

    Pairwise figures show *which* judge is the odd one out, which a single
    multi-rater coefficient hides.
    """
    m = _label_matrix(matrix)
    out = []
    for i in range(m.shape[1]):
        for j in range(i + 1, m.shape[1]):
            both = ~(np.isnan(m[:, i]) | np.isnan(m[:, j]))
            n = int(both.sum())
            pct = float(np.mean(m[both, i] == m[both, j])) if n else _NAN
            out.append(PairAgreement((i, j), n, pct, cohen_kappa(m[:, i], m[:, j])))
    return tuple(out)


def fleiss_kappa(matrix: ArrayLike) -> float:
    """Fleiss' kappa over the items every rater labelled.

    Fleiss' formula assumes the same number of ratings per item, so incomplete items
    are left out (Krippendorff's alpha is the coefficient that uses them). NaN when
    no item is complete or all ratings share one label.
    """
    m = _label_matrix(matrix)
    m = m[~np.isnan(m).any(axis=1)]
    if m.shape[0] == 0:
        return _NAN
    table = _category_counts(m, None)
    r = m.shape[1]
    p_item = ((table * table).sum(axis=1) - r) / (r * (r - 1))
    p_cat = table.sum(axis=0) / table.sum()
    pe = float((p_cat * p_cat).sum())
    return (float(p_item.mean()) - pe) / (1.0 - pe) if pe < 1.0 else _NAN


def krippendorff_alpha(matrix: ArrayLike) -> float:
    """Krippendorff's alpha for nominal labels; missing ratings (NaN) are allowed.

    Built from the coincidence matrix over items with at least two ratings:
    alpha = 1 − (n − 1)(n − Σ_c o_cc) / (n² − Σ_c n_c²). It uses every pairable
    rating, so a judge that errored on some items still counts where it answered.
    NaN when fewer than two pairable ratings or only one label occurs.
    """
    m = _label_matrix(matrix)
    table = _category_counts(m, None)
    m_u = table.sum(axis=1)
    pairable = m_u >= 2
    table, m_u = table[pairable], m_u[pairable]
    if table.shape[0] == 0:
        return _NAN
    o_diag = (table * (table - 1.0) / (m_u - 1.0)[:, None]).sum(axis=0)
    n_c = table.sum(axis=0)
    n = float(n_c.sum())
    expected = n * n - float((n_c * n_c).sum())
    if expected <= 0.0:
        return _NAN
    return 1.0 - (n - 1.0) * (n - float(o_diag.sum())) / expected


def gwet_ac1(matrix: ArrayLike, categories: Sequence[float] | None = OUTCOME_CATEGORIES) -> float:
    """Gwet's AC1 for any number of raters, missing ratings allowed (Gwet 2008).

    Chance agreement is Σ_k π_k(1 − π_k)/(q − 1), which shrinks when one label
    dominates instead of growing as kappa's does, so AC1 stays high when judges agree
    on a lopsided result (see KAPPA_PARADOX). It depends on q, the number of labels a
    rater could choose, hence `categories` defaults to the full win/tie/loss domain;
    pass None to use only the labels observed. Observed agreement uses items with at
    least two ratings, label shares use every rated item. NaN when undefined.
    """
    m = _label_matrix(matrix)
    table = _category_counts(m, categories)
    q = table.shape[1]
    r_i = table.sum(axis=1)
    rated = r_i >= 1
    multi = r_i >= 2
    if q < 2 or not multi.any():
        return _NAN
    pa = float(((table[multi] * (table[multi] - 1.0)).sum(axis=1) / (r_i[multi] * (r_i[multi] - 1.0))).mean())
    pi = (table[rated] / r_i[rated][:, None]).mean(axis=0)
    pe = float((pi * (1.0 - pi)).sum() / (q - 1))
    return (pa - pe) / (1.0 - pe) if pe < 1.0 else _NAN


@dataclass(frozen=True)
class Agreement:
    """Every agreement statistic for one items x raters label matrix."""

    n_items: int
    n_raters: int
    n_complete: int
    percent_all: float
    pairs: tuple[PairAgreement, ...]
    fleiss_kappa: float
    krippendorff_alpha: float
    gwet_ac1: float
    note: str = field(default=KAPPA_PARADOX)


def agreement(matrix: ArrayLike, categories: Sequence[float] | None = OUTCOME_CATEGORIES) -> Agreement:
    """Compute percent agreement, pairwise kappas, Fleiss, Krippendorff and Gwet at once.

    Several coefficients because each fails differently: percent agreement ignores
    chance, kappas collapse under prevalence (the kappa paradox), alpha handles missing
    ratings, AC1 resists prevalence. Showing them together lets a reader see which
    story they tell. `categories` only affects AC1.
    """
    m = _label_matrix(matrix)
    return Agreement(
        n_items=int(m.shape[0]),
        n_raters=int(m.shape[1]),
        n_complete=int((~np.isnan(m).any(axis=1)).sum()),
        percent_all=percent_agreement(m),
        pairs=pairwise_agreement(m),
        fleiss_kappa=fleiss_kappa(m),
        krippendorff_alpha=krippendorff_alpha(m),
        gwet_ac1=gwet_ac1(m, categories),
    )


@dataclass(frozen=True, eq=False)
class MajorityVote:
    """Consensus outcome per item and the win rates of that consensus."""

    consensus: NDArray[np.float64]
    counts: Counts
    win_rate: float
    strict_win_rate: float


def majority_vote(matrix: ArrayLike) -> MajorityVote:
    """Consensus per item over judges (items x judges matrix of outcomes).

    The most frequent valid verdict wins; a tie between the top vote counts (e.g. one
    judge says win, one says loss) becomes a tie, since the panel did not decide;
    an item no judge answered validly stays NaN (invalid). One consensus per item
    stops a panel of three judges from tripling the apparent sample size.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"majority_vote needs an items x judges matrix, got shape {m.shape}")
    for col in m.T:
        _outcomes(col, "majority_vote labels")
    cats = np.asarray(OUTCOME_CATEGORIES)
    votes = np.stack([(m == c).sum(axis=1) for c in cats], axis=1)
    top = votes.max(axis=1)
    n_top = (votes == top[:, None]).sum(axis=1)
    consensus = np.where(n_top == 1, cats[votes.argmax(axis=1)], TIE)
    consensus = np.where(top == 0, np.nan, consensus)
    return MajorityVote(consensus, counts(consensus), win_rate(consensus), strict_win_rate(consensus))


# --------------------------------------------------------------------------- biases


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
        res = sps.fisher_exact(table, alternative="two-sided")
        odds, fisher_p = float(res.statistic), float(res.pvalue)
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
    combined = np.where(valid, np.where(same, first, TIE), np.nan)
    return PositionConsistency(float(same.sum() / n) if n else _NAN, n,
                               tuple(int(i) for i in flipped), reversals, combined)


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


def length_bias(outcomes: ArrayLike, len_ft: ArrayLike, len_base: ArrayLike, level: float = 0.95) -> LengthBias:
    """Split valid outcomes by which answer is longer; Wilson intervals, ties as halves."""
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
        res = sps.spearmanr(d, x)
        rho, p = float(res.statistic), float(res.pvalue)
    else:
        rho, p = _NAN, _NAN
    return LengthBias(
        longer=wilson_ci(float(longer.sum()), int(longer.size), level),
        shorter=wilson_ci(float(shorter.sum()), int(shorter.size), level),
        n_equal=int(np.sum(d == 0)),
        share_ft_longer=float(np.mean(d > 0)) if n else _NAN,
        spearman_rho=rho,
        p_value=p,
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


def _logit_fit(y: NDArray, x: NDArray) -> tuple[NDArray, bool]:
    """Maximum likelihood for logit P = a + b x with fractional targets y in [0, 1].

    A tie (y = 0.5) contributes half a win and half a loss to the likelihood.
    Coefficients are bounded to ±30 so that a run the fine-tune wins outright
    (perfect separation, where the MLE runs to infinity) still returns a number.
    """
    design = np.column_stack([np.ones_like(x), x])

    def nll(theta: NDArray) -> tuple[float, NDArray]:
        eta = design @ theta
        loss = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        grad = design.T @ (special.expit(eta) - y)
        return loss, grad

    res = optimize.minimize(nll, np.zeros(2), jac=True, method="L-BFGS-B",
                            bounds=[(-30.0, 30.0)] * 2, options={"gtol": 1e-10, "ftol": 1e-14})
    return res.x, bool(res.success)


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
    is plain maximum likelihood (scipy.optimize); ties count as half-weights. When all
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
        mean = float(np.clip(y.mean(), special.expit(-30.0), special.expit(30.0)))
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
        z = float(sps.norm.ppf(0.5 + level / 2.0))
        low, high = float(special.expit(theta[0] - z * se)), float(special.expit(theta[0] + z * se))
    return LengthControlled(
        win_rate=Interval(float(special.expit(theta[0])), low, high, level, method, n, n_groups),
        raw_win_rate=float(y.mean()),
        intercept=float(theta[0]),
        length_coef=float(theta[1]) if has_length else _NAN,
        length_scale=scale if has_length else _NAN,
    )


# --------------------------------------------------------------------------- Bradley–Terry


@dataclass(frozen=True, eq=False)
class BradleyTerry:
    """Bradley–Terry strengths for several contenders, with bootstrap intervals.

    `scores` are log-strengths relative to the `anchor` player (its score is 0), so
    P(i beats j) = sigmoid(scores[i] − scores[j]); `win_rate_vs_anchor` is that
    probability against the anchor. `low` / `high` are percentile bounds of the
    scores. A player not connected to the anchor by any chain of games has no
    defined score and is NaN.
    """

    scores: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    win_rate_vs_anchor: NDArray[np.float64]
    anchor: int
    n_games: int
    level: float
    converged: bool


def _bt_loglik(wins: NDArray, theta: NDArray) -> NDArray:
    diff = theta[:, :, None] - theta[:, None, :]
    return -(wins * np.logaddexp(0.0, -diff)).sum(axis=(1, 2))


def _bt_newton(wins: NDArray[np.float64], ref: int, max_iter: int = 100,
               tol: float = 1e-10) -> tuple[NDArray[np.float64], bool]:
    """Maximise the Bradley–Terry likelihood for a batch of win matrices at once.

    wins[b, i, j] = (fractional) wins of i over j in batch member b; every player
    must be connected to the others and have positive wins and losses (the prior
    guarantees it), which makes the log-likelihood strictly concave once player
    `ref` is pinned at 0. Newton's method with step halving then converges in a
    few iterations, for all bootstrap resamples together (batched linear solves).
    Returns log-strengths with theta[:, ref] = 0.
    """
    batch, n = wins.shape[0], wins.shape[1]
    games = wins + np.swapaxes(wins, 1, 2)
    won = wins.sum(axis=2)
    free = np.array([i for i in range(n) if i != ref], dtype=np.intp)
    theta = np.zeros((batch, n))
    current = _bt_loglik(wins, theta)
    for _ in range(max_iter):
        sig = special.expit(theta[:, :, None] - theta[:, None, :])
        grad = won - (games * sig).sum(axis=2)
        curv = games * sig * (1.0 - sig)
        neg_hess = np.einsum("bi,ij->bij", curv.sum(axis=2), np.eye(n)) - curv
        sub = neg_hess[:, free][:, :, free]
        try:
            step_free = np.linalg.solve(sub, grad[:, free][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step_free = (np.linalg.pinv(sub) @ grad[:, free][:, :, None])[:, :, 0]
        step = np.zeros_like(theta)
        step[:, free] = step_free
        size = np.ones(batch)
        for _ in range(40):  # halve the step wherever it would lower the likelihood
            candidate = theta + size[:, None] * step
            value = _bt_loglik(wins, candidate)
            worse = value < current - 1e-12 * np.abs(current)
            if not worse.any():
                break
            size = np.where(worse, size / 2.0, size)
        moved = np.max(np.abs(size[:, None] * step))
        theta, current = candidate, np.maximum(value, current)
        if moved < tol:
            return theta, True
    return theta, False


def _component(met: NDArray[np.bool_], start: int) -> NDArray[np.bool_]:
    """Players reachable from `start` through games actually played."""
    seen = np.zeros(len(met), dtype=bool)
    seen[start] = True
    frontier = [start]
    while frontier:
        nxt = np.flatnonzero(met[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        frontier = nxt.tolist()
    return seen


def bradley_terry(
    winner_idx: ArrayLike,
    loser_idx: ArrayLike,
    n_players: int,
    ties: ArrayLike | None = None,
    clusters: ArrayLike | None = None,
    anchor: int = 0,
    prior: float = 0.01,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BradleyTerry:
    """Maximum-likelihood Bradley–Terry fit over pairwise games, with bootstrap CIs.

    For more than two contenders a win rate per pair no longer ranks them; BT gives
    one strength per contender that explains all pairwise results. Row k says
    `winner_idx[k]` beat `loser_idx[k]`; where `ties[k]` is true the game was a tie
    and counts as half a win each way. `prior` (> 0) adds that many virtual tied
    games to every pair of players that met, so the maximum exists even when a
    contender never loses; with more than a handful of real games its pull is
    negligible. The bootstrap resamples games, or whole prompts when `clusters` is
    given, and fits all resamples together; intervals are percentiles. Players not
    connected to the anchor get NaN, and if the anchor played no game everything is NaN.
    """
    _check_level(level)
    if prior <= 0:
        raise ValueError(f"prior must be positive (it keeps the maximum finite), got {prior}")
    win = np.asarray(winner_idx, dtype=np.intp).reshape(-1)
    lose = np.asarray(loser_idx, dtype=np.intp).reshape(-1)
    _same_length("loser_idx", lose, len(win))
    tie = np.zeros(len(win), bool) if ties is None else np.asarray(ties, dtype=bool).reshape(-1)
    _same_length("ties", tie, len(win))
    if n_players < 2:
        raise ValueError(f"need at least two players, got {n_players}")
    if not 0 <= anchor < n_players:
        raise ValueError(f"anchor {anchor} is not a player index")
    if len(win) and (min(win.min(), lose.min()) < 0 or max(win.max(), lose.max()) >= n_players):
        raise ValueError("player index out of range")
    if np.any(win == lose):
        raise ValueError("a player cannot play itself")

    nan_result = np.full(n_players, np.nan)
    met = np.zeros((n_players, n_players), dtype=bool)
    met[win, lose] = True
    met |= met.T
    if not met[anchor].any():
        return BradleyTerry(nan_result, nan_result.copy(), nan_result.copy(), nan_result.copy(),
                            anchor, int(len(win)), level, True)
    group = np.flatnonzero(_component(met, anchor))
    ref = int(np.flatnonzero(group == anchor)[0])
    size = len(group)
    local = np.full(n_players, -1, dtype=np.intp)
    local[group] = np.arange(size)
    keep = local[win] >= 0  # games inside the anchor's component
    w_loc, l_loc, tie_loc = local[win[keep]], local[lose[keep]], tie[keep]
    cell_win = w_loc * size + l_loc
    cell_rev = l_loc * size + w_loc
    amount_win = np.where(tie_loc, 0.5, 1.0)
    amount_rev = np.where(tie_loc, 0.5, 0.0)
    prior_w = np.where(met[np.ix_(group, group)], prior / 2.0, 0.0)

    full = np.zeros(size * size)
    np.add.at(full, cell_win, amount_win)
    np.add.at(full, cell_rev, amount_rev)
    theta, converged = _bt_newton(full.reshape(1, size, size) + prior_w, ref)

    def spread(local_values: NDArray) -> NDArray:
        out = np.full(n_players, np.nan)
        out[group] = local_values
        return out

    scores = spread(theta[0])
    low, high = nan_result.copy(), nan_result.copy()
    codes = _cluster_codes(clusters, len(win))[keep]
    if codes.size and n_boot > 0:
        g = np.unique(codes, return_inverse=True)[1].reshape(-1)
        k = int(g.max()) + 1
        per_cluster = np.zeros((k, size * size))
        np.add.at(per_cluster, (g, cell_win), amount_win)
        np.add.at(per_cluster, (g, cell_rev), amount_rev)
        if k >= 2:
            boots = []
            for idx in cluster_resamples(k, n_boot, seed):
                rows = len(idx)
                offsets = (np.arange(rows, dtype=np.int64)[:, None] * k + idx).reshape(-1)
                times = np.bincount(offsets, minlength=rows * k).reshape(rows, k).astype(float)
                batch = (times @ per_cluster).reshape(rows, size, size) + prior_w
                fitted, ok = _bt_newton(batch, ref)
                boots.append(fitted)
                converged = converged and ok
            alpha = 1.0 - level
            bounds = np.quantile(np.concatenate(boots), [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
            low, high = spread(bounds[0]), spread(bounds[1])
    return BradleyTerry(
        scores=scores,
        low=low,
        high=high,
        win_rate_vs_anchor=special.expit(scores),
        anchor=anchor,
        n_games=int(len(win)),
        level=level,
        converged=converged,
    )
