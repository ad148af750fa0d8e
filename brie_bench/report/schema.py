"""The report's schema in code: frozen records that mirror docs/report-schema.md, one class per JSON object.

`report.model.build_report` returns a `Report`; the renderers (terminal, Markdown,
HTML, model card, gate, viewer, run-vs-run) read it by attribute, so strict mypy
checks every access and a renamed field breaks the build, not a reader's report.
`Report.to_json_dict()` is the one path to JSON (`report --json`): it writes every
field in declaration order, so **a class's field order is the JSON key order**, and a
field may not be reordered without changing the JSON. Two rules bend the plain
"field name = key" mapping, each marked on its field:

* `key`: the JSON key when it is not a Python name (`lambda`);
* `omit_none`: the key is left out, not written as null, when the value is None
  (`JudgeFigures.human_calibrated`: "absent otherwise" in the schema doc).

Values are plain data (str, int, float, bool, None, list, dict, or another record);
`dict[str, X]` holds objects whose keys are data (judge families, package versions).
Figures that do not exist are None, written as null. Bump `SCHEMA_VERSION`
(report.model) only when a field changes meaning or disappears.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


_LAYOUTS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def json_layout(cls: type) -> tuple[tuple[str, str, bool], ...]:
    """(attribute, JSON key, omit when None) per field, in declaration (= JSON) order; computed once per class.

    What `Record.to_json_dict` writes, and what the one-pass JSON writer (`report.jsonout`) reads
    a record's fields by, so the two cannot disagree about a key or its order.
    """
    found = _LAYOUTS.get(cls)
    if found is None:
        found = _LAYOUTS[cls] = tuple((f.name, f.metadata.get("key", f.name), bool(f.metadata.get("omit_none")))
                                      for f in dataclasses.fields(cls))
    return found


def _plain(value: Any) -> Any:
    """`value` with every record inside it turned into its JSON dict (lists and dicts copied)."""
    if isinstance(value, Record):
        return value.to_json_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Record:
    """Base of every report record: the JSON form, fields in declaration order."""

    __slots__ = ()

    def to_json_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: keys in field order, nested records converted, None kept as null."""
        out: dict[str, Any] = {}
        for name, key, omit in json_layout(type(self)):
            value = getattr(self, name)
            if value is None and omit:
                continue
            out[key] = _plain(value)
        return out


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True, slots=True)
class Interval(Record):
    """Every interval of the report ("Interval objects"): the figure, its bounds and whether to trust it."""

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    method: str
    method_note: str | None
    n: int
    n_prompts: int | None
    reliable: bool
    trusted: bool
    note: str | None


@dataclass(frozen=True, slots=True)
class LengthControlled(Interval):
    """`judges[].length_controlled`: the win rate at equal answer length."""

    raw_win_rate: float | None
    length_coef: float | None
    estimable: bool


@dataclass(frozen=True, slots=True)
class StyleCoefficient(Record):
    """One covariate of the style-controlled fit (`judges[].style_controlled.coefficients[]`)."""

    feature: str
    per_sd: float | None
    low: float | None
    high: float | None
    sd: float | None
    constant: bool
    sentence: str | None


@dataclass(frozen=True, slots=True)
class StyleControlled(Interval):
    """`judges[].style_controlled`: the win rate at equal style (length and markdown)."""

    raw_win_rate: float | None
    estimable: bool
    length_unit: str
    coefficients: list[StyleCoefficient]
    sentence: str


@dataclass(frozen=True, slots=True)
class HumanCalibrated(Interval):
    """`judges[].human_calibrated`: the people's win rate by PPI++, the judge's verdicts narrowing it."""

    human_only: Interval
    humans: list[str]
    n_human_verdicts: int
    n_labelled_prompts: int
    n_judged_prompts: int
    lambda_: float | None = field(metadata={"key": "lambda"})
    narrower_by: float | None
    target_width: float
    labelled_prompts_for_target: int | None
    sentence: str


# --------------------------------------------------------------------------- run, method, contenders


