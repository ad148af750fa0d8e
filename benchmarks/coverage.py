"""Coverage of the report's 95% interval under a judge with no preference, and the length-bias alarm rate.

Why: a "95%" interval is only honest if it contains the true win rate about 95% of the
time *at the layouts people actually run*. With few prompts the percentile cluster
bootstrap is too narrow (it behaves like a normal interval whose variance is shrunk by
(K − 1)/K), so the report switches to a cluster-robust t interval below
`stats.BOOTSTRAP_MIN_CLUSTERS` prompts and to Clopper–Pearson on prompts when every
verdict goes one way (`stats.rate_ci`). This script measures all three and prints one
`RESULT` line; docs/statistics.md quotes its figures.

Null judges (true win rate 0.5 in both):

* ``coin``: every judgment an independent fair coin (win or loss);
* ``prompt``: each prompt has its own P(win) ~ Beta(2, 2) (mean 0.5), so judgments of one
  prompt move together, as they do with real judges.

Layouts: 5, 10, 25, 30 (where the bootstrap takes over), 50 prompts × 1, 2, 3 judgments per prompt. For each, `--reps`
simulated runs; the interval is computed exactly as the report does (2,000 resamples,
seed 0: the same resamples for every run, so they are drawn once and applied to all runs
as one matrix product). The first runs of each layout are checked against
`stats.rate_ci` / `stats.clustered_bootstrap_ci` themselves, so the vectorised code
cannot drift from the library.

It also measures the length-bias warning (`stats.length_bias(...).flagged`) at 40
prompts: how often a content-only judge trips it (false alarms) and how often a judge
that picks the longer answer 80% / 100% of the time does (power).

    python benchmarks/coverage.py            # about 15 s on 2 cores
    python benchmarks/coverage.py --reps 4000
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy import stats as sps

from brie_bench import stats
from brie_bench.report.model import BOOT_SEED, LEVEL, N_BOOT

LAYOUTS = [(k, m) for k in (5, 10, 25, 30, 50) for m in (1, 2, 3)]
TRUST_FLOOR = 0.93


def resample_counts(k: int) -> np.ndarray:
    """(N_BOOT, k) times each prompt is drawn, from the very resamples the report uses."""
    idx = np.concatenate(list(stats.cluster_resamples(k, N_BOOT, BOOT_SEED)))
    out = np.zeros((N_BOOT, k))
    np.add.at(out, (np.repeat(np.arange(N_BOOT), k), idx.reshape(-1)), 1.0)
    return out


def simulate(rng: np.random.Generator, judge: str, reps: int, k: int, m: int) -> np.ndarray:
    """(reps, k, m) outcomes 0/1 from a null judge."""
    if judge == "coin":
        p = np.full((reps, k, 1), 0.5)
    else:
        p = rng.beta(2.0, 2.0, size=(reps, k, 1))
    return (rng.random((reps, k, m)) < p).astype(float)


def intervals(outcomes: np.ndarray, times: np.ndarray, min_boot: int) -> dict[str, np.ndarray]:
    """Vectorised bootstrap, cluster-t and shown (`rate_ci`) bounds for every simulated run."""
    reps, k, m = outcomes.shape
    sums = outcomes.sum(axis=2)
    n = float(k * m)
    mean = sums.sum(axis=1) / n
    boots = (sums @ times.T) / (times.sum(axis=1) * m)[None, :]
    alpha = 1.0 - LEVEL
    b_lo, b_hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2], axis=1)
    resid = sums - mean[:, None] * m
    se = np.sqrt((resid ** 2).sum(axis=1) * k / (k - 1.0)) / n
    t = float(sps.t.ppf(0.5 + LEVEL / 2, k - 1))
    t_lo, t_hi = np.maximum(0.0, mean - t * se), np.minimum(1.0, mean + t * se)
    allsame = (mean == 0.0) | (mean == 1.0)
    cp = stats.clopper_pearson_ci(k, k, LEVEL)
    cp_lo = np.where(mean == 1.0, cp.low, 0.0)
    cp_hi = np.where(mean == 1.0, 1.0, 1.0 - cp.low)
    base_lo, base_hi = (t_lo, t_hi) if k < min_boot else (b_lo, b_hi)
    s_lo, s_hi = np.where(allsame, cp_lo, base_lo), np.where(allsame, cp_hi, base_hi)
    return {"boot": np.stack([b_lo, b_hi]), "t": np.stack([t_lo, t_hi]), "shown": np.stack([s_lo, s_hi])}


def check_against_library(outcomes: np.ndarray, got: dict[str, np.ndarray], min_boot: int, runs: int = 5) -> None:
    """The vectorised bounds must equal the library's for the first `runs` simulated runs."""
    reps, k, m = outcomes.shape
    clusters = np.repeat(np.arange(k), m)
    for r in range(min(runs, reps)):
        v = outcomes[r].reshape(-1)
        boot = stats.clustered_bootstrap_ci(v, clusters, n_boot=N_BOOT, level=LEVEL, seed=BOOT_SEED)
        shown = stats.rate_ci(v, clusters, n_boot=N_BOOT, level=LEVEL, seed=BOOT_SEED, min_boot_clusters=min_boot)
        for name, ci in (("boot", boot), ("shown", shown)):
            lo, hi = got[name][0, r], got[name][1, r]
            if not (math.isclose(lo, ci.low, abs_tol=1e-9) and math.isclose(hi, ci.high, abs_tol=1e-9)):
                raise SystemExit(f"mismatch {name} k={k} m={m} run {r}: {lo, hi} vs {ci.low, ci.high}")


