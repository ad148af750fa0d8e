"""The few special functions the statistics need, without importing scipy.

Why this exists: `import scipy.special` costs ~0.3 s on this machine, most of it not in
scipy.special at all: scipy >= 1.15 builds an array-API namespace for numpy at import
(`scipy._lib._array_api` -> `array_api_compat.numpy.clone_module`), which touches every
name in `dir(numpy)` and so imports numpy's lazy submodules (`numpy.f2py`, `numpy.testing`,
`numpy.ma`, ...). Every `brie-bench report` and `run --dry-run --power` paid for it, for
a handful of scalar evaluations. This module provides exactly what `brie_bench.stats` and
`brie_bench.power` call, with the same names, arguments and edge-case behaviour as
`scipy.special`, on `math` and numpy alone:

* `expit`, `logit` -- elementwise over numpy arrays and scalars (scipy's formulas, with
  no overflow or divide warnings);
* `ndtri` -- the normal quantile (`statistics.NormalDist.inv_cdf`, Wichura's AS241);
* `betainc`, `betaincinv` -- the regularized incomplete beta function and its inverse;
* `stdtr`, `stdtrit` -- Student's t CDF and quantile;
* `bdtr`, `bdtrc` -- the binomial CDF and survival function.

Everything but `expit`/`logit` is scalar: the statistics call them once or twice per
interval or test. (Arrays are accepted and mapped element by element, for convenience.)

How `betainc` stays accurate, including for parameters up to ~10^6 (sign tests and
Clopper-Pearson intervals over many judgments, t with many degrees of freedom):

* the continued fraction (modified Lentz) is evaluated on the side where it converges
  (x below the mean, otherwise by the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)); the side
  computed directly is the small tail, so tiny p-values keep full relative accuracy;
* the prefactor x^a (1-x)^b / B(a, b) is formed in log space; where a parameter is large,
  `lgamma` differences would cancel catastrophically (lgamma(10^6) ~ 1.3e7 carries an
  absolute error ~1e-9), so Stirling's series with its correction term mu(z) is used
  instead, and the exponent is written as -(a*phi(u) + b*phi(v)), phi(t) = t - log(1+t),
  which has no cancellation near the mode (Temme / TOMS 708's approach);
* the caller passes x and y = 1 - x separately and the smaller one is trusted, so
  x near 1 (t CDF with many degrees of freedom) loses nothing to rounding 1 - x.

The inverses solve on the same small-tail side with Newton steps on log(I/p), safeguarded
by a bracket and (geometric) bisection, to the last ulp. tests/core/test_special_functions.py
checks every function against scipy.special (kept as a test-only reference) to ~1e-12
relative over the ranges used here, and the edge cases (NaN, p in {0, 1}, k < 0, k >= n).

One deliberate difference: `stdtrit(df, 0)` is -inf (scipy 1.17 answers +inf).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["expit", "logit", "ndtri", "betainc", "betaincinv", "stdtr", "stdtrit", "bdtr", "bdtrc"]

_NAN = math.nan
_INF = math.inf
_EPS = 2.220446049250313e-16
_LOG_2PI = math.log(2.0 * math.pi)
#: Below this, a parameter's log-gamma is taken from `math.lgamma` (small absolute error);
#: at or above it, from Stirling's series, whose remainder here is below 1e-17.
_STIRLING_MIN = 10.0
_STANDARD_NORMAL = NormalDist()


# --------------------------------------------------------------------------- elementwise

def expit(x: ArrayLike) -> Any:
    """The logistic function 1 / (1 + exp(-x)), elementwise, without overflow warnings."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    e = np.exp(-np.abs(arr))           # in (0, 1]: never overflows
    r = 1.0 / (1.0 + e)
    out = np.where(arr >= 0, r, e * r)  # NaN fails the test and propagates through e * r
    return out[()] if out.ndim == 0 else out


def logit(p: ArrayLike) -> Any:
    """log(p / (1 - p)), elementwise; -inf at 0, inf at 1, NaN outside [0, 1] (as scipy)."""
    arr = np.asarray(p)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = np.log(arr / (1.0 - arr))
        s = 2.0 * (arr - 0.5)  # scipy's form near 1/2, where the ratio loses digits
        near_half = np.log1p(s) - np.log1p(-s)
        out = np.where((arr < 0.3) | (arr > 0.65), plain, near_half)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- scalar plumbing