@dataclass(frozen=True, slots=True)
class RunInfo(Record):
    """`run`: the run as stored, and how many judgments, comparisons and prompts it holds."""

    id: str
    suite: str
    suite_path: str
    description: str | None
    seed: int
    status: str
    created_at: str | None
    finished_at: str | None
    legacy: bool
    labels_randomised: bool
    versions: dict[str, Any]
    n_judgments: int
    n_comparisons: int
    n_prompts: int
    failed_units: int
    retried_attempts: int


@dataclass(frozen=True, slots=True)
class LengthBiasThresholds(Record):
    """`method.length_bias`: the thresholds of the length-bias warning."""

    gap: float
    alpha: float


@dataclass(frozen=True, slots=True)
class Method(Record):
    """`method`: how the figures were computed, in words and parameters."""

    interval: str
    orders: str
    win_rate: str
    kappa_paradox: str
    agreement_items: str
    flips: str
    level: float
    n_boot: int
    seed: int
    min_prompts: int
    rows: str
    bootstrap_min_prompts: int
    length_bias: LengthBiasThresholds
    verdict_like: str


@dataclass(frozen=True, slots=True)
class Contender(Record):
    """`contenders[]`."""

    name: str
    role: str
    backend: str | None
    model: str | None
    adapter: Any
    options: Any
    provenance: Any


@dataclass(frozen=True, slots=True)
class JudgeInfo(Record):
    """`judge_info[]`."""

    name: str
    type: str | None
    model: str | None
    backend: str | None
    options: Any


@dataclass(frozen=True, slots=True)
class Failure(Record):
    """`failures[]`: one contender or judge with any failed attempt."""

    name: str
    unit_kind: str
    failed_units: int
    retried_attempts: int
    kind: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class FailedJudge(Record):
    """`failed_judges[]`: a judge with no stored verdict whose calls failed."""

    judge: str
    model: str | None
    type: str | None
    failed_units: int
    kind: str | None
    message: str | None


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True, slots=True)
class VerdictReading(Record):
    """`verdict.candidates[].judges[]`: how one judge reads against the candidate."""

    judge: str
    reading: str
    estimate: float | None
    low: float | None
    high: float | None
    n_prompts: int | None
    reason: str | None
    obstacle: str | None


@dataclass(frozen=True, slots=True)
class VerdictCaveat(Record):
    """`verdict.candidates[].caveat`: the one caveat that matters most."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class CandidateVerdict(Record):
    """`verdict.candidates[]`: the conclusion about one candidate (`finding`: better, worse, mixed, ...)."""

    candidate: str
    baseline: str
    finding: str
    text: str
    sentences: list[str]
    agree: bool | None
    judges: list[VerdictReading]
    caveat: VerdictCaveat | None


@dataclass(frozen=True, slots=True)
class Verdict(Record):
    """`verdict`: the conclusion in plain sentences (brie_bench.conclusion)."""

    text: str
    candidates: list[CandidateVerdict]
    rules: str


# --------------------------------------------------------------------------- judges


@dataclass(frozen=True, slots=True)
class OutcomeFigures(Record):
    """Counts, win rates, their intervals and the sign test for one set of comparisons.

    Not an object of its own in the JSON: its fields appear, flat, in every entry
    that counts comparisons (`JudgeFigures`, `SectionJudgeFigures`, `MajorityVote`).
    """

    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    invalid_rate: float | None
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    sign_test_p: float | None

    def fields(self) -> dict[str, Any]:
        """The figures as keyword arguments of an entry that holds them flat."""
        return {name: getattr(self, name) for name, _, _ in json_layout(OutcomeFigures)}


@dataclass(frozen=True, slots=True)
class Information(Record):
    """`judges[].information`: whether the judge's verdicts carry information, or follow position, label or order."""

    informative: bool
    follows: str | None
    side: str | None
    share: float | None
    n: int
    statement: str | None
    advice: str | None


@dataclass(frozen=True, slots=True)
class PowerVariance(Record):
    """`judges[].power.variance`: one comparison's outcome variance, split between and within prompts."""

    total: float | None
    between_prompt: float | None
    within_prompt: float | None
    between_share: float | None
    order: float | None
    n_order_pairs: int
    identified: bool
    total_at_null: float | None
    flip_ties: float | None


