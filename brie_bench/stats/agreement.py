"""Agreement between judges: percent agreement, Cohen/Fleiss kappa, Krippendorff alpha, Gwet AC1, majority vote."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brie_bench.stats.outcomes import (
    _NAN,
    OUTCOME_CATEGORIES,
    TIE_OUTCOME,
    Counts,
    _outcomes,
    _same_length,
    counts,
    strict_win_rate,
    win_rate,
)

KAPPA_PARADOX: str = (
    "Kappa can be low while judges agree 90% of the time because it discounts the agreement "
    "expected by chance from how often each judge uses each label, and when one outcome "
    "dominates (say most verdicts are 'fine-tune wins') chance agreement is already close to "
    "90%, so little is left above it: this prevalence effect is the kappa paradox, which is "
    "why Gwet's AC1 and raw percent agreement are shown alongside kappa."
)


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
    consensus = np.where(n_top == 1, cats[votes.argmax(axis=1)], TIE_OUTCOME)
    consensus = np.where(top == 0, np.nan, consensus)
    return MajorityVote(consensus, counts(consensus), win_rate(consensus), strict_win_rate(consensus))