def _scalar_or_map(func: Callable[..., float]) -> Callable[..., Any]:
    """Let a scalar function take arrays too (element by element), as scipy's ufuncs do."""
    mapped = np.vectorize(func, otypes=[np.float64])

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        if all(np.ndim(a) == 0 for a in args):
            return func(*(float(a) for a in args))
        return mapped(*args)

    return wrapper


def _stirling_mu(z: float) -> float:
    """lgamma(z) - [(z - 1/2) log z - z + log(2 pi) / 2], for z >= 10 (error < 1e-17)."""
    w = 1.0 / (z * z)
    return (1.0 / 12.0 + w * (-1.0 / 360.0 + w * (1.0 / 1260.0 + w * (-1.0 / 1680.0 + w * (
        1.0 / 1188.0 + w * (-691.0 / 360360.0 + w * (1.0 / 156.0 + w * (-3617.0 / 122400.0)))))))) / z


def _phi(t: float, log1p_t: float) -> float:
    """t - log(1 + t) without cancellation; `log1p_t` is log(1 + t), used away from 0."""
    if -0.5 <= t <= 0.5:
        r = t / (2.0 + t)      # log(1 + t) = 2 atanh(r) and t - 2r = r t
        r2 = r * r
        term, total, k = r2, 0.0, 3.0
        while True:
            add = term / k
            total += add
            if add <= 1e-17 * total:
                break
            term *= r2
            k += 2.0
        return r * t - 2.0 * r * total
    return t - log1p_t


def _log_prefactor(a: float, b: float, x: float, y: float) -> float:
    """log(x^a y^b / B(a, b)) with y = 1 - x; the smaller of x, y is the accurate one."""
    if x <= y:
        lx, ly = math.log(x), math.log1p(-x)
    else:
        lx, ly = math.log1p(-y), math.log(y)
    if a >= _STIRLING_MIN and b >= _STIRLING_MIN:
        # 1/B(a,b) = sqrt(ab / (2 pi c)) (c/a)^a (c/b)^b exp(mu(c) - mu(a) - mu(b)), c = a + b,
        # and a log(x c / a) + b log(y c / b) = -(a phi(u) + b phi(v)), u = d/a, v = -d/b,
        # d = x b - y a (since a u + b v = 0).
        c = a + b
        d = x * b - y * a
        u, v = d / a, -d / b
        log_u1 = lx + math.log1p(b / a)  # log(1 + u) = log(x c / a)
        log_v1 = ly + math.log1p(a / b)
        exponent = -(a * _phi(u, log_u1) + b * _phi(v, log_v1))
        return (exponent + 0.5 * (math.log(a / c) + math.log(b) - _LOG_2PI)
                + _stirling_mu(c) - _stirling_mu(a) - _stirling_mu(b))
    return a * lx + b * ly + _log_inv_beta(a, b)


def _log_inv_beta(a: float, b: float) -> float:
    """-log B(a, b), by Stirling's series for the shapes >= _STIRLING_MIN."""
    if a >= _STIRLING_MIN and b >= _STIRLING_MIN:
        c = a + b
        return (0.5 * (math.log(a / c) + math.log(b) - _LOG_2PI) + a * math.log1p(b / a) + b * math.log1p(a / b)
                + _stirling_mu(c) - _stirling_mu(a) - _stirling_mu(b))
    if a >= _STIRLING_MIN or b >= _STIRLING_MIN:
        big, small = (a, b) if a >= b else (b, a)
        # lgamma(big + small) - lgamma(big), by Stirling: no cancellation of two huge lgammas.
        ratio = ((big - 0.5) * math.log1p(small / big) + small * math.log(big + small) - small
                 + _stirling_mu(big + small) - _stirling_mu(big))
        return ratio - math.lgamma(small)
    return math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)