@dataclass(frozen=True, slots=True)
class Power(Record):
    """`judges[].power`: what this run's layout could detect (brie_bench.power.report_entry)."""

    alpha: float
    power: float
    mde: float | None
    mde_reason: str | None
    detectable_above: float | None
    detectable_below: float | None
    n_prompts: int
    n_comparisons: int
    comparisons_per_prompt: float | None
    significant: bool | None
    statement: str
    variance: PowerVariance
    recommended_samples: int | None
    recommendation: str
    effect: float
    prompts_needed: int | None

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Power:
        """From `brie_bench.power.report_entry`'s plain data (that module knows nothing of the report)."""
        return cls(**{**entry, "variance": PowerVariance(**entry["variance"])})


@dataclass(frozen=True, slots=True)
class RowLevel(Record):
    """`judges[].rows`: every stored judgment counted once, as the original Brie Bench did."""

    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    strict_wilson95: Interval
    n_answer_pairs: int
    n_replicates: int
    n_comparisons: int
    rows_folded_by_order: int


@dataclass(frozen=True, slots=True)
class JudgeFigures(Record):
    """`judges[]` (the headline): one judge against one candidate."""

    judge: str
    model: str | None
    judge_type: str | None
    baseline: str
    candidate: str
    n_judgments: int
    invalid_judgments: int
    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    invalid_rate: float | None
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    sign_test_p: float | None
    information: Information
    power: Power
    rows: RowLevel
    length_controlled: LengthControlled
    style_controlled: StyleControlled
    logprob_preference: Interval | None
    human_calibrated: HumanCalibrated | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True)
class SectionJudgeFigures(Record):
    """`sections[].judges[]`: the headline counts and rates of one judge and candidate within a section."""

    judge: str
    candidate: str
    baseline: str
    model: str | None
    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    invalid_rate: float | None
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    sign_test_p: float | None


@dataclass(frozen=True, slots=True)
class Section(Record):
    """`sections[]`."""

    section: str
    n_prompts: int
    n_judgments: int
    judges: list[SectionJudgeFigures]


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True, slots=True)
class AgreementPair(Record):
    """`agreement[].pairs[]`: two judges' agreement."""

    judge_a: str
    judge_b: str
    n: int
    percent: float | None
    cohen_kappa: float | None


@dataclass(frozen=True, slots=True)
class HumanAgreement(Record):
    """`agreement[].human_llm[]`: a person's agreement with another judge, person first."""

    human: str
    judge: str
    n: int
    percent: float | None
    cohen_kappa: float | None


@dataclass(frozen=True, slots=True)
class MajorityVote(Record):
    """`agreement[].majority_vote`: the panel's consensus per comparison, counted as a judge entry is.

    JSON key order as it always was: `left_out` comes second when some judge was left
    out of the vote, and last when none was.
    """

    judges: list[str]
    left_out: list[str]
    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    invalid_rate: float | None
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    sign_test_p: float | None

    def to_json_dict(self) -> dict[str, Any]:
        out = Record.to_json_dict(self)
        if not self.left_out:
            out["left_out"] = out.pop("left_out")
        return out


@dataclass(frozen=True, slots=True)
class Agreement(Record):
    """`agreement[]`: agreement between judges over one candidate's items, and their majority vote."""

    candidate: str
    baseline: str
    judges: list[str]
    families: dict[str, list[str]]
    alignment: str
    n_items: int
    n_complete: int
    percent_all: float | None
    n_all_agree: int
    fleiss_kappa: float | None
    krippendorff_alpha: float | None
    gwet_ac1: float | None
    pairs: list[AgreementPair]
    human_llm: list[HumanAgreement]
    note: str
    majority_vote: MajorityVote


# --------------------------------------------------------------------------- bias


@dataclass(frozen=True, slots=True)
class LabelBias(Record):
    """`bias[].label`."""

    randomised: bool
    label_a_share: Interval
    p_value: float | None
    ft_win_rate_as_a: float | None
    ft_win_rate_as_b: float | None
    odds_ratio: float | None
    fisher_p: float | None
    n_decisive: int
    significant: bool


@dataclass(frozen=True, slots=True)
class PositionBias(Record):
    """`bias[].position`."""

    first_shown_share: Interval
    p_value: float | None
    n_decisive: int
    significant: bool


