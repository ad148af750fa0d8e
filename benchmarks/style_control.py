"""Does the style-controlled win rate undo a judge's love of lists?

Why: a judge that rewards markdown makes a list-heavy fine-tune look better than it is.
`stats.style_controlled_win_rate` fits P(win) = σ(β + γᵀz) on length and markdown-density
differences (scaled, not centred) and reports σ(β), the win rate at equal style. This
script checks that promise on real answer texts going through the real feature code:

* each run has `--prompts` prompts, one comparison each; the candidate writes a bulleted
  answer 70% of the time, the baseline 20% of the time (3 to 8 items, else prose); both
  write 2 to 6 sentences of 40 to 120 characters, so lengths vary independently of style;
* on substance the candidate truly wins 60% (ties as half: 10% ties, the rest wins with
  probability 0.611), whatever the style;
* the judge adds `--love` on the logit scale per unit of the list-item count contrast
  (ic − ib)/(ic + ib + 1): it favours the answer with more list items.

Over `--runs` runs it prints the median raw rate and median style-controlled rate. The
issue's bar: raw ≥ 10 points above 60%, style-controlled within 5 points of 60%.

    python benchmarks/style_control.py            # ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from brie_bench.stats import special
from brie_bench.stats.style import style_controlled_win_rate, style_features

TRUE_RATE = 0.60
TIE_SHARE = 0.10


def answer(rng: np.random.Generator, bulleted: bool) -> tuple[str, int]:
    """One answer text and its number of list items."""
    sentences = [("lorem ipsum " * 20)[: int(rng.integers(40, 121))].strip() + "." for _ in range(rng.integers(2, 7))]
    if not bulleted:
        return " ".join(sentences), 0
    items = int(rng.integers(3, 9))
    bullets = "\n".join(f"- point {i}: {('dolor sit ' * 4)[: int(rng.integers(15, 40))]}" for i in range(items))
    return " ".join(sentences[:2]) + "\n\n" + bullets, items


def one_run(rng: np.random.Generator, prompts: int, love: float, n_boot: int) -> tuple[float, float]:
    """(raw win rate, style-controlled win rate) of one simulated run."""
    ft, base, contrast = [], [], []
    for _ in range(prompts):
        a, ia = answer(rng, rng.random() < 0.7)
        b, ib = answer(rng, rng.random() < 0.2)
        ft.append(a)
        base.append(b)
        contrast.append((ia - ib) / (ia + ib + 1.0))
    p_win = (TRUE_RATE - TIE_SHARE / 2.0) / (1.0 - TIE_SHARE)
    logit = math.log(p_win / (1.0 - p_win)) + love * np.asarray(contrast)
    u = rng.random(prompts)
    tie = u < TIE_SHARE
    win = rng.random(prompts) < special.expit(logit)
    outcomes = np.where(tie, 0.5, np.where(win, 1.0, 0.0))
    fit = style_controlled_win_rate(outcomes, style_features(ft, base), np.arange(prompts), n_boot=n_boot)
    return float(outcomes.mean()), fit.win_rate.estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--love", type=float, default=2.0, help="judge's logit bonus per unit of list contrast")
    parser.add_argument("--n-boot", type=int, default=20, help="resamples per fit (only point estimates are used)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    raw, controlled = zip(*(one_run(rng, args.prompts, args.love, args.n_boot) for _ in range(args.runs)))
    med_raw, med_sc = float(np.median(raw)), float(np.nanmedian(controlled))
    ok = med_raw - TRUE_RATE >= 0.10 and abs(med_sc - TRUE_RATE) <= 0.05
    print(f"{args.runs} runs x {args.prompts} prompts, true rate {TRUE_RATE:.0%}, list-loving judge (+{args.love} logit)")
    print(f"median raw win rate:             {med_raw:.1%}  ({(med_raw - TRUE_RATE) * 100:+.1f} points)")
    print(f"median style-controlled win rate: {med_sc:.1%}  ({(med_sc - TRUE_RATE) * 100:+.1f} points)")
    print(f"not estimable: {sum(1 for c in controlled if not math.isfinite(c))} runs")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
