"""Hand-made report records for tests of the rules that read a built report.

The conclusion rules (`brie_bench.conclusion`) and the order-flip warnings
(`report.model._flip_warnings`) are pure functions of report records, so their tests
feed them records built here instead of a whole run. Every record is a real
`brie_bench.report.schema` class (mypy checks each field); the figures a rule reads
are arguments, every other field gets a neutral value that no rule depends on.
"""

from __future__ import annotations

from collections.abc import Sequence

from brie_bench.report.figures import interval_fields
from brie_bench.report.schema import (BiasDiagnostics, Contender, Cost, FailedJudge, FlippedComparison, Information,
                                      Interval, JudgeFigures, LabelBias, LengthBias, LengthBiasThresholds,
                                      LengthControlled, Method, OrderConsistency, PositionBias, Power, PowerVariance,
                                      Replicates, Report, RowLevel, RunInfo, StyleControlled, Verdict)


def interval(est: float | None, low: float | None, high: float | None, *, trusted: bool = True,
             note: str | None = None, n: int = 50, n_prompts: int | None = 25) -> Interval:
    """An `Interval` with the figures the rules read; method and level as a built report has them."""
    return Interval(estimate=est, low=low, high=high, level=0.95, method="cluster-bootstrap", method_note=None,
                    n=n, n_prompts=n_prompts, reliable=est is not None, trusted=trusted, note=note)


def power(mde: float | None = None, *, n_prompts: int = 25, n_comparisons: int = 50) -> Power:
    """A `judges[].power` entry: the minimum detectable effect and the rates it makes detectable."""
    variance = PowerVariance(total=None, between_prompt=None, within_prompt=None, between_share=None, order=None,
                             n_order_pairs=0, identified=False, total_at_null=None, flip_ties=None)
    return Power(alpha=0.05, power=0.8, mde=mde, mde_reason=None,
                 detectable_above=None if mde is None else 0.5 + mde,
                 detectable_below=None if mde is None else 0.5 - mde, n_prompts=n_prompts,
                 n_comparisons=n_comparisons, comparisons_per_prompt=None, significant=None, statement="",
                 variance=variance, recommended_samples=None, recommendation="", effect=0.1, prompts_needed=None)


def judge(name: str, est: float | None, low: float | None, high: float | None, *, cand: str = "brie",
          n_prompts: int = 25, trusted: bool = True, note: str | None = None, information: str | None = None,
          n_valid: int = 50, invalid: int = 0, mde: float | None = None) -> JudgeFigures:
    """A `judges[]` entry with the fields the rules read."""
    n = n_valid + invalid
    ci = interval(est, low, high, trusted=trusted, note=note, n=n_valid, n_prompts=n_prompts)
    lc = interval(0.55, 0.45, 0.65)
    unused = interval(None, None, None, trusted=False)
    rows = RowLevel(wins=0, losses=0, ties=0, invalid=invalid, n=n, n_valid=n_valid, n_prompts=n_prompts,
                    win_rate=est, strict_win_rate=None, ci95=unused, strict_ci95=unused, strict_wilson95=unused,
                    n_answer_pairs=n, n_replicates=0, n_comparisons=n, rows_folded_by_order=0)
    return JudgeFigures(
        judge=name, model=None, judge_type=None, baseline="base", candidate=cand, n_judgments=n,
        invalid_judgments=invalid, wins=0, losses=0, ties=0, invalid=invalid, n=n, n_valid=n_valid,
        n_prompts=n_prompts, invalid_rate=invalid / n if n else None, win_rate=est, strict_win_rate=None, ci95=ci,
        strict_ci95=unused, sign_test_p=None,
        information=Information(informative=information is None, follows=None, side=None, share=None, n=n,
                                statement=information, advice=None),
        power=power(mde, n_prompts=n_prompts, n_comparisons=n), rows=rows,
        length_controlled=LengthControlled(**interval_fields(lc), raw_win_rate=est, length_coef=None,
                                           estimable=True),
        style_controlled=StyleControlled(**interval_fields(unused), raw_win_rate=est, estimable=False,
                                         length_unit="characters", coefficients=[], sentence=""),
        logprob_preference=None)


def replicate_figures(*, excess: bool = False, disagreement_rate: float | None = None, n_pairs: int = 0,
               excess_p: float | None = None) -> Replicates:
    """`bias[].order_consistency.replicates`."""
    return Replicates(n_pairs=n_pairs, n_disagree=0, disagreement_rate=disagreement_rate, excess_p=excess_p,
                      excess=excess)