@dataclass(frozen=True, slots=True)
class FlippedComparison(Record):
    """`bias[].order_consistency.flipped[]`: a comparison whose verdict changed with the order."""

    section: str
    prompt_id: str
    sample_index: int
    outcome_first_order: float
    outcome_second_order: float
    reversal: bool
    verdict_like: bool


@dataclass(frozen=True, slots=True)
class Replicates(Record):
    """`bias[].order_consistency.replicates`: same-order re-judgments, against which flips are measured."""

    n_pairs: int
    n_disagree: int
    disagreement_rate: float | None
    excess_p: float | None
    excess: bool


@dataclass(frozen=True, slots=True)
class OrderConsistency(Record):
    """`bias[].order_consistency`."""

    n_pairs: int
    consistent: float | None
    n_flipped: int
    reversals: int
    flipped: list[FlippedComparison]
    flip_rate: float | None
    toward_first: int
    toward_second: int
    direction_p: float | None
    systematic: bool
    replicates: Replicates
    warn: bool


@dataclass(frozen=True, slots=True)
class LengthBias(Record):
    """`bias[].length`."""

    ft_longer: Interval
    ft_shorter: Interval
    n_equal: int
    share_ft_longer: float | None
    spearman_rho: float | None
    p_value: float | None
    gap: float | None
    fisher_p: float | None
    flagged: bool
    gap_threshold: float
    alpha: float
    confounded: bool


@dataclass(frozen=True, slots=True)
class BiasDiagnostics(Record):
    """`bias[]`: label, position, order-consistency and length diagnostics of one judge and candidate."""

    judge: str
    candidate: str
    baseline: str
    label: LabelBias
    position: PositionBias
    order_consistency: OrderConsistency
    length: LengthBias


# --------------------------------------------------------------------------- criteria, ranking, verdict-like text


@dataclass(frozen=True, slots=True)
class Criterion(Record):
    """`criteria[]`: one criterion's 1-5 scores and the paired difference."""

    judge: str
    candidate: str
    criterion: str
    mean_candidate: float | None
    mean_baseline: float | None
    difference: Interval


@dataclass(frozen=True, slots=True)
class RankedContender(Record):
    """`ranking[].contenders[]`."""

    contender: str
    strength: float | None
    low: float | None
    high: float | None
    win_rate_vs_baseline: float | None


@dataclass(frozen=True, slots=True)
class Ranking(Record):
    """`ranking[]`: Bradley-Terry strengths of one judge."""

    judge: str
    anchor: str
    n_games: int
    converged: bool
    contenders: list[RankedContender]


@dataclass(frozen=True, slots=True)
class VerdictLike(Record):
    """`verdict_like[]`: a comparison whose answers hold verdict-like text."""

    judge: str
    section: str
    prompt_id: str
    sample_index: int
    candidate: str
    baseline: str
    answers: list[str]
    passages: dict[str, str]


# --------------------------------------------------------------------------- cost, legacy, warnings


@dataclass(frozen=True, slots=True)
class JudgeCost(Record):
    """`cost.judges[]`."""

    name: str
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    latency_s: float
    usd: float | None
    priced: bool


@dataclass(frozen=True, slots=True)
class ContenderCost(Record):
    """`cost.contenders[]` (`calls` equals `generations`: one call per answer)."""

    name: str
    model: str | None
    generations: int
    input_tokens: int
    output_tokens: int
    calls: int
    usd: float | None
    priced: bool


@dataclass(frozen=True, slots=True)
class Cost(Record):
    """`cost`: tokens, latency and USD per judge and contender."""

    judges: list[JudgeCost]
    contenders: list[ContenderCost]
    calls: int
    total_usd: float | None
    known_usd: float
    all_priced: bool


@dataclass(frozen=True, slots=True)
class LegacyDisagreement(Record):
    """`legacy.disagreements[]`: a stored verdict that Brie Bench's parser reads differently.

    Keys in alphabetical order, as the run's metadata has always stored them (and the JSON written them).
    """

    file: str
    judge: str | None
    line: int
    parsed: str
    prompt_id: str
    reason: str | None
    sample_index: int
    section: str
    stored: str

    @classmethod
    def from_stored(cls, entry: dict[str, Any]) -> LegacyDisagreement:
        """From the run's stored metadata (written by `report.legacy` at import)."""
        return cls(file=entry["file"], judge=entry.get("judge"), line=entry["line"], parsed=entry["parsed"],
                   prompt_id=entry["prompt_id"], reason=entry.get("reason"), sample_index=entry["sample_index"],
                   section=entry["section"], stored=entry["stored"])