def untrusted(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Intervals the report would never mark trusted: zero width or spanning [0.001, 0.999]."""
    return (hi - lo <= 1e-12) | ((lo <= 0.001) & (hi >= 0.999))


def length_alarm(rng: np.random.Generator, reps: int, follow: float, k: int = 40) -> float:
    """Share of runs whose length-bias warning fires when the judge follows length with P = `follow`.

    follow = 0.5 is a content-only judge (length irrelevant); lengths are random either way.
    """
    fired = 0
    for _ in range(reps):
        lf, lb = rng.integers(50, 400, k), rng.integers(50, 400, k)
        longer_wins = rng.random(k) < follow
        ft_longer = lf > lb
        outcome = np.where(longer_wins == ft_longer, 1.0, 0.0)
        fired += stats.length_bias(outcome, lf, lb).flagged
    return fired / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=4000, help="simulated runs per layout and judge")
    parser.add_argument("--length-reps", type=int, default=1000, help="simulated runs per length-bias setting")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    min_boot = stats.BOOTSTRAP_MIN_CLUSTERS
    rows = []
    print(f"{'judge':7} {'prompts':>7} {'per':>3}  {'bootstrap':>9} {'cluster-t':>9} {'shown':>7} "
          f"{'untrusted':>9}  shown method")
    for judge in ("coin", "prompt"):
        for k, m in LAYOUTS:
            times = resample_counts(k)
            outcomes = simulate(rng, judge, args.reps, k, m)
            got = intervals(outcomes, times, min_boot)
            check_against_library(outcomes, got, min_boot)
            cov = {name: float(np.mean((b[0] <= 0.5) & (0.5 <= b[1]))) for name, b in got.items()}
            unt = float(np.mean(untrusted(*got["shown"])))
            method = "cluster-t" if k < min_boot else "bootstrap"
            rows.append({"judge": judge, "prompts": k, "per_prompt": m, "coverage_bootstrap": cov["boot"],
                         "coverage_cluster_t": cov["t"], "coverage_shown": cov["shown"], "untrusted": unt,
                         "method": method})
            print(f"{judge:7} {k:7d} {m:3d}  {cov['boot']:9.1%} {cov['t']:9.1%} {cov['shown']:7.1%} "
                  f"{unt:9.1%}  {method}")
    alarms = {f: length_alarm(rng, args.length_reps, f) for f in (0.5, 0.8, 1.0)}
    print("length-bias warning at 40 prompts: " +
          ", ".join(f"follows length {f:.0%}: fires {a:.1%}" for f, a in alarms.items()))
    worst = min(r["coverage_shown"] for r in rows)
    below = [f"{r['judge']}/{r['prompts']}x{r['per_prompt']}" for r in rows if r["coverage_shown"] < TRUST_FLOOR]
    elapsed = time.perf_counter() - start
    print("RESULT " + json.dumps({
        "benchmark": "coverage", "reps": args.reps, "min_coverage_shown": round(worst, 4),
        "layouts_below_93": below, "bootstrap_min_prompts": min_boot,
        "min_coverage_bootstrap": round(min(r["coverage_bootstrap"] for r in rows), 4),
        "length_alarm_null": alarms[0.5], "length_alarm_follow80": alarms[0.8], "length_alarm_follow100": alarms[1.0],
        "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
