"""Style-controlled win rate: the win rate with length and markdown density regressed out.

Judges reward length and formatting. Chatbot Arena and Arena-Hard-Auto answer "did it win
on substance or on style?" by putting the length difference and markdown densities into
the logistic model as covariates; this module does the same for one fixed
candidate-versus-baseline orientation:

* per answer, after removing fenced code blocks (``` and ~~~), count markdown headers
  (ATX ``#`` lines), unordered list items (``-``, ``*``, ``+``), ordered list items
  (``1.`` / ``1)``) and bold spans (``**x**`` / ``__x__``), and measure the length in
  Unicode characters of the same stripped text (no tokenizer: the report never needs a
  model to read a run);
* per comparison, the normalised length difference (Lc − Lb)/(Lc + Lb) and for each count
  the density difference (dc − db)/(dc + db + 1) with d = count/(L + 1);
* each feature divided by its standard deviation but NOT centred: σ(β) is then the win
  rate when both answers have the same style. (Arena centres, which is harmless with
  battles oriented at random; with a fixed orientation centring would fold the style
  effect back into β.)

P(candidate wins) = σ(β + γᵀz) is fitted by maximum likelihood with ties as half a win
(fractional outcomes, Newton's method in numpy). Intervals resample whole prompts with
the same draws as every other bootstrap of the package (`draws.Draws`: a report's draws over
the whole run, or the statistic's own from (prompts, n_boot, seed)): each resample is the
same fit with the rows weighted by how often their prompt was drawn, computed by the
one-step (linearised) bootstrap: one Newton step from the full-data fit, from per-prompt
score and Hessian sums (`_one_step_bootstraps` says why that is sound and cheap).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brie_bench.stats import special
from brie_bench.stats.logistic import LOGIT_BOUND, logistic_fit
from brie_bench.stats.draws import SHARED_MIN_CLUSTERS, Draws, _cluster_codes
from brie_bench.stats.intervals import Interval
from brie_bench.stats.outcomes import _NAN, _check_level, _outcomes, _same_length

#: Markdown counts, in feature order after the length difference.
MARKDOWN_FEATURES: tuple[str, ...] = ("headers", "unordered_list_items", "ordered_list_items", "bold")
#: Every covariate of the fit, in order.
STYLE_FEATURES: tuple[str, ...] = ("length", *MARKDOWN_FEATURES)
#: What each covariate is called in a sentence: "judges favour the answer with more ...".
FEATURE_WORDS: dict[str, str] = {
    "length": "length", "headers": "headers", "unordered_list_items": "bulleted list items",
    "ordered_list_items": "numbered list items", "bold": "bold text",
}

_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ ]{0,3}\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_HEADER = re.compile(r"^[ ]{0,3}#{1,6}(?:[ \t]+|$)", re.MULTILINE)
_UNORDERED = re.compile(r"^[ \t]*[-*+][ \t]+\S", re.MULTILINE)
_ORDERED = re.compile(r"^[ \t]*\d{1,9}[.)][ \t]+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)[^\n]*?(?<=\S)\*\*|(?<!\w)__(?=\S)[^\n]*?(?<=\S)__(?!\w)")
_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
# The same patterns as `style_counts` runs them: a line start as a literal "\n" on "\n" + text
# (the regex engine then jumps from newline to newline instead of trying every position),
# and each bold alternative alone when the other's marker is absent (a literal prefix again).
_HEADER_NL = re.compile(r"\n[ ]{0,3}#{1,6}(?:[ \t]+|(?=\n)|\Z)")
_UNORDERED_NL = re.compile(r"\n[ \t]*[-*+][ \t]+\S")
_ORDERED_NL = re.compile(r"\n[ \t]*\d{1,9}[.)][ \t]+\S")
_BOLD_STARS = re.compile(r"\*\*(?=\S)[^\n]*?(?<=\S)\*\*")
_BOLD_UNDERSCORES = re.compile(r"(?<!\w)__(?=\S)[^\n]*?(?<=\S)__(?!\w)")
_UNDERSCORES = re.compile("__")

#: Coefficients are bounded here (on the scaled features); reaching it means the data separate.
_BOUND = LOGIT_BOUND
#: Draw counts gathered at once in the bootstrap's product (resamples x prompts): 16 MB as float32.
_BLOCK_CELLS = 1 << 22
#: Answers `style_count_table` joins into one string at most: about 1 MB of typical answers. A run's
#: answers joined whole (36 MB at 100,000 judgments) is fresh memory every time, and on a machine
#: where page faults are dear that cost more than the one regex pass per chunk saves.
_TEXTS_PER_JOIN = 1024


@dataclass(frozen=True)
class StyleCounts:
    """One answer's style: its length in characters and its markdown counts, fenced code removed."""

    length: int
    headers: int
    unordered_list_items: int
    ordered_list_items: int
    bold: int