def flipped(prompt_id: str, *, reversal: bool = True, verdict_like: bool = False, section: str = "s",
            sample_index: int = 0) -> FlippedComparison:
    """`bias[].order_consistency.flipped[]`: a win in the first order that became a loss in the second."""
    return FlippedComparison(section=section, prompt_id=prompt_id, sample_index=sample_index,
                             outcome_first_order=1.0, outcome_second_order=0.0, reversal=reversal,
                             verdict_like=verdict_like)


def order_consistency(*, n_flipped: int, n_pairs: int, reversals: int, systematic: bool, toward_first: int,
                      toward_second: int, direction_p: float | None, flip_rate: float | None,
                      replicates: Replicates | None = None,
                      flipped: Sequence[FlippedComparison] = ()) -> OrderConsistency:
    """`bias[].order_consistency` with the figures the order-flip warnings read."""
    return OrderConsistency(n_pairs=n_pairs, consistent=None if not n_pairs else 1 - n_flipped / n_pairs,
                            n_flipped=n_flipped, reversals=reversals, flipped=list(flipped), flip_rate=flip_rate,
                            toward_first=toward_first, toward_second=toward_second, direction_p=direction_p,
                            systematic=systematic, replicates=replicates or replicate_figures(),
                            warn=False)


def bias(name: str, *, cand: str = "brie", label: bool = False, length: bool = False) -> BiasDiagnostics:
    """A `bias[]` entry: a significant label (and position) lean, or a flagged length bias."""
    share = interval(0.89, 0.6, 0.98)
    return BiasDiagnostics(
        judge=name, candidate=cand, baseline="base",
        label=LabelBias(randomised=True, label_a_share=share, p_value=0.01, ft_win_rate_as_a=None,
                        ft_win_rate_as_b=None, odds_ratio=None, fisher_p=0.01, n_decisive=40, significant=label),
        position=PositionBias(first_shown_share=share, p_value=0.01, n_decisive=40, significant=label),
        order_consistency=order_consistency(n_flipped=0, n_pairs=0, reversals=0, systematic=False, toward_first=0,
                                            toward_second=0, direction_p=None, flip_rate=None),
        length=LengthBias(ft_longer=interval(0.95, 0.8, 1.0), ft_shorter=interval(0.3, 0.1, 0.5), n_equal=0,
                          share_ft_longer=None, spearman_rho=None, p_value=None, gap=None, fisher_p=None,
                          flagged=length, gap_threshold=0.25, alpha=0.05, confounded=False))


def failed_judge(name: str, failed_units: int, kind: str | None, message: str | None) -> FailedJudge:
    """A `failed_judges[]` entry: a judge with no stored verdict whose calls failed."""
    return FailedJudge(judge=name, model=None, type=None, failed_units=failed_units, kind=kind, message=message)


def report(judges: Sequence[JudgeFigures], biases: Sequence[BiasDiagnostics] = (), *, n_prompts: int = 25,
           legacy: bool = False, failed: Sequence[FailedJudge] = (),
           contenders: Sequence[Contender] = ()) -> Report:
    """A `Report` holding these judges, bias entries and failed judges; run `r` of suite `s`."""
    run = RunInfo(id="r", suite="s", suite_path="s.yaml", description=None, seed=0, status="done", created_at=None,
                  finished_at=None, legacy=legacy, labels_randomised=not legacy, versions={}, n_judgments=0,
                  n_comparisons=0, n_prompts=n_prompts, failed_units=0, retried_attempts=0)
    method = Method(interval="", orders="", win_rate="", kappa_paradox="", agreement_items="", flips="", level=0.95,
                    n_boot=0, seed=0, min_prompts=10, rows="", bootstrap_min_prompts=0,
                    length_bias=LengthBiasThresholds(gap=0.25, alpha=0.05), verdict_like="")
    cost = Cost(judges=[], contenders=[], calls=0, total_usd=None, known_usd=0.0, all_priced=True)
    return Report(schema="brie-bench-report", schema_version=0, brie_bench_version="0", generated_at="",
                  run=run, verdict=Verdict(text="", candidates=[], rules=""), method=method,
                  contenders=list(contenders), judge_info=[], judge_families={}, judges=list(judges),
                  failures=[], failed_judges=list(failed), sections=[], agreement=[], bias=list(biases), criteria=[],
                  ranking=[], verdict_like=[], cost=cost, legacy=None, warnings=[])
