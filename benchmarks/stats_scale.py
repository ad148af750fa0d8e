"""How long the report's statistics take on a large run.

Scenario: 5,000 prompts, about 33,334 answer pairs, 3 judges, so 100,000 judgments.
Times the clustered bootstrap of the win rate (2,000 resamples of prompts) and every
agreement statistic over the pairs x judges matrix, the two parts whose cost grows
with the run. The target is 5 s on one ordinary CPU core; the last line is
machine-readable:

    RESULT stats_seconds=<total> target_s=5

Run: python benchmarks/stats_scale.py [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    from brie_bench import stats
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from brie_bench import stats

N_PROMPTS = 5_000
N_JUDGES = 3
N_JUDGMENTS = 100_000
N_BOOT = 2_000
TARGET_S = 5.0


def make_run(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic run: a pairs x judges outcome matrix and the prompt of each pair.

    Judges mostly agree with a per-pair "true" verdict whose win probability varies by
    prompt, and 2% of verdicts are invalid, so every code path (NaN handling,
    clustering, disagreement) does real work.
    """
    rng = np.random.default_rng(seed)
    n_pairs = -(-N_JUDGMENTS // N_JUDGES)
    prompt = rng.permutation(np.arange(n_pairs) % N_PROMPTS)  # every prompt has pairs
    p_win = 1.0 / (1.0 + np.exp(-rng.normal(0.3, 1.0, N_PROMPTS)))[prompt]
    u = rng.random(n_pairs)
    truth = np.where(u < 0.85 * p_win, 1.0, np.where(u < 0.85 * p_win + 0.15, 0.5, 0.0))
    noise = rng.choice(stats.OUTCOME_CATEGORIES, size=(n_pairs, N_JUDGES))
    matrix = np.where(rng.random((n_pairs, N_JUDGES)) < 0.8, truth[:, None], noise)
    matrix[rng.random(matrix.shape) < 0.02] = np.nan
    return matrix, prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    matrix, prompt = make_run(args.seed)
    outcomes = matrix.reshape(-1)[:N_JUDGMENTS]
    clusters = np.repeat(prompt, N_JUDGES)[:N_JUDGMENTS]

    t0 = time.perf_counter()
    ci = stats.clustered_bootstrap_ci(outcomes, clusters, n_boot=N_BOOT, seed=args.seed)
    t1 = time.perf_counter()
    agree = stats.agreement(matrix)
    t2 = time.perf_counter()
    total = t2 - t0

    print(f"judgments={outcomes.size} prompts={ci.n_clusters} pairs={matrix.shape[0]} judges={N_JUDGES}")
    print(f"win rate {ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}] ({ci.method}, {N_BOOT} resamples)")
    print(f"agreement: all={agree.percent_all:.3f} fleiss={agree.fleiss_kappa:.3f} "
          f"alpha={agree.krippendorff_alpha:.3f} ac1={agree.gwet_ac1:.3f} "
          f"cohen={[round(p.cohen_kappa, 3) for p in agree.pairs]}")
    print(f"clustered bootstrap: {t1 - t0:.3f} s")
    print(f"agreement statistics: {t2 - t1:.3f} s")
    print(f"RESULT stats_seconds={total:.3f} target_s={TARGET_S:g}")


if __name__ == "__main__":
    main()