def strip_code_blocks(text: str) -> str:
    """The text without its fenced code blocks (an unclosed fence runs to the end, as markdown renders it).

    Code is content, not formatting: a `#` comment or a `- x` line inside code is no
    header or list item, and a long code block should not count as markdown-heavy prose.
    """
    return _FENCE.sub("", text)


def style_counts(text: str) -> StyleCounts:
    """Markdown counts and length of one answer after removing fenced code blocks.

    Headers are ATX lines (``#`` to ``######`` then a space or the line's end; setext
    underlines are not counted); list items are lines starting with ``-``, ``*`` or ``+``
    (unordered) or a number and ``.`` or ``)`` (ordered), then a space and text; a
    horizontal rule (``---``, ``* * *``) is neither. Bold spans are ``**x**`` or
    ``__x__`` within one line. Length is the stripped text's characters.

    Each pattern runs only where its marker occurs (a report counts every answer; most
    prose has no `#`, `**` or fence), and line starts are matched as a literal newline;
    the counts are those of the plain multiline patterns (`_HEADER`, `_UNORDERED`, ...).
    """
    body = strip_code_blocks(text) if "```" in text or "~~~" in text else text
    lines = "\n" + body
    unordered = len(_UNORDERED_NL.findall(lines))
    if unordered and _RULE.search(body):  # "* * *" is a rule, not a list item
        unordered = len(_UNORDERED_NL.findall("\n" + _RULE.sub("", body)))
    stars, underscores = "**" in body, "__" in body
    bold_pattern = _BOLD if stars and underscores else _BOLD_STARS if stars else _BOLD_UNDERSCORES
    return StyleCounts(
        length=len(body),
        headers=len(_HEADER_NL.findall(lines)) if "#" in body else 0,
        unordered_list_items=unordered,
        ordered_list_items=len(_ORDERED_NL.findall(lines)),
        bold=len(bold_pattern.findall(body)) if stars or underscores else 0,
    )