@dataclass(frozen=True, slots=True)
class LegacyImport(Record):
    """`legacy`: what an import of the original tool's files found."""

    files: Any
    disagreements: list[LegacyDisagreement]
    duplicates: int
    replicates: int


@dataclass(frozen=True, slots=True)
class ReportWarning(Record):
    """`warnings[]`: something a reader must see before the numbers (`kind` says what)."""

    kind: str
    text: str


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class Report(Record):
    """The whole report of one run (docs/report-schema.md, "Top level"); `to_json_dict()` is `report --json`."""

    schema: str
    schema_version: int
    brie_bench_version: str
    generated_at: str
    run: RunInfo
    verdict: Verdict
    method: Method
    contenders: list[Contender]
    judge_info: list[JudgeInfo]
    judge_families: dict[str, list[str]]
    judges: list[JudgeFigures]
    failures: list[Failure]
    failed_judges: list[FailedJudge]
    sections: list[Section]
    agreement: list[Agreement]
    bias: list[BiasDiagnostics]
    criteria: list[Criterion]
    ranking: list[Ranking]
    verdict_like: list[VerdictLike]
    cost: Cost
    legacy: LegacyImport | None
    warnings: list[ReportWarning]


# --------------------------------------------------------------------------- run against run


@dataclass(frozen=True, slots=True)
class ComparedRun(Record):
    """`run_a` / `run_b` of a run-vs-run comparison: which run, as stored."""

    id: str
    suite: str
    seed: int
    status: str
    legacy: bool
    n_judgments: int


@dataclass(frozen=True, slots=True)
class ComparisonMethod(Record):
    """`method` of a run-vs-run comparison: each run's interval, the paired difference's, how orders count."""

    interval: str
    difference: str
    orders: str


@dataclass(frozen=True, slots=True)
class ComparedSide(Record):
    """`judges[].a` / `.b`: one run's counts, win rates and intervals for this judge (as a `judges[]` entry has them)."""

    candidate: str
    baseline: str
    model: str | None
    wins: int
    losses: int
    ties: int
    invalid: int
    n: int
    n_valid: int
    n_prompts: int
    invalid_rate: float | None
    win_rate: float | None
    strict_win_rate: float | None
    ci95: Interval
    strict_ci95: Interval
    sign_test_p: float | None


@dataclass(frozen=True, slots=True)
class FlippedPrompt(Record):
    """`judges[].flipped[]`: a shared prompt the candidate won on average in one run and lost in the other."""

    section: str
    prompt: str
    win_rate_a: float
    win_rate_b: float


@dataclass(frozen=True, slots=True)
class DetectableDifference(Record):
    """`judges[].minimum_detectable_difference`: what the paired design could detect (80% power, α = 0.05)."""

    mdd: float | None
    se: float | None
    n_prompts: int
    alpha: float
    power: float
    mdd_reason: str | None
    statement: str


@dataclass(frozen=True, slots=True)
class ComparisonRow(Record):
    """`judges[]` (and `sections[].judges[]`) of a comparison: one judge's A, B and A − B."""

    judge: str
    a: ComparedSide
    b: ComparedSide
    difference: Interval
    n_shared_prompts: int
    flipped: list[FlippedPrompt]
    minimum_detectable_difference: DetectableDifference


@dataclass(frozen=True, slots=True)
class ComparisonSection(Record):
    """`sections[]` of a comparison: the rows of the judges that judged this section in both runs."""

    section: str
    judges: list[ComparisonRow]


@dataclass(frozen=True, slots=True)
class Comparison(Record):
    """Run A against run B (`brie-bench report RUN_A RUN_B --json`, schema `brie-bench-comparison`)."""

    schema: str
    schema_version: int
    brie_bench_version: str
    generated_at: str
    run_a: ComparedRun
    run_b: ComparedRun
    method: ComparisonMethod
    judges: list[ComparisonRow]
    sections: list[ComparisonSection]
    warnings: list[ReportWarning]
