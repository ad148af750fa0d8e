"""Does the human-calibrated (PPI++) win rate cover the human rate, and is it narrower than humans alone?

Why: `stats.human_calibrated_win_rate` promises a valid interval for the *human* win
rate from a few human verdicts plus LLM verdicts on every prompt. This script checks it:

* each run has `--prompts` prompts with `--samples` comparisons each; prompt i has its
  own human preference p_i ~ Beta (mean `TRUE_RATE`, so prompts differ), and a person's
  verdict is a win with probability p_i, a tie 10% of the time;
* the judge agrees with the person on a comparison 80% of the time, and otherwise gives
  one of the two other verdicts at random: its errors pull its win rate towards 50%, a
  bias PPI must correct;
* people judge a uniformly random `--labelled` prompts (all their comparisons).

Per run: the PPI++ interval (normal, λ²Var(Ŷ)/N + Var(Y − λŶ)/n), a prompt-clustered
percentile bootstrap of the same estimator (λ re-chosen in every resample), and the
human-only normal interval over the labelled prompts. Coverage is of the true human
rate over prompts, E[p_i · 0.9 + 0.05].

    python benchmarks/ppi_coverage.py            # 1,000 runs, ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from brie_bench.stats.draws import Draws
from brie_bench.stats.ppi import human_calibrated_win_rate

TRUE_RATE = 0.60
TIE = 0.10
AGREE = 0.80


def simulate(rng: np.random.Generator, prompts: int, samples: int, labelled: int) -> tuple[np.ndarray, ...]:
    """(human outcomes with NaN where unlabelled, judge outcomes, prompt of each comparison)."""
    conc = 4.0
    p = rng.beta(TRUE_RATE * conc, (1 - TRUE_RATE) * conc, size=prompts)
    clusters = np.repeat(np.arange(prompts), samples)
    u = rng.random(prompts * samples)
    win = rng.random(prompts * samples) < p[clusters]
    human = np.where(u < TIE, 0.5, np.where(win, 1.0, 0.0))
    others = np.array([[0.5, 1.0], [0.0, 1.0], [0.0, 0.5]])  # for loss, tie, win: the other two
    pick = others[(human * 2).astype(int), rng.integers(0, 2, size=human.size)]
    judge = np.where(rng.random(human.size) < AGREE, human, pick)
    seen = np.zeros(prompts, dtype=bool)
    seen[rng.choice(prompts, size=labelled, replace=False)] = True
    return np.where(seen[clusters], human, np.nan), judge, clusters


def bootstrap_ci(human: np.ndarray, judge: np.ndarray, clusters: np.ndarray, seed: int,
                 n_boot: int) -> tuple[float, float]:
    """Percentile interval of θ̂ over prompt resamples (weights = draw counts), λ re-chosen per resample."""
    k = int(clusters.max()) + 1
    size = np.bincount(clusters, minlength=k).astype(float)
    yhat = np.bincount(clusters, weights=judge, minlength=k) / size
    lab = ~np.isnan(human)
    has = np.bincount(clusters[lab], minlength=k) > 0
    y = np.zeros(k)
    n_lab = np.maximum(1, np.bincount(clusters[lab], minlength=k))
    y[has] = (np.bincount(clusters[lab], weights=human[lab], minlength=k) / n_lab)[has]
    c = Draws(k, n_boot, seed).counts().counts.astype(float)
    cl = c * has
    n_b, big_n = cl.sum(1), c.sum(1)
    m_all = c @ yhat / big_n
    my, mh = cl @ y / n_b, cl @ yhat / n_b
    cov = cl @ (y * yhat) / n_b - my * mh
    # Var(Ŷ) over labelled and all pooled (ddof ~ 0 at these sizes), as ppi_lambda does.
    tot = n_b + big_n
    pooled_mean = (cl @ yhat + c @ yhat) / tot
    var = (cl @ yhat ** 2 + c @ yhat ** 2) / tot - pooled_mean ** 2
    lam = np.clip(cov / ((1 + n_b / big_n) * var), 0, 1)
    theta = lam * m_all + my - lam * mh
    low, high = np.nanquantile(theta, [0.025, 0.975])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--labelled", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    truth = TRUE_RATE * (1 - TIE) + TIE / 2
    ok = True
    print(f"{args.runs} runs, {args.prompts} prompts x {args.samples} comparisons, judge agrees with people "
          f"{AGREE:.0%}, true human rate {truth:.1%}")
    print(f"{'labelled':>8} {'PPI cover':>9} {'boot cover':>10} {'human cover':>11} {'PPI width':>9} "
          f"{'human width':>11} {'narrower':>8} {'mean λ':>7}")
    for n_lab in args.labelled:
        rng = np.random.default_rng(args.seed + n_lab)
        cov = {"ppi": 0, "boot": 0, "human": 0}
        widths = {"ppi": [], "human": []}
        lams = []
        for r in range(args.runs):
            human, judge, clusters = simulate(rng, args.prompts, args.samples, n_lab)
            res = human_calibrated_win_rate(human, judge, clusters)
            ci, ho = res.win_rate, res.human_only
            cov["ppi"] += ci.low <= truth <= ci.high
            cov["human"] += ho.low <= truth <= ho.high
            lo, hi = bootstrap_ci(human, judge, clusters, r, args.n_boot)
            cov["boot"] += lo <= truth <= hi
            widths["ppi"].append(ci.high - ci.low)
            widths["human"].append(ho.high - ho.low)
            lams.append(res.lam)
        pc, bc, hc = (cov[k] / args.runs for k in ("ppi", "boot", "human"))
        wp, wh = float(np.mean(widths["ppi"])), float(np.mean(widths["human"]))
        ok = ok and pc >= 0.93 and wp < wh
        print(f"{n_lab:>8} {pc:>9.1%} {bc:>10.1%} {hc:>11.1%} {wp * 100:>8.1f}p {wh * 100:>10.1f}p "
              f"{1 - wp / wh:>8.0%} {np.mean(lams):>7.2f}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