def style_count_table(texts: Sequence[str]) -> NDArray[np.int64]:
    """(n, 5) `style_counts` of n answers, in `STYLE_FEATURES` order, each pattern run once over all of them.

    A report counts every distinct answer of a run (40,000 at 100,000 judgments); four
    regex calls per answer cost more in call overhead than in matching. The answers are
    joined, each as "\\n" + text + "\\n" with a NUL between them, and each pattern runs once
    over the whole: no pattern crosses a newline but at its start, and a match at a
    text's edge sees a newline where `style_counts` sees the text's start or end, which
    every pattern treats alike (`tests/report/test_report_columns.py` checks this against
    `style_counts`). Texts with fenced code or a NUL, and the rare text whose list items
    meet a horizontal rule, are counted alone by `style_counts`.
    """
    n = len(texts)
    if n > _TEXTS_PER_JOIN:  # a chunk at a time: see `_TEXTS_PER_JOIN`
        return np.concatenate([style_count_table(texts[i:i + _TEXTS_PER_JOIN]) for i in range(0, n, _TEXTS_PER_JOIN)])
    out = np.zeros((n, len(STYLE_FEATURES)), dtype=np.int64)
    if not n:
        return out
    out[:, 0] = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    joined = "\n" + "\n\0\n".join(texts) + "\n"
    alone: set[int] = set()
    if joined.count("\0") != n - 1 or "```" in joined or "~~~" in joined:
        alone = {i for i, t in enumerate(texts) if "\0" in t or "```" in t or "~~~" in t}
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(out[:-1, 0] + 3, out=starts[1:])

    def per_text(pattern: re.Pattern[str]) -> NDArray[np.int64]:
        at = np.fromiter((m.start() for m in pattern.finditer(joined)), dtype=np.int64)
        return np.bincount(np.searchsorted(starts, at, side="right") - 1, minlength=n)

    if alone:  # a NUL inside a text would shift every later text's boundary: count without them
        kept = [i for i in range(n) if i not in alone]
        if kept:
            out[kept] = style_count_table([texts[i] for i in kept])
        for i in alone:
            c = style_counts(texts[i])
            out[i] = (c.length, c.headers, c.unordered_list_items, c.ordered_list_items, c.bold)
        return out
    out[:, 1] = per_text(_HEADER_NL)
    out[:, 2] = per_text(_UNORDERED_NL)
    out[:, 3] = per_text(_ORDERED_NL)
    # Bold: the stars' pattern has a literal prefix and runs fast over everything; a text that
    # also holds "__" (rare) is counted alone, with the pattern `style_counts` picks for it.
    out[:, 4] = per_text(_BOLD_STARS)
    for i in np.unique(np.searchsorted(starts, [m.start() for m in _UNDERSCORES.finditer(joined)],
                                       side="right") - 1).tolist():
        text = texts[i]
        out[i, 4] = len((_BOLD if "**" in text else _BOLD_UNDERSCORES).findall(text))
    for i in np.flatnonzero(out[:, 2]).tolist():
        if _RULE.search(texts[i]):  # "* * *" is a rule, not a list item
            out[i, 2] = style_counts(texts[i]).unordered_list_items
    return out


def style_differences(candidate: StyleCounts, baseline: StyleCounts) -> NDArray[np.float64]:
    """The unscaled features of one comparison, in `STYLE_FEATURES` order.

    Length: (Lc − Lb)/(Lc + Lb) (0 when both are empty). Each markdown count: the
    density difference (dc − db)/(dc + db + 1), d = count/(L + 1), so a long answer
    with two lists is not "more list-heavy" than a short one with two.
    """
    lc, lb = candidate.length, baseline.length
    out = [(lc - lb) / (lc + lb) if lc + lb else 0.0]
    for name in MARKDOWN_FEATURES:
        dc = getattr(candidate, name) / (lc + 1.0)
        db = getattr(baseline, name) / (lb + 1.0)
        out.append((dc - db) / (dc + db + 1.0))
    return np.asarray(out, dtype=float)


def style_features(texts_ft: list[str], texts_base: list[str]) -> NDArray[np.float64]:
    """(n, 5) unscaled features for n comparisons (candidate texts against baseline texts)."""
    if len(texts_ft) != len(texts_base):
        raise ValueError(f"texts_base has {len(texts_base)} rows, expected {len(texts_ft)}")
    rows = [style_differences(style_counts(a), style_counts(b)) for a, b in zip(texts_ft, texts_base)]
    return np.asarray(rows, dtype=float).reshape(len(rows), len(STYLE_FEATURES))