def _prefactor(a: float, b: float, x: float, y: float, log_pref: float) -> float:
    """x^a y^b / B(a, b), with the power of the small variable from `pow` where that is better.

    exp(a log x) carries an absolute error ~1e-16 |a log x| in the exponent, ~1e-13
    relative once x^a nears 1e-300; `pow` rounds once, leaving the error of the rest of
    the exponent, ~1e-16 |log B(a, b)|. Near the mean with both shapes large, x^a
    underflows or log B is the larger term: there the cancellation-free exponent of
    `_log_prefactor` is used, and what is left is x's own conditioning.
    """
    lbinv = _log_inv_beta(a, b)
    if x <= y:
        power, rest, big_term = math.pow(x, a), b * math.log1p(-x) + lbinv, a * math.log(x)
    else:
        power, rest, big_term = math.pow(y, b), a * math.log1p(-y) + lbinv, b * math.log(y)
    # not subnormal (pow's digits run out), no overflow, and the power is the larger error
    if power > 1e-307 and rest < 700.0 and abs(big_term) > 4.0 * abs(lbinv):
        return power * math.exp(rest)
    return math.exp(log_pref)


def _continued_fraction(a: float, b: float, x: float, y: float) -> float:
    """DiDonato & Morris's continued fraction F, with I_x(a, b) = x^a y^b / (B(a, b) F).

    The form Boost and TOMS 708 (`bfrac`) use: its terms are written with both x and
    y = 1 - x, so x near 1 costs no digits (the textbook fraction's "1 - (a+b)x/(a+1)"
    loses ~1e-10 there once a is large). Evaluated by the modified Lentz method on the
    side of the mean where it converges fast, a - (a + b) x >= 0.
    """
    tiny = 1e-300
    f = a * (a * y - b * x + 1.0) / (a + 1.0)  # b_0 (a_0 = 0)
    if f == 0.0:
        f = tiny
    c, d = f, 0.0
    limit = 1000 + 20 * int(math.sqrt(max(a, b)))
    for m in range(1, limit):
        denom = a + 2.0 * m - 1.0
        an = (a + m - 1.0) * (a + b + m - 1.0) * m * (b - m) * x * x / (denom * denom)
        bn = m + m * (b - m) * x / denom + (a + m) * (a * y - b * x + 1.0 + m * (2.0 - x)) / (a + 2.0 * m + 1.0)
        d = bn + an * d
        if d == 0.0:
            d = tiny
        c = bn + an / c
        if c == 0.0:
            c = tiny
        d = 1.0 / d
        delta = c * d
        f *= delta
        if abs(delta - 1.0) <= _EPS:
            break
    return f


def _betainc_pair(a: float, b: float, x: float, y: float) -> tuple[float, float, float]:
    """(I_x(a, b), 1 - I_x(a, b), log prefactor) for a, b > 0 and 0 < x < 1, y = 1 - x.

    The value on the side computed directly (the smaller tail, in practice) carries full
    relative accuracy; the other is one minus it.
    """
    log_pref = _log_prefactor(a, b, x, y)
    if a == 1.0 or b == 1.0:  # closed forms: I_x(a, 1) = x^a, I_x(1, b) = 1 - y^b (exact at x = 1/2)
        if b == 1.0:
            lx = math.log(x) if x <= y else math.log1p(-y)
            return (math.pow(x, a) if x <= y else math.exp(a * lx)), -math.expm1(a * lx), log_pref
        ly = math.log(y) if y <= x else math.log1p(-x)
        return -math.expm1(b * ly), (math.pow(y, b) if y <= x else math.exp(b * ly)), log_pref
    lam = a - (a + b) * x if a < b else (a + b) * y - b  # >= 0: x at or below the mean
    pref = _prefactor(a, b, x, y, log_pref)
    if lam >= 0:
        low = pref / _continued_fraction(a, b, x, y)
        return low, 1.0 - low, log_pref
    high = pref / _continued_fraction(b, a, y, x)
    return 1.0 - high, high, log_pref


def _edge_betainc(a: float, b: float, x: float) -> float | None:
    """scipy's answers where the continued fraction does not apply; None where it does."""
    if math.isnan(a) or math.isnan(b) or math.isnan(x) or a < 0 or b < 0 or not 0.0 <= x <= 1.0:
        return _NAN
    if a == 0 or b == 0 or math.isinf(a) or math.isinf(b):
        if (a == 0 and b == 0) or (math.isinf(a) and math.isinf(b)):
            return _NAN
        return 1.0 if (a == 0 or math.isinf(b)) else 0.0
    if x == 0.0:
        return 0.0
    if x == 1.0:
        return 1.0
    return None


@_scalar_or_map
def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    edge = _edge_betainc(a, b, x)
    if edge is not None:
        return edge
    return _betainc_pair(a, b, x, 1.0 - x)[0]


# --------------------------------------------------------------------------- inverse

