"""Statistics over blind A/B judgments: win rates, intervals, judge agreement, biases, rankings.

Everything here is a pure function over numpy arrays (numpy only), so the report, the
CLI and notebooks can compose them freely and tests can check each one against an
independent implementation.

scipy is not imported at all: `scipy.stats` and `scipy.optimize` cost most of a second
to import, and even `scipy.special` ~0.3 s (scipy >= 1.15 builds an array-API copy of
numpy at import, loading numpy's lazy submodules), which was most of
`brie-bench report --json` on a small run. The few special functions needed
(`expit`, `logit`, `ndtri`, `stdtr`, `stdtrit`, `betaincinv`, `bdtr`, `bdtrc`) are in
`brie_bench.stats.special`, with scipy.special's names and edge cases, checked against
it to ~1e-12 (tests/core/test_special_functions.py); the exact tests (binomial, Fisher) and
Spearman's rho follow scipy.stats' definitions, and the length-controlled fit is a
two-parameter Newton solve (tests check each against scipy.stats / statsmodels-style
references).

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


The package is split by question, and this module re-exports every public name so
``from brie_bench import stats`` / ``stats.rate_ci`` keep working:

* `outcomes`     -- the outcome coding, counts and win rates (the base of the rest);
* `draws`        -- `Draws`, the prompt-clustered bootstrap draws a report passes to its statistics;
* `intervals`    -- Wilson, Clopper–Pearson, effective-n, paired Newcombe, cluster-t, clustered bootstrap, `rate_ci`/`mean_ci`;
* `significance` -- sign test, Fisher, Spearman, per-criterion differences, log-prob preference;
* `agreement`    -- agreement between judges (kappas, alpha, AC1, majority vote);
* `bias`         -- label, position and length biases, length-controlled win rate;
* `ranking`      -- Bradley–Terry over several contenders;
* `style`        -- markdown style features and the style-controlled win rate;
* `ppi`          -- the human-calibrated (PPI++) win rate from a few human verdicts.
"""

from __future__ import annotations

from brie_bench.stats.agreement import (
    KAPPA_PARADOX,
    Agreement,
    MajorityVote,
    PairAgreement,
    agreement,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    majority_vote,
    pairwise_agreement,
    percent_agreement,
)
from brie_bench.stats.bias import (
    LENGTH_BIAS_ALPHA,
    LENGTH_BIAS_GAP,
    LabelBias,
    LengthBias,
    LengthControlled,
    PositionConsistency,
    label_bias,
    label_winners,
    length_bias,
    length_controlled_win_rate,
    position_consistency,
)

# Private helpers that tests check against independent references; new code imports them
# from their own module.
from brie_bench.stats.bias import _logit_fit as _logit_fit
from brie_bench.stats.draws import Draws, cluster_resamples
from brie_bench.stats.intervals import (
    BOOTSTRAP_MIN_CLUSTERS,
    Interval,
    clopper_pearson_ci,
    cluster_t_ci,
    clustered_bootstrap_ci,
    degenerate_reason,
    effective_n_ci,
    mean_bootstrap_cis,
    mean_ci,
    mean_cis,
    paired_rate_difference_ci,
    rate_ci,
    rate_cis,
    tie_credit,
    wilson_ci,
)
from brie_bench.stats.outcomes import (
    LOSS,
    OUTCOME_CATEGORIES,
    TIE_OUTCOME,
    WIN,
    Counts,
    combine_orders,
    counts,
    outcome_of,
    rate_from_counts,
    strict_outcomes,
    strict_win_rate,
    win_rate,
)
from brie_bench.stats.ppi import HumanCalibrated, human_calibrated_win_rate, humans_for_width, ppi_mean_ci
from brie_bench.stats.ranking import BradleyTerry, bradley_terry
from brie_bench.stats.significance import (
    CriterionDifference,
    criterion_differences,
    logprob_preference,
    sign_test,
)
from brie_bench.stats.style import (
    STYLE_FEATURES,
    StyleCoefficient,
    StyleControlled,
    StyleCounts,
    style_controlled_win_rate,
    style_counts,
    style_features,
)
from brie_bench.stats.significance import _fisher_two_sided as _fisher_two_sided
from brie_bench.stats.significance import _spearman as _spearman

__all__ = [
    "WIN", "TIE_OUTCOME", "LOSS", "OUTCOME_CATEGORIES", "KAPPA_PARADOX",
    "outcome_of", "combine_orders", "rate_from_counts",
    "Counts", "Interval", "CriterionDifference", "PairAgreement", "Agreement", "MajorityVote",
    "LabelBias", "PositionConsistency", "LengthBias", "LengthControlled", "BradleyTerry",
    "counts", "win_rate", "strict_win_rate", "strict_outcomes",
    "wilson_ci", "cluster_resamples", "Draws", "clustered_bootstrap_ci", "sign_test",
    "clopper_pearson_ci", "cluster_t_ci", "effective_n_ci", "paired_rate_difference_ci", "tie_credit", "rate_ci", "rate_cis",
    "mean_ci", "mean_cis",
    "mean_bootstrap_cis", "BOOTSTRAP_MIN_CLUSTERS", "LENGTH_BIAS_GAP",
    "LENGTH_BIAS_ALPHA", "degenerate_reason",
    "criterion_differences", "logprob_preference",
    "percent_agreement", "pairwise_agreement", "cohen_kappa", "fleiss_kappa",
    "krippendorff_alpha", "gwet_ac1", "agreement", "majority_vote",
    "label_winners", "label_bias", "position_consistency", "length_bias",
    "length_controlled_win_rate", "bradley_terry",
    "STYLE_FEATURES", "StyleCounts", "StyleCoefficient", "StyleControlled", "style_counts", "style_features",
    "style_controlled_win_rate", "HumanCalibrated", "human_calibrated_win_rate", "humans_for_width", "ppi_mean_ci",
]