def _one_step_bootstraps(y: NDArray[Any], z: NDArray[Any], theta: NDArray[Any], prompts: NDArray[np.intp],
                         draws: Draws, bound: float) -> NDArray[np.float64]:
    """(resamples, k): each prompt-clustered resample's coefficients by the one-step (linearised) bootstrap.

    Resample b weights the rows of prompt j by c_bj, how often `draws` drew it. Refitting
    each resample costs n·k² per Newton step, several steps, 2,000 times per judge, which
    was most of a report's time. Instead the full-data fit θ̂ is linearised once: per
    prompt j the score sum G_j = Σ x_i (y_i − p̂_i) (j × k) and the Hessian sum
    H_j = Σ p̂_i (1 − p̂_i) x_i x_iᵀ (j × k × k), both at θ̂; then

        θ_b = θ̂ + (Σ_j c_bj H_j)⁻¹ (Σ_j c_bj G_j),

    exactly the first Newton step of the refit from θ̂ (where the refit path started), and
    first-order equivalent to refitting: the difference is O(1/n) against the O(1/√n)
    spread of the resamples (the "one-step" or estimating-equation bootstrap; see
    docs/statistics.md). Both sums over prompts are one matrix product of the draw counts
    with the (prompts × (k + k²)) aggregates (`Draws.totals`), so a resample costs k² per
    prompt, not n·k² per Newton step, and then one k × k solve (batched).

    A resample whose Hessian is singular (no drawn prompt varies in some direction: e.g.
    none drawn at all) does not move in that direction, as the refit did, where the
    gradient there is zero too: the solve is a pseudo-inverse over the eigenvalues above
    1e-10 of the largest. Coefficients are clipped to ±`bound`, as the refit's were.
    `prompts` are the rows' prompt numbers (columns of `draws`).
    """
    n, k = z.shape
    prob = special.expit(z @ theta)
    score = z * (y - prob)[:, None]
    curv = (z * (prob * (1.0 - prob))[:, None])[:, :, None] * z[:, None, :]
    order = np.argsort(prompts, kind="stable")
    sorted_prompts = prompts[order]
    starts = np.flatnonzero(np.r_[True, sorted_prompts[1:] != sorted_prompts[:-1]])
    per_prompt = np.add.reduceat(np.column_stack([score, curv.reshape(n, k * k)])[order], starts, axis=0)
    totals = _count_products(draws, sorted_prompts[starts], per_prompt)
    grad, hess = totals[:, :k], totals[:, k:].reshape(-1, k, k)
    hess = 0.5 * (hess + hess.transpose(0, 2, 1))
    values, vectors = np.linalg.eigh(hess)
    top = np.max(np.abs(values), axis=1, keepdims=True)
    keep = values > 1e-10 * top
    inverse = np.divide(1.0, values, out=np.zeros_like(values), where=keep)
    step = np.einsum("bij,bj,bkj,bk->bi", vectors, inverse, vectors, grad, optimize=True)
    return np.asarray(np.clip(theta[None, :] + step, -bound, bound), dtype=np.float64)


