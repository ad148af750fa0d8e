"""Coverage of the report's 95% intervals over the whole range of win rates, and the length-bias alarm rate.

Why: a "95%" interval is honest only if it contains the true value about 95% of the
time *where people use it*. Good fine-tunes win 85–99% of comparisons over 10–40
prompts, and there the percentile bootstrap and the cluster-t interval, which are fine
near 50%, fall to 80–90%: their misses are one-sided (a few bad prompts are rarely drawn).
This script measures, on one grid, the interval the report shows and the ones it replaced
(each counted among the intervals it would have marked trusted):

* **Win rate** (`stats.rate_ci`, the effective-n Clopper–Pearson interval) against the
  cluster-t and the percentile cluster bootstrap. Grid: true rate 0.5, 0.7, 0.85, 0.9, 0.95,
  0.97, 0.99 × 5, 10, 15, 25, 40, 100, 400 prompts × 1, 2, 3 judgments per prompt × low and
  high prompt heterogeneity × no, some and many ties (882 cells).
* **Run-versus-run difference** (`stats.paired_rate_difference_ci`, Newcombe's hybrid on
  effective sizes) against the paired percentile bootstrap the report used before. Grid:
  eight pairs of true rates (equal and unequal, near the middle and near 1) × 5, 10, 15, 25,
  40, 100 prompts × 1 and 3 judgments per prompt × heterogeneity × ties (576 cells).

How runs are simulated. Prompt i has its own rate θ_i ~ Beta(pφ, (1 − p)φ) with mean p:
φ = 20 is low heterogeneity (prompts alike), φ = 2 is high (at p = 0.97 most prompts are
always won and a few are lost badly). Each judgment is a win with probability θ_i, or,
with "some" ties, a tie with probability 0.6·min(θ_i, 1 − θ_i) and otherwise a win or loss
so that its mean stays θ_i; with "many", 1.6·min(θ_i, 1 − θ_i) (80% ties at θ = 0.5, what a
noisy judge gives under `orders: both`). For the difference, the two runs' prompt rates are tied together
by a Gaussian copula with correlation 0.6 (a prompt hard in one run is hard in the other).

Coverage is counted **among the intervals the report marks trusted**: at least
`MIN_PROMPTS` prompts, both bounds finite, non-zero width, and not spanning almost the whole
range (`report.model.interval_dict`). The share marked trusted is printed too. The first
runs of every cell are recomputed with the library functions themselves, so the vectorised
code here cannot drift from what the report does.

It also measures the length-bias warning (`stats.length_bias(...).flagged`) at 40 prompts:
how often a content-only judge trips it and how often one that follows length does.

    python benchmarks/coverage.py               # 1,000 runs a cell: a few minutes on 2 cores
    python benchmarks/coverage.py --reps 2000
    python benchmarks/coverage.py --reps 100 --small   # a quick look (what the test runs)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from brie_bench import stats
from brie_bench.report.model import BOOT_SEED, LEVEL, MIN_PROMPTS, N_BOOT

RATES = (0.5, 0.7, 0.85, 0.9, 0.95, 0.97, 0.99)
PROMPTS = (5, 10, 15, 25, 40, 100, 400)
PER_PROMPT = (1, 2, 3)
PAIRS = ((0.5, 0.5), (0.7, 0.6), (0.85, 0.8), (0.9, 0.9), (0.95, 0.9), (0.97, 0.97), (0.99, 0.95), (0.97, 0.85))
PAIR_PROMPTS = (5, 10, 15, 25, 40, 100)
PAIR_PER_PROMPT = (1, 3)
HETEROGENEITY = {"low": 20.0, "high": 2.0}
#: Ties: none; "some" (a tie with probability 0.6·min(θ, 1 − θ): 30% at θ = 0.5); "many"
#: (1.6·min(θ, 1 − θ): 80% at θ = 0.5, as a noisy judge under `orders: both` gives).
TIES = {"none": 0.0, "some": 0.6, "many": 1.6}
COPULA_RHO = 0.6
TRUST_FLOOR = 0.93
PAIRED_TRUST_FLOOR = 0.92
Z = float(sps.norm.ppf(0.5 + LEVEL / 2))


@dataclass(frozen=True)
class Cell:
    """One layout of the grid."""

    rate: float | tuple[float, float]
    prompts: int
    per_prompt: int
    heterogeneity: str
    ties: str

    def name(self) -> str:
        rate = f"{self.rate[0]:.2f}-{self.rate[1]:.2f}" if isinstance(self.rate, tuple) else f"{self.rate:.2f}"
        return f"{rate}/{self.prompts}x{self.per_prompt}/{self.heterogeneity}/ties-{self.ties}"


# --------------------------------------------------------------------------- simulation


def prompt_rates(rng: np.random.Generator, shape: tuple[int, int], p: float, phi: float,
                 normal: np.ndarray | None = None) -> np.ndarray:
    """θ for every (run, prompt): Beta(pφ, (1 − p)φ), through `normal` (a copula) when given."""
    if normal is None:
        return rng.beta(p * phi, (1 - p) * phi, size=shape)
    return sps.beta.ppf(sps.norm.cdf(normal), p * phi, (1 - p) * phi)


def judgments(rng: np.random.Generator, theta: np.ndarray, m: int, tie_share: float) -> np.ndarray:
    """(runs, prompts, m) outcomes 0 / 0.5 / 1 whose mean per prompt is θ."""
    th = theta[..., None]
    u = rng.random(theta.shape + (m,))
    if not tie_share:
        return (u < th).astype(float)
    tie = tie_share * np.minimum(th, 1 - th)
    win = th - tie / 2
    return np.where(u < win, 1.0, np.where(u < win + tie, 0.5, 0.0))


def resample_counts(k: int) -> np.ndarray:
    """(N_BOOT, k) times each prompt is drawn, from the very resamples the report's bootstraps use."""
    idx = np.concatenate(list(stats.cluster_resamples(k, N_BOOT, BOOT_SEED)))
    out = np.zeros((N_BOOT, k))
    np.add.at(out, (np.repeat(np.arange(N_BOOT), k), idx.reshape(-1)), 1.0)
    return out