def _initial_guess(a: float, b: float, p: float, q: float) -> float:
    """A starting x with I_x(a, b) ~ p, q = 1 - p (Numerical Recipes' invbetai / AS 109 start)."""
    try:
        return _guess(a, b, p, q)
    except (ArithmeticError, ValueError):
        return 0.25


def _guess(a: float, b: float, p: float, q: float) -> float:
    if a >= 1.0 and b >= 1.0:
        pp = p if p < 0.5 else q
        t = math.sqrt(-2.0 * math.log(pp))
        z = (2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t
        if p < 0.5:
            z = -z
        al = (z * z - 3.0) / 6.0
        h = 2.0 / (1.0 / (2.0 * a - 1.0) + 1.0 / (2.0 * b - 1.0))
        w = z * math.sqrt(al + h) / h - (1.0 / (2.0 * b - 1.0) - 1.0 / (2.0 * a - 1.0)) * (
            al + 5.0 / 6.0 - 2.0 / (3.0 * h)) if al + h > 0 else 0.0
        e = 2.0 * w
        return a / (a + b * math.exp(e)) if e < 700 else 0.0
    lna, lnb = math.log(a / (a + b)), math.log(b / (a + b))
    t, u = math.exp(a * lna) / a, math.exp(b * lnb) / b
    w = t + u
    if p < t / w:
        return math.pow(a * w * p, 1.0 / a)
    return 1.0 - math.pow(b * w * q, 1.0 / b)


def _solve_low(a: float, b: float, p: float, q: float) -> float:
    """The x in (0, 1/2] with I_x(a, b) = p (q = 1 - p; the smaller of p, q is trusted).

    Newton on log(I/p) (or log(q/(1 - I)) when q < p, so the small tail is the one
    compared), kept inside a bracket, falling back to bisection -- geometric while the
    bracket spans orders of magnitude -- until the step is below an ulp.
    """
    lo, hi = 0.0, 0.5
    x = _initial_guess(a, b, p, q)
    if not 0.0 < x < 0.5:
        x = 0.25
    use_low_tail = p <= q
    for _ in range(400):
        if x <= 0.0:  # the root is below the smallest double
            return 0.0
        y = 1.0 - x
        low, high, log_pref = _betainc_pair(a, b, x, y)
        if use_low_tail:
            g = math.log(low / p) if low > 0 else -_INF
            tail = low
        else:
            g = math.log(q / high) if high > 0 else _INF
            tail = high
        if g == 0.0:
            return x
        if g < 0:
            lo = x
        else:
            hi = x
        slope = math.exp(log_pref - math.log(x) - math.log1p(-x))  # dI/dx
        step = -g * tail / slope if slope > 0 and math.isfinite(g) else _NAN
        new = x + step
        if not lo < new < hi or not math.isfinite(new):
            if lo > 0 and hi > 4.0 * lo:
                new = math.sqrt(lo * hi)
            elif lo == 0:
                new = max(hi * 1e-4, 2.2e-162 * math.sqrt(hi))  # ~ sqrt(smallest double * hi)
            else:
                new = 0.5 * (lo + hi)
        if abs(new - x) <= 2.0 * _EPS * x or hi - lo <= 2.0 * _EPS * hi:
            return new
        if new in (lo, hi):
            return new
        x = new
    return x


def _betaincinv_pair(a: float, b: float, p: float, q: float) -> tuple[float, float]:
    """(x, 1 - x) with I_x(a, b) = p, for a, b > 0, 0 < p < 1, q = 1 - p; the small one accurate."""
    # Solve for whichever of x, 1 - x lies in (0, 1/2]: the root is below 1/2 iff I_{1/2} >= p.
    low_half, high_half, _ = _betainc_pair(a, b, 0.5, 0.5)
    if (low_half >= p) if p <= q else (high_half <= q):
        x = _solve_low(a, b, p, q)
        return x, 1.0 - x
    y = _solve_low(b, a, q, p)
    return 1.0 - y, y


@_scalar_or_map
def betaincinv(a: float, b: float, y: float) -> float:
    """The x in [0, 1] with I_x(a, b) = y."""
    if math.isnan(a) or math.isnan(b) or math.isnan(y) or a <= 0 or b <= 0 or not 0.0 <= y <= 1.0:
        return _NAN
    if y == 0.0 or y == 1.0:
        return y
    return _betaincinv_pair(a, b, y, 1.0 - y)[0]


# --------------------------------------------------------------------------- distributions

@_scalar_or_map
def ndtri(p: float) -> float:
    """The standard normal quantile: the z with Phi(z) = p."""
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        return _NAN
    if p == 0.0:
        return -_INF
    if p == 1.0:
        return _INF
    return _STANDARD_NORMAL.inv_cdf(p)


def _t_split(df: float, t: float) -> tuple[float, float]:
    """(df / (df + t^2), t^2 / (df + t^2)), each computed directly (no 1 - x), overflow-free."""
    if abs(t) > math.sqrt(df):
        r = (df / t) / t
        return r / (1.0 + r), 1.0 / (1.0 + r)
    r = (t / df) * t
    return 1.0 / (1.0 + r), r / (1.0 + r)


@_scalar_or_map
def stdtr(df: float, t: float) -> float:
    """Student's t CDF with `df` degrees of freedom, P(T <= t)."""
    if math.isnan(df) or math.isnan(t) or df <= 0:
        return _NAN
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    if t == 0.0:
        return 0.5
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    x, y = _t_split(df, t)
    if y == 0.0:
        return 0.5
    if x == 0.0:
        return 1.0 if t > 0 else 0.0
    low, _, _ = _betainc_pair(0.5 * df, 0.5, x, y)
    tail = 0.5 * low  # P(T <= -|t|)
    return tail if t < 0 else 1.0 - tail


@_scalar_or_map
def stdtrit(df: float, p: float) -> float:
    """Student's t quantile: the t with stdtr(df, t) = p."""
    if math.isnan(df) or math.isnan(p) or df <= 0 or not 0.0 <= p <= 1.0:
        return _NAN
    if p == 0.0:
        return -_INF
    if p == 1.0:
        return _INF
    if p == 0.5:
        return 0.0
    if math.isinf(df):
        return _STANDARD_NORMAL.inv_cdf(p)
    tail = p if p < 0.5 else 1.0 - p  # exact for p > 1/2 (Sterbenz)
    x, y = _betaincinv_pair(0.5 * df, 0.5, 2.0 * tail, 1.0 - 2.0 * tail)
    t = math.sqrt(df * (y / x)) if x > 0 else _INF
    return -t if p < 0.5 else t


#: Up to this many trials the binomial tails are summed term by term, as Boost (scipy) does
#: for small integer shapes: exact at p = 1/2, so a sign test over a few prompts reads 0.25.
_BINOMIAL_SUM_MAX_N = 50


def _binomial_sum(lo: int, hi: int, n: int, p: float) -> float:
    """sum_{j=lo..hi} C(n, j) p^j (1-p)^(n-j), for small n."""
    q = 1.0 - p
    return math.fsum(math.comb(n, j) * math.pow(p, j) * math.pow(q, n - j) for j in range(lo, hi + 1))


def _binomial_args(k: float, n: float, p: float) -> tuple[float, float, float] | None:
    if math.isnan(k) or math.isnan(n) or math.isnan(p) or n < 0 or not 0.0 <= p <= 1.0:
        return None
    return float(math.floor(k)), n, p


@_scalar_or_map
def bdtr(k: float, n: float, p: float) -> float:
    """The binomial CDF P(X <= k), X ~ Binomial(n, p); k is floored; NaN for k < 0 or k > n."""
    args = _binomial_args(k, n, p)
    if args is None:
        return _NAN
    k, n, p = args
    if k < 0 or k > n:
        return _NAN
    if k == n or p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    if n <= _BINOMIAL_SUM_MAX_N and n == int(n):
        return _binomial_sum(0, int(k), int(n), p)
    return _betainc_pair(k + 1.0, n - k, p, 1.0 - p)[1]


@_scalar_or_map
def bdtrc(k: float, n: float, p: float) -> float:
    """The binomial survival function P(X > k), X ~ Binomial(n, p); k is floored; 1 for k < 0."""
    args = _binomial_args(k, n, p)
    if args is None:
        return _NAN
    k, n, p = args
    if k > n:
        return _NAN
    if k < 0:
        return 1.0
    if k == n or p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    if n <= _BINOMIAL_SUM_MAX_N and n == int(n):
        return _binomial_sum(int(k) + 1, int(n), int(n), p)
    return _betainc_pair(k + 1.0, n - k, p, 1.0 - p)[0]