def _count_products(draws: Draws, prompts: NDArray[np.intp], columns: NDArray[Any]) -> NDArray[np.float64]:
    """counts[:, prompts] @ columns (resamples x columns), in float32, a block of resamples at a time.

    Why float32 and not `Draws.totals`: these columns (score and Hessian sums) are not
    exact in float32, so `totals` would take its float64 path, several times slower for
    this shape, and this product is most of the style bootstrap's time. The rounding it
    adds (relative 1e-7 of the resample's score and Hessian totals, so of θ_b − θ̂) is
    far below the bootstrap's Monte Carlo error (about 1% of an interval's width).
    Blocks of `_BLOCK_CELLS` counts bound the gathered copy at 16 MB. When the prompts are
    at least half the draws' columns (a judge over a whole run), the columns are instead
    spread over all prompts with zero rows for the others, and the product is one BLAS
    call over the whole float32 count matrix: gathering most of a 2,000 x 20,000 matrix
    cost more than multiplying its few extra columns by zero.
    """
    drawn = draws.counts()
    counts = drawn.counts
    rhs = np.asarray(columns, dtype=np.float32)
    whole = len(prompts) == counts.shape[1]  # every prompt, in order (the statistic's own draws)
    if counts.dtype == np.float32 and 2 * len(prompts) >= counts.shape[1]:
        spread = rhs if whole else np.zeros((counts.shape[1], rhs.shape[1]), dtype=np.float32)
        if not whole:
            spread[prompts] = rhs
        return drawn.matmul(spread)  # float32 counts and columns: one BLAS product
    out = np.empty((counts.shape[0], rhs.shape[1]))
    step = max(1, _BLOCK_CELLS // max(1, len(prompts)))
    for start in range(0, counts.shape[0], step):
        block = counts[start:start + step]
        block = block if whole else np.take(block, prompts, axis=1)
        out[start:start + step] = np.matmul(block.astype(np.float32, copy=False), rhs)
    return out


def _resample_draws(clusters: ArrayLike | None, valid: NDArray[np.bool_], g: NDArray[Any], n_groups: int,
                    n_boot: int, seed: int, draws: Draws | None) -> tuple[Draws, NDArray[np.intp]]:
    """The draws to resample with, and each valid row's prompt number among its columns.

    A report's run-wide `draws` is used, restricted to these prompts, when `clusters` are its
    prompt numbers and cover at least `SHARED_MIN_CLUSTERS` of them (as the mean bootstraps
    do); otherwise the statistic's own draws over its K prompts, numbered in sorted order.
    """
    if draws is not None and clusters is not None and n_groups >= SHARED_MIN_CLUSTERS:
        numbers = np.asarray(clusters)
        if numbers.dtype.kind in "iu" and len(numbers) and int(numbers.min()) >= 0 \
                and int(numbers.max()) < draws.n_clusters and draws.n_boot == n_boot and draws.seed == seed:
            return draws, np.asarray(numbers[valid], dtype=np.intp)
    return Draws(n_groups, n_boot, seed), np.asarray(g, dtype=np.intp)


@dataclass(frozen=True)
class StyleCoefficient:
    """One style covariate: its coefficient per standard deviation of the feature, with its interval.

    Positive: the judge favours the answer with more of it (longer, more list items).
    `scale` is the feature's standard deviation over the comparisons (what "per SD"
    means); a feature that never differed has no coefficient (NaN) and `constant` True.
    """

    feature: str
    coef: Interval
    scale: float
    constant: bool = False

    def sentence(self) -> str | None:
        """'judges favour the answer with more list items (+0.4 per SD)', or None when nothing is shown.

        Only a coefficient whose interval excludes zero is stated as a preference; one whose
        interval spans zero says no clear preference.
        """
        c = self.coef
        if self.constant or not math.isfinite(c.estimate):
            return None
        words = FEATURE_WORDS.get(self.feature, self.feature)
        if c.reliable and (c.low > 0.0 or c.high < 0.0):
            side = "more" if c.estimate > 0 else "less"
            noun = "the longer answer" if self.feature == "length" and c.estimate > 0 else (
                "the shorter answer" if self.feature == "length" else f"the answer with {side} {words}")
            return f"judges favour {noun} ({c.estimate:+.1f} per SD)"
        return f"no clear preference for {words} ({c.estimate:+.1f} per SD)"


@dataclass(frozen=True)
class StyleControlled:
    """The style-controlled win rate σ(β) and the style coefficients γ, each with its interval."""

    win_rate: Interval
    raw_win_rate: float
    intercept: float
    coefficients: tuple[StyleCoefficient, ...]
    #: The fit separates (no finite maximum): `win_rate.problem` says "cannot be estimated: ...".
    at_bound: bool = False

    def sentences(self) -> list[str]:
        """The plain-words coefficient lines for the coefficients that can be stated."""
        return [s for s in (c.sentence() for c in self.coefficients) if s]


def style_controlled_win_rate(
    outcomes: ArrayLike,
    features: ArrayLike,
    clusters: ArrayLike | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    names: tuple[str, ...] = STYLE_FEATURES,
    draws: Draws | None = None,
) -> StyleControlled:
    """Fit P(win) = σ(β + γᵀz) on `features` (n, k; see `style_features`) scaled by their SD, not centred.

    The style-controlled rate is σ(β): the predicted win rate when both answers have the
    same style (every difference zero). Intervals are percentile intervals over
    `n_boot` prompt-clustered resamples, the rows weighted by their prompt's draw count;
    each resample's fit is the one-step bootstrap from the full-data fit (first-order
    equivalent to refitting; see `_one_step_bootstraps`). The draws are `draws` (a report's over the whole run: then
    `clusters` are the run's prompt numbers) where it applies, as for every other bootstrap,
    else the statistic's own `Draws(K, n_boot, seed)`.
    A feature constant at zero is left out of the fit; one that varies but whose
    standard deviation is zero cannot occur. When the fit separates (every valid verdict
    the same way, or a coefficient reaching the ±30 bound) the rate "cannot be
    estimated", as for the length-controlled rate.
    """
    _check_level(level)
    y_all = _outcomes(outcomes)
    x_all = np.asarray(features, dtype=float).reshape(len(y_all), -1)
    if x_all.shape[1] != len(names):
        raise ValueError(f"features have {x_all.shape[1]} columns, expected {len(names)}")
    codes_all = _cluster_codes(clusters, len(y_all))
    _same_length("features", x_all, len(y_all))
    valid = ~(np.isnan(y_all) | np.isnan(x_all).any(axis=1))
    y, x, codes = y_all[valid], x_all[valid], codes_all[valid]
    n = int(y.size)
    method = "cluster-bootstrap logit" if clusters is not None else "bootstrap logit"
    g = np.unique(codes, return_inverse=True)[1].reshape(-1)
    n_groups = int(g.max()) + 1 if n else 0

    def empty(problem: str | None = None) -> StyleControlled:
        nan_iv = Interval(_NAN, _NAN, _NAN, level, method, n, n_groups, problem)
        return StyleControlled(nan_iv, float(y.mean()) if n else _NAN, _NAN,
                               tuple(StyleCoefficient(f, nan_iv, _NAN, True) for f in names), problem is not None)

    if n == 0:
        return empty()
    scales = np.std(x, axis=0, ddof=1) if n > 1 else np.zeros(x.shape[1])
    used = np.isfinite(scales) & (scales > 0.0)
    z = np.column_stack([np.ones(n), x[:, used] / scales[used]])
    wins, losses = y > 0, y < 1
    why: str | None = None
    if not wins.any() or not losses.any():
        why = "every valid verdict goes the same way"
    theta, _ = logistic_fit(y, z)
    if why is None and np.any(np.abs(theta) >= _BOUND - 1e-3):
        why = "the style features separate wins from losses (a coefficient reached the optimiser's bound)"
    if why is not None:
        return empty(f"cannot be estimated: {why}, so the logistic fit has no finite maximum and its "
                     "estimate and interval are artefacts of where the optimiser stopped")
    boots = None
    if n_groups >= 2:
        use, prompts = _resample_draws(clusters, valid, g, n_groups, n_boot, seed, draws)
        boots = _one_step_bootstraps(y, z, theta, prompts, use, _BOUND)
    alpha = 1.0 - level

    def interval(j: int, transform: Any = None) -> Interval:
        est = float(theta[j]) if transform is None else float(transform(theta[j]))
        if boots is None:
            return Interval(est, _NAN, _NAN, level, method, n, n_groups)
        col = boots[:, j] if transform is None else transform(boots[:, j])
        low, high = np.quantile(col, [alpha / 2.0, 1.0 - alpha / 2.0])
        return Interval(est, float(low), float(high), level, method, n, n_groups)

    coefs = []
    j = 1
    for name, use, scale in zip(names, used.tolist(), scales.tolist()):
        if use:
            coefs.append(StyleCoefficient(name, interval(j), float(scale)))
            j += 1
        else:
            coefs.append(StyleCoefficient(name, Interval(_NAN, _NAN, _NAN, level, method, n, n_groups),
                                          float(scale) if math.isfinite(scale) else _NAN, True))
    return StyleControlled(
        win_rate=interval(0, special.expit),
        raw_win_rate=float(y.mean()),
        intercept=float(theta[0]),
        coefficients=tuple(coefs),
    )