# --------------------------------------------------------------------------- intervals, vectorised


def tie_credit(mean: np.ndarray, row_var: np.ndarray | None) -> np.ndarray:
    """`stats.tie_credit` for many runs at once."""
    if row_var is None:
        return np.ones_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(row_var > 0, mean * (1 - mean) / row_var, 1e6)
    edge = np.maximum(mean, 1 - mean)
    full, none = stats.intervals.TIE_CREDIT_FULL, stats.intervals.TIE_CREDIT_NONE
    fade = np.clip((none - edge) / (none - full), 0.0, 1.0)
    return 1.0 + np.maximum(0.0, ratio - 1.0) * fade


def effective_n_bounds(mean: np.ndarray, var: np.ndarray, n: int, k: int,
                       credit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`stats.effective_n_ci` for many runs at once (every-prompt-the-same handled by the caller)."""
    t = float(sps.t.ppf(0.5 + LEVEL / 2, k - 1))
    cap = float(n) * (np.ones_like(mean) if credit is None else credit)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(var > 0, mean * (1 - mean) / var, cap)
    n_eff = np.clip(n_eff * (Z / t) ** 2, 1.0, cap)
    x = mean * n_eff
    alpha = 1 - LEVEL
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, sps.beta.ppf(alpha / 2, np.maximum(x, 1e-300), n_eff - x + 1), 0.0)
        high = np.where(x < n_eff, sps.beta.ppf(1 - alpha / 2, x + 1, np.maximum(n_eff - x, 1e-300)), 1.0)
    return np.minimum(low, mean), np.maximum(high, mean)


def shown_rate_bounds(outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) of the report's win-rate interval for every simulated run."""
    reps, k, m = outcomes.shape
    sums = outcomes.sum(2)
    n = k * m
    mean = sums.sum(1) / n
    var = ((sums - mean[:, None] * m) ** 2).sum(1) * k / (k - 1) / n ** 2
    row_var = (outcomes ** 2).sum((1, 2)) / n - mean ** 2
    low, high = effective_n_bounds(mean, var, n, k, tie_credit(mean, row_var))
    cp = stats.clopper_pearson_ci(k, k, LEVEL).low
    low = np.where(mean == 1.0, cp, np.where(mean == 0.0, 0.0, low))
    high = np.where(mean == 0.0, 1.0 - cp, np.where(mean == 1.0, 1.0, high))
    return mean, low, high


def cluster_t_bounds(sums: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    reps, k = sums.shape
    n = k * m
    mean = sums.sum(1) / n
    se = np.sqrt(((sums - mean[:, None] * m) ** 2).sum(1) * k / (k - 1)) / n
    t = float(sps.t.ppf(0.5 + LEVEL / 2, k - 1))
    return np.maximum(0.0, mean - t * se), np.minimum(1.0, mean + t * se)


def percentile(boots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1 - LEVEL
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2], axis=1)
    return low, high


def trusted(low: np.ndarray, high: np.ndarray, k: int, span: tuple[float, float]) -> np.ndarray:
    """What `report.model.interval_dict` marks trusted: enough prompts, finite, not zero-width, not all-spanning."""
    lo, hi = span
    width = hi - lo
    finite = np.isfinite(low) & np.isfinite(high)
    zero = high - low <= 1e-12 * max(width, 1.0)
    spans = (low <= lo + 0.001 * width) & (high >= hi - 0.001 * width)
    return finite & ~zero & ~spans & (k >= MIN_PROMPTS)


def newcombe_bounds(sa: np.ndarray, sb: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference, low, high) of `stats.paired_rate_difference_ci` for every simulated run."""
    reps, k = sa.shape
    n = k * m
    sides = []
    for s in (sa, sb):
        mean = s.sum(1) / n
        resid = s - mean[:, None] * m
        var = (resid ** 2).sum(1) * k / (k - 1) / n ** 2
        low, high = effective_n_bounds(mean, var, n, k)
        cp = stats.clopper_pearson_ci(k, k, LEVEL).low
        low = np.where(mean == 1.0, cp, np.where(mean == 0.0, 0.0, low))
        high = np.where(mean == 0.0, 1.0 - cp, np.where(mean == 1.0, 1.0, high))
        sides.append((mean, resid, var, low, high))
    (pa, ra, va, la, ua), (pb, rb, vb, lb, ub) = sides
    cov = (ra * rb).sum(1) * k / (k - 1) / n ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where((va > 0) & (vb > 0), cov / np.sqrt(va * vb), 0.0)
    rho = np.clip(rho, -1.0, 1.0)
    d = pa - pb
    da, ea, db, eb = pa - la, ua - pa, pb - lb, ub - pb
    low = d - np.sqrt(np.maximum(0.0, da * da - 2 * rho * da * eb + eb * eb))
    high = d + np.sqrt(np.maximum(0.0, ea * ea - 2 * rho * ea * db + db * db))
    return d, np.maximum(-1.0, low), np.minimum(1.0, high)


# --------------------------------------------------------------------------- checks against the library


def check_rate(outcomes: np.ndarray, low: np.ndarray, high: np.ndarray, runs: int = 3) -> None:
    reps, k, m = outcomes.shape
    clusters = np.repeat(np.arange(k), m)
    for r in range(min(runs, reps)):
        ci = stats.rate_ci(outcomes[r].reshape(-1), clusters, level=LEVEL)
        if not (math.isclose(low[r], ci.low, abs_tol=1e-7) and math.isclose(high[r], ci.high, abs_tol=1e-7)):
            raise SystemExit(f"win-rate mismatch k={k} m={m} run {r}: {low[r], high[r]} vs {ci.low, ci.high}")


def check_paired(sa: np.ndarray, sb: np.ndarray, m: int, low: np.ndarray, high: np.ndarray, runs: int = 3) -> None:
    reps, k = sa.shape
    sizes = np.full(k, float(m))
    for r in range(min(runs, reps)):
        ci = stats.paired_rate_difference_ci((sa[r], sizes), (sb[r], sizes), level=LEVEL)
        if not (math.isclose(low[r], ci.low, abs_tol=1e-7) and math.isclose(high[r], ci.high, abs_tol=1e-7)):
            raise SystemExit(f"difference mismatch k={k} m={m} run {r}: {low[r], high[r]} vs {ci.low, ci.high}")


# --------------------------------------------------------------------------- the two grids


def covered(truth: float, low: np.ndarray, high: np.ndarray, mask: np.ndarray | None = None) -> float:
    hit = (low <= truth) & (truth <= high)
    if mask is None:
        return float(np.mean(hit))
    return float(np.mean(hit[mask])) if mask.any() else math.nan


def rate_grid(rng: np.random.Generator, reps: int, prompts: tuple[int, ...], per_prompt: tuple[int, ...],
              compare: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k in prompts:
        times = resample_counts(k) if compare else None
        for m in per_prompt:
            for het, phi in HETEROGENEITY.items():
                for ties, tie_share in TIES.items():
                    for p in RATES:
                        cell = Cell(p, k, m, het, ties)
                        outcomes = judgments(rng, prompt_rates(rng, (reps, k), p, phi), m, tie_share)
                        sums = outcomes.sum(2)
                        mean, low, high = shown_rate_bounds(outcomes)
                        check_rate(outcomes, low, high)
                        mask = trusted(low, high, k, (0.0, 1.0))
                        row: dict[str, object] = {"cell": cell.name(), "rate": p, "prompts": k, "per_prompt": m,
                                                  "heterogeneity": het, "ties": ties,
                                                  "coverage": covered(p, low, high, mask),
                                                  "trusted_share": float(mask.mean()),
                                                  "below": float(np.mean((p < low)[mask])) if mask.any() else math.nan}
                        if compare and times is not None:
                            tlo, thi = cluster_t_bounds(sums, m)
                            blo, bhi = percentile((sums @ times.T) / (times.sum(1) * m)[None, :])
                            row["coverage_cluster_t"] = covered(p, tlo, thi, trusted(tlo, thi, k, (0.0, 1.0)))
                            row["coverage_bootstrap"] = covered(p, blo, bhi, trusted(blo, bhi, k, (0.0, 1.0)))
                            # What the report showed before: cluster-t below 30 prompts, the bootstrap
                            # from 30, Clopper-Pearson over prompts when every verdict went one way.
                            olo, ohi = (tlo, thi) if k < stats.BOOTSTRAP_MIN_CLUSTERS else (blo, bhi)
                            olo = np.where((mean == 0.0) | (mean == 1.0), low, olo)
                            ohi = np.where((mean == 0.0) | (mean == 1.0), high, ohi)
                            row["coverage_previous"] = covered(p, olo, ohi, trusted(olo, ohi, k, (0.0, 1.0)))
                        rows.append(row)
    return rows


def paired_grid(rng: np.random.Generator, reps: int, prompts: tuple[int, ...], per_prompt: tuple[int, ...],
                compare: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k in prompts:
        times = resample_counts(k) if compare else None
        for m in per_prompt:
            for het, phi in HETEROGENEITY.items():
                for ties, tie_share in TIES.items():
                    for pa, pb in PAIRS:
                        cell = Cell((pa, pb), k, m, het, ties)
                        shared = rng.standard_normal((reps, k))
                        za = math.sqrt(COPULA_RHO) * shared + math.sqrt(1 - COPULA_RHO) * rng.standard_normal((reps, k))
                        zb = math.sqrt(COPULA_RHO) * shared + math.sqrt(1 - COPULA_RHO) * rng.standard_normal((reps, k))
                        sa = judgments(rng, prompt_rates(rng, (reps, k), pa, phi, za), m, tie_share).sum(2)
                        sb = judgments(rng, prompt_rates(rng, (reps, k), pb, phi, zb), m, tie_share).sum(2)
                        d, low, high = newcombe_bounds(sa, sb, m)
                        check_paired(sa, sb, m, low, high)
                        mask = trusted(low, high, k, (-1.0, 1.0))
                        truth = pa - pb
                        row: dict[str, object] = {"cell": cell.name(), "rates": [pa, pb], "prompts": k,
                                                  "per_prompt": m, "heterogeneity": het, "ties": ties,
                                                  "coverage": covered(truth, low, high, mask),
                                                  "trusted_share": float(mask.mean())}
                        if compare and times is not None:
                            boots = ((sa - sb) @ times.T) / (times.sum(1) * m)[None, :]
                            blo, bhi = percentile(boots)
                            row["coverage_bootstrap"] = covered(truth, blo, bhi, trusted(blo, bhi, k, (-1.0, 1.0)))
                        rows.append(row)
    return rows


def length_alarm(rng: np.random.Generator, reps: int, follow: float, k: int = 40) -> float:
    """Share of runs whose length-bias warning fires when the judge follows length with P = `follow`."""
    fired = 0
    for _ in range(reps):
        lf, lb = rng.integers(50, 400, k), rng.integers(50, 400, k)
        longer_wins = rng.random(k) < follow
        outcome = np.where(longer_wins == (lf > lb), 1.0, 0.0)
        fired += stats.length_bias(outcome, lf, lb).flagged
    return fired / reps


# --------------------------------------------------------------------------- printing


def print_table(rows: list[dict[str, object]], title: str, key: str, columns: list[object], names: list[str],
                floor: float) -> None:
    """One grid as text: a row per layout, a column per true rate (or pair of rates); '*' below `floor`."""
    print(f"\n{title}; '*' below {floor:.0%}, '.' no trusted interval")
    width = max(7, *(len(n) + 1 for n in names))
    print(f"{'heterog.':8} {'ties':4} {'per':>3} {'prompts':>7}  " + " ".join(f"{n:>{width}}" for n in names))
    keyed = {(r["heterogeneity"], r["ties"], r["per_prompt"], r["prompts"], _hashable(r[key])): r for r in rows}
    layouts = sorted({(r["heterogeneity"], r["ties"], r["per_prompt"], r["prompts"]) for r in rows},
                     key=lambda t: (t[0] != "low", list(TIES).index(str(t[1])), t[2], t[3]))
    for het, ties, m, k in layouts:
        cells = []
        for column in columns:
            row = keyed.get((het, ties, m, k, _hashable(column)))
            cov = float(row["coverage"]) if row else math.nan  # type: ignore[arg-type]
            cells.append(f"{'.':>{width}}" if math.isnan(cov) else
                         f"{cov:{width}.1%}"[:-1] + ("*" if cov < floor else " "))
        print(f"{het:8} {ties:4} {m:3d} {k:7d}  " + " ".join(cells))


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # type: ignore[arg-type]


def worst(rows: list[dict[str, object]], key: str) -> dict[str, object]:
    usable = [r for r in rows if key in r and not math.isnan(float(r[key]))]  # type: ignore[arg-type]
    return min(usable, key=lambda r: float(r[key]))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated runs per cell")
    parser.add_argument("--length-reps", type=int, default=1000, help="simulated runs per length-bias setting")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--small", action="store_true", help="a few cells only (for a quick check)")
    parser.add_argument("--no-compare", action="store_true", help="skip the replaced methods (faster)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    compare = not args.no_compare
    prompts, per, pair_prompts, pair_per = PROMPTS, PER_PROMPT, PAIR_PROMPTS, PAIR_PER_PROMPT
    if args.small:
        prompts, per, pair_prompts, pair_per = (5, 40), (1, 3), (5, 25), (1,)
    rates = rate_grid(rng, args.reps, prompts, per, compare)
    print_table(rates, "Win rate: coverage of the shown (effective-n) interval among trusted intervals", "rate",
                list(RATES), [f"{p:.2f}" for p in RATES], TRUST_FLOOR)
    pairs = paired_grid(rng, args.reps, pair_prompts, pair_per, compare)
    print_table(pairs, "Run-vs-run difference: coverage of the shown (paired Newcombe) interval among trusted "
                "intervals", "rates", [list(p) for p in PAIRS], [f"{a:.2f}-{b:.2f}"[1:].replace("-0", "-") for a, b in PAIRS],
                PAIRED_TRUST_FLOOR)
    alarms = {f: length_alarm(rng, args.length_reps, f) for f in (0.5, 0.8, 1.0)}
    print("\nlength-bias warning at 40 prompts: " +
          ", ".join(f"follows length {f:.0%}: fires {a:.1%}" for f, a in alarms.items()))
    w_rate, w_pair = worst(rates, "coverage"), worst(pairs, "coverage")
    result: dict[str, object] = {
        "benchmark": "coverage", "reps": args.reps, "cells_rate": len(rates), "cells_difference": len(pairs),
        "rate_method": "effective-n", "difference_method": "paired-newcombe",
        "worst_trusted_rate": {"cell": w_rate["cell"], "coverage": round(float(w_rate["coverage"]), 4)},  # type: ignore[arg-type]
        "worst_trusted_difference": {"cell": w_pair["cell"], "coverage": round(float(w_pair["coverage"]), 4)},  # type: ignore[arg-type]
        "rate_cells_below_93": [r["cell"] for r in rates if float(r["coverage"]) < TRUST_FLOOR],  # type: ignore[arg-type]
        "difference_cells_below_92": [r["cell"] for r in pairs if float(r["coverage"]) < PAIRED_TRUST_FLOOR],  # type: ignore[arg-type]
        "length_alarm_null": alarms[0.5], "length_alarm_follow80": alarms[0.8],
        "length_alarm_follow100": alarms[1.0]}
    if compare:
        for name, rows, key in (("previous_rate", rates, "coverage_previous"),
                                ("cluster_t_rate", rates, "coverage_cluster_t"),
                                ("bootstrap_rate", rates, "coverage_bootstrap"),
                                ("bootstrap_difference", pairs, "coverage_bootstrap")):
            w = worst(rows, key)
            result[f"worst_{name}"] = {"cell": w["cell"], "coverage": round(float(w[key]), 4)}  # type: ignore[arg-type]
    result["seconds"] = round(time.perf_counter() - start, 1)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
