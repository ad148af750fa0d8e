"""Build one versioned report for a run: every figure the HTML, Markdown and JSON show.

All statistics come from `brie_bench.stats`; this module only decides *what* to
feed them (which rows, which clusters) and how to name the results. It returns a
`report.schema.Report`, frozen records whose layout is documented in
docs/report-schema.md (`Report.to_json_dict()` is the JSON); bump `SCHEMA_VERSION`
when a field changes meaning or disappears (adding fields is compatible). Each
table is computed first and its record constructed once: a judge that carries no
information gets its figures withheld as they are made, not blanked afterwards.

Counting rule: a *comparison* is one pair of answers (section, prompt, sample,
baseline, candidate) seen by one judge. Under ``orders: both`` it has two
judgments; they count once, as the shared verdict when both orders agree and
as a tie when they disagree (MT-Bench's rule), invalid when either is invalid.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import operator
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np

from brie_bench import __version__, stats
from brie_bench.gcpause import collector_paused
from brie_bench.stats import bias as stats_bias
from brie_bench.stats.ranks import unique_inverse, unique_values
from brie_bench.report.figures import (MIN_PROMPTS, finite, interval_fields, report_interval, wilson_interval,
                                       withheld)
from brie_bench.report.columns import RowsView, RunColumns, view_of
from brie_bench.report.rows import NAN, ItemKey, JRow, RunData, group_by, load_run
from brie_bench.report.schema import (Agreement, AgreementPair, BiasDiagnostics, Contender, ContenderCost, Cost,
                                      Criterion, FailedJudge, Failure, FlippedComparison, HumanAgreement,
                                      Information, Interval, JudgeCost, JudgeFigures, JudgeInfo, LabelBias,
                                      LegacyDisagreement, LegacyImport, LengthBias, LengthBiasThresholds, LengthControlled,
                                      MajorityVote, Method, OrderConsistency, OutcomeFigures, PositionBias, Power,
                                      RankedContender, Ranking, Replicates, Report, ReportWarning, RowLevel,
                                      RunInfo, Section, SectionJudgeFigures, Verdict, VerdictLike)
from brie_bench.store import Store

#: 3: `verdict.candidates[].outcome` renamed `finding` (docs/report-schema.md, "Versions").
SCHEMA_VERSION = 3
SCHEMA_ID = "brie-bench-report"
N_BOOT = 2000
BOOT_SEED = 0
LEVEL = 0.95
#: Below this many distinct prompts the report warns that every figure is rough.
FEW_PROMPTS = 10
#: A judge that answers invalidly this often is flagged.
INVALID_WARN = 0.10
ALPHA = 0.05

INTERVAL_EXPLANATION = (
    "Intervals are 95% intervals that treat whole prompts as the unit: a prompt is its text, so the "
    "same prompt rerun in several sections (temperatures, token lengths, reruns) is one prompt. "
    "Judgments of the same prompt share its answers and its difficulty, so they are not independent; "
    "the number of prompts, not of judgments, is the real sample size. A win rate's interval is an exact "
    "(Clopper-Pearson) interval on the effective number of judgments: the judgment count shrunk by how much "
    "judgments of one prompt move together, and again for estimating that from few prompts (Korn and "
    "Graubard). It stays lopsided near 0% and 100%, where win rates of good fine-tunes live; the percentile "
    "bootstrap and the cluster-t interval covered the true rate only 80-90% of the time there "
    "(docs/statistics.md, benchmarks/coverage.py). When every verdict goes the same way it is an exact "
    "interval over prompts, because there is no variation to measure. Other means (score differences, "
    f"probabilities) use a percentile bootstrap over prompts ({N_BOOT:,} resamples, seed {BOOT_SEED}) from "
    f"{stats.BOOTSTRAP_MIN_CLUSTERS} prompts on and a cluster-robust t interval below. An interval "
    f"'cannot be trusted' when there is no valid verdict, fewer than {MIN_PROMPTS} prompts, zero width, "
    "a span of almost all of 0-100%, or when it comes from a fit that did not converge to a finite value."
)
ROWS_EXPLANATION = (
    "Row level counts every stored judgment once, as the original Brie Bench did (its published "
    "percentages are row-level): a re-judgment of the same comparison by the same judge is a row of its own, "
    "and a comparison judged in both presentation orders is two rows. The comparison level (the headline) counts "
    "a comparison judged in both orders once (the MT-Bench rule). Both are clustered by prompt text; the "
    "Wilson interval beside them treats every row as independent and is too narrow when prompts repeat, "
    "which is why the clustered interval is the one to quote."
)
ORDERS_EXPLANATION = (
    "A comparison judged in both orders counts once: the shared verdict when both orders agree, "
    "a tie when they disagree (as in MT-Bench), invalid when either order was invalid."
)
WIN_RATE_EXPLANATION = (
    "Win rate: the candidate's share of valid verdicts, a tie counting as half a win (0.5 = no "
    "preference). Strict win rate: wins / (wins + losses + ties), the figure the original Brie Bench "
    "published. Invalid verdicts (unparseable, refused, errored) are never counted as ties or wins."
)
LEGACY_WARNING = (
    "Imported from the original Brie Bench: labels were NOT randomised. 'Response A' was always the "
    "baseline and 'Response B' always the fine-tune; only the print order changed. Any preference a "
    "judge has for the label 'B' is credited to the fine-tune, and label bias cannot be told apart "
    "from a real preference."
)
FLIP_EXPLANATION = (
    "A verdict that changes when the two answers swap places followed the position or label, not the "
    "content; a win in one order and a loss in the other is also the signature of a prompt injection "
    "in an answer ('say Response A is better')."
)


# --------------------------------------------------------------------------- helpers


@dataclass
class Comparisons:
    """One judge's comparisons: one outcome each (orders combined), with its prompt and answer lengths.

    A comparison is one pair of answers seen by one judge (the module docstring's
    counting rule). `pairs` are the comparisons judged in both presentation orders, with the
    outcome of each order; `clusters` each comparison's prompt.
    """

    keys: list[ItemKey]
    outcomes: np.ndarray
    clusters: np.ndarray
    len_ft: np.ndarray
    len_base: np.ndarray
    pairs: list[tuple[ItemKey, float, float]]
    #: Each comparison's number among `columns.keys` (the loader's `RunColumns`), when the rows were a `RowsView`.
    key_index: np.ndarray | None = None
    columns: RunColumns | None = None


@dataclass(frozen=True)
class _Columns:
    """Judgments as numpy columns, coded once: the report's tables are array arithmetic over them.

    `rows` are the `JRow`s the columns were coded from (row i of every column is rows[i]),
    kept for the few tables that list single comparisons. `keys` are the distinct
    comparisons (`ItemKey`) in first-seen order and `item` each row's index into them;
    `prompt` is each row's prompt number: its rank among the prompt names in `rank` (the
    run's sorted prompts, so the numbers are a report's `Draws` columns), or among the
    rows' own prompts when no rank is given.
    """

    rows: Sequence[JRow]
    keys: list[ItemKey]
    item: np.ndarray
    prompt: np.ndarray
    order: np.ndarray
    outcome: np.ndarray
    ft_is_a: np.ndarray
    a_first: np.ndarray
    named: bool
    len_ft: np.ndarray
    len_base: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[JRow], rank: dict[str, int] | None = None) -> _Columns:
        if isinstance(rows, RowsView):  # the loader's columns: comparisons are the run's, numbered run-wide
            rc = rows.cols
            if rank is None or list(rank) == rc.clusters:
                return cls(rows, rc.keys, rows.column("item"), rows.column("prompt"), rows.column("order"),
                           rows.column("outcome"), rows.column("ft_is_a"), rows.column("a_first"), rank is None,
                           rows.column("len_ft"), rows.column("len_base"))
        n = len(rows)
        items = list(map(_ITEM, rows))
        keys = list(dict.fromkeys(items))
        index = dict(zip(keys, range(len(keys))))
        item = np.fromiter(map(index.__getitem__, items), dtype=np.intp, count=n)
        names = [k.cluster for k in keys]
        if rank is None:
            own = {name: i for i, name in enumerate(sorted(set(names)))}
            per_key = np.fromiter(map(own.__getitem__, names), dtype=np.int64, count=len(names))
        else:
            per_key = np.fromiter(map(rank.__getitem__, names), dtype=np.int64, count=len(names))
        return cls(rows, keys, item, per_key[item] if n else np.zeros(0, dtype=np.int64),
                   np.fromiter(map(_ORDER, rows), dtype=np.int64, count=n),
                   _outcomes(rows),
                   _ft_is_a(rows),
                   _a_first(rows), rank is None,
                   np.fromiter((len(r.text_ft) for r in rows), dtype=float, count=n),
                   np.fromiter((len(r.text_base) for r in rows), dtype=float, count=n))

    def take(self, idx: np.ndarray) -> _Columns:
        """The columns of rows[idx] (in that order), sharing this set's comparison and prompt numbering."""
        rows = self.rows.take(idx) if isinstance(self.rows, RowsView) else [self.rows[i] for i in idx.tolist()]
        return _Columns(rows, self.keys, self.item[idx], self.prompt[idx], self.order[idx], self.outcome[idx],
                        self.ft_is_a[idx], self.a_first[idx], self.named, self.len_ft[idx], self.len_base[idx])

    def clusters(self, key_index: np.ndarray) -> np.ndarray:
        """The prompts of the comparisons `key_index`: names outside a report (as before), numbers inside."""
        if self.named:
            return np.asarray([self.keys[i].cluster for i in key_index.tolist()], dtype=object)
        first = np.zeros(len(self.keys), dtype=np.int64)
        first[self.item[::-1]] = self.prompt[::-1]
        return np.asarray(first[key_index])


def _groups(codes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Row indices per distinct combination of `codes`, groups in first-seen order, rows in stored order."""
    if not codes or not len(codes[0]):
        return []
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    for c in codes:
        combined = combined * (int(c.max()) + 1) + c
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(len(order))
    g = relabel[inverse.reshape(-1)]
    sort = np.argsort(g, kind="stable")
    return np.split(sort, np.flatnonzero(np.diff(g[sort])) + 1)


def _codes(values: Iterable[Any], n: int) -> np.ndarray:
    """Each value's number in first-seen order: two C-level passes (distinct values, then a lookup each)."""
    found = list(values)
    index = dict(zip(dict.fromkeys(found), range(n)))
    return np.fromiter(map(index.__getitem__, found), dtype=np.int64, count=n)


#: Per-row column readers, C-level (`operator.attrgetter`): a 100,000-judgment report reads each column
#: of every row several times, and a generator expression per read was a large share of its time.
_ITEM = operator.attrgetter("item")
_ORDER = operator.attrgetter("presentation_order")
_OUTCOME = operator.attrgetter("outcome")
_FT_IS_A = operator.attrgetter("ft_is_a")
_FIRST_LABEL = operator.attrgetter("first_label")
_JUDGE = operator.attrgetter("judge")
_P_FT = operator.attrgetter("p_ft")


def _outcomes(rows: Sequence[JRow]) -> np.ndarray:
    if isinstance(rows, RowsView):
        return np.asarray(rows.column("outcome"))
    return np.fromiter(map(_OUTCOME, rows), dtype=float, count=len(rows))


def _ft_is_a(rows: Sequence[JRow]) -> np.ndarray:
    if isinstance(rows, RowsView):
        return np.asarray(rows.column("ft_is_a"))
    return np.fromiter(map(_FT_IS_A, rows), dtype=bool, count=len(rows))


def _a_first(rows: Sequence[JRow]) -> np.ndarray:
    if isinstance(rows, RowsView):
        return np.asarray(rows.column("a_first"))
    return np.fromiter(map("A".__eq__, map(_FIRST_LABEL, rows)), dtype=bool, count=len(rows))


def _by_candidate(rows: Sequence[JRow]) -> list[Sequence[JRow]]:
    """The rows of each candidate, candidates in first-seen order (`group_by` over "item.candidate")."""
    view = view_of(rows)
    return [view.take(idx) for idx in _groups([view.column("candidate")])]


def _judge_names(rows: Sequence[JRow]) -> list[str]:
    """The judges of `rows`, in first-seen order."""
    if isinstance(rows, RowsView):
        return [rows.cols.judges[j] for j in dict.fromkeys(rows.column("judge").tolist())]
    return list(dict.fromkeys(map(_JUDGE, rows)))


def _rows_of_judge(rows: Sequence[JRow], judge: str) -> Sequence[JRow]:
    """The rows of one judge (or family), in their order."""
    if isinstance(rows, RowsView):
        codes = rows.cols.judges
        code = codes.index(judge) if judge in codes else -1
        return rows.take(np.flatnonzero(rows.column("judge") == code))
    return [r for r in rows if r.judge == judge]


def _grouped_judges(rows: Sequence[JRow]) -> set[str]:
    """The judges that are families: some row's stored judge (`member`) is not the judge itself."""
    if isinstance(rows, RowsView):
        rc = rows.cols
        pairs = set(zip(rows.column("judge").tolist(), rows.column("member").tolist()))
        if all(rc.judges[j] == rc.members[m] for j, m in pairs):
            return set()
    return {r.judge for r in rows if r.member and r.member != r.judge}


def _human_judges(rows: Sequence[JRow]) -> set[str]:
    """The judges with a row whose judge type is `human` (a person, in the terminal or the browser)."""
    if isinstance(rows, RowsView):
        rc = rows.cols
        human = np.asarray([t == "human" for t in rc.judge_types], dtype=bool)
        return {rc.judges[j] for j in np.unique(rows.column("judge")[human[rows.column("judge_type")]]).tolist()}
    return {r.judge for r in rows if r.judge_type == "human"}


def _row_clusters(rows: Sequence[JRow], rank: dict[str, int] | None) -> np.ndarray:
    """Each row's prompt (`_clusters` of its comparison): from the loader's prompt numbers when they are `rank`'s."""
    if isinstance(rows, RowsView) and rank and list(rank) == rows.cols.clusters:
        return np.asarray(rows.column("prompt"), dtype=np.int64)
    return _clusters(map(_ITEM, rows), rank)


class _Build:
    """What one report shares among its tables, made once per `build_report_from_data` call and passed down.

    `rank`: each prompt (cluster name) -> its rank among the run's sorted cluster names.
    Integer codes in that order number the prompts exactly as sorting the names does
    (`brie_bench.stats` numbers clusters in sorted order), so no statistic sorts strings.
    `draws`: the report's one set of bootstrap draws over those prompts (`stats.Draws`).
    `cols`: the run's judgments as columns; `comparisons`: each (candidate, judge)'s comparisons,
    collapsed once for the judge, bias, agreement and ranking tables. Nothing here
    outlives the call or is seen by another one: a report is a function of its data.
    """

    def __init__(self, data: RunData) -> None:
        rows = view_of(data.rows)
        rc = rows.cols
        self.rank = dict(zip(rc.clusters, range(len(rc.clusters))))  # the loader's clusters are sorted
        self.draws = stats.Draws(len(self.rank), N_BOOT, BOOT_SEED)
        self.cols = _Columns.of(rows, self.rank)
        self.candidate = rc.candidate
        self.judge = rc.judge
        self.by_judge = {self._key(idx): idx for idx in _groups([self.candidate, self.judge])}
        self.comparisons = {key: _comparisons_of_cols(self.cols.take(idx)) for key, idx in self.by_judge.items()}
        #: Each answer text's markdown counts, shared by the judges' style-controlled fits (all read the same answers).
        self.style_counts: dict[str, stats.StyleCounts] = {}

    def _key(self, idx: np.ndarray) -> tuple[str, str]:
        r = self.cols.rows[int(idx[0])]
        return r.item.candidate, r.judge

    def rows(self, idx: np.ndarray) -> Sequence[JRow]:
        rows = self.cols.rows
        return rows.take(idx) if isinstance(rows, RowsView) else [rows[i] for i in idx.tolist()]


def comparisons_of(rows: Sequence[JRow]) -> Comparisons:
    """Collapse one judge's rows into comparisons; pairs judged in both orders are combined (prompts by name)."""
    return _comparisons_of_cols(_Columns.of(rows))


def _comparisons_of_cols(cols: _Columns) -> Comparisons:
    """The collapse itself, over arrays: a 100,000-judgment report calls it for every judge and section.

    Per comparison (ItemKey, in first-seen order) and presentation order, the last row counts
    (as a later row of the same order replaces an earlier one). A comparison judged in
    both orders 0 and 1 is combined by `stats.combine_orders`, the one counting rule;
    otherwise it is the outcome of its first-seen order. Answer lengths come from that row.
    """
    n = len(cols.item)
    uniq, first_pos, inverse = np.unique(cols.item, return_index=True, return_inverse=True)
    seen = np.argsort(first_pos, kind="stable")
    relabel = np.empty_like(seen)
    relabel[seen] = np.arange(len(seen))
    item_of = relabel[inverse.reshape(-1)] if n else np.zeros(0, dtype=np.intp)
    key_index = uniq[seen]
    keys = list(map(cols.keys.__getitem__, key_index.tolist()))
    order_values, order_code = unique_values(cols.order), unique_inverse(cols.order)
    n_orders = max(1, len(order_values))
    positions = np.arange(n)
    last_flat = np.full(len(keys) * n_orders, -1, dtype=np.intp)
    np.maximum.at(last_flat, item_of * n_orders + order_code, positions)
    last = last_flat.reshape(len(keys), n_orders)
    first = first_pos[seen] if n else np.zeros(0, dtype=np.intp)
    chosen = last[np.arange(len(keys)), order_code[first]] if n else first
    row_outcome = cols.outcome
    outcomes = row_outcome[chosen]
    pairs: list[tuple[ItemKey, float, float]] = []
    if 0 in order_values and 1 in order_values:
        col0, col1 = int(np.searchsorted(order_values, 0)), int(np.searchsorted(order_values, 1))
        both = np.flatnonzero((last[:, col0] >= 0) & (last[:, col1] >= 0))
        a_out, b_out = row_outcome[last[both, col0]].tolist(), row_outcome[last[both, col1]].tolist()
        outcomes[both] = np.fromiter(map(stats.combine_orders, a_out, b_out), dtype=float, count=len(a_out))
        pairs = [(keys[i], a, b) for i, a, b in zip(both.tolist(), a_out, b_out)]
    source = cols.rows.cols if isinstance(cols.rows, RowsView) and cols.keys is cols.rows.cols.keys else None
    return Comparisons(keys, outcomes, cols.clusters(key_index), cols.len_ft[chosen], cols.len_base[chosen], pairs,
                       key_index if source is not None else None, source)


def _clusters(keys: Iterable[ItemKey], rank: dict[str, int] | None = None) -> np.ndarray:
    """Each key's prompt: its rank among the run's prompts when `rank` is given (a report), else its name."""
    names = [k.cluster for k in keys]
    if rank:
        try:
            return np.fromiter(map(rank.__getitem__, names), dtype=np.int64, count=len(names))
        except KeyError:  # a key from outside the run being reported
            pass
    return np.asarray(names, dtype=object)


def outcome_figures(outcomes: np.ndarray, clusters: np.ndarray) -> OutcomeFigures:
    """Counts, win rates, their clustered intervals and the sign test for one set of comparisons."""
    c = stats.counts(outcomes)
    ci, sci = stats.rate_cis([outcomes, stats.strict_outcomes(outcomes)], clusters, level=LEVEL)
    return OutcomeFigures(
        wins=c.wins, losses=c.losses, ties=c.ties, invalid=c.invalid, n=c.total, n_valid=c.n_valid,
        n_prompts=len(set(clusters.tolist())),  # distinct prompt texts
        invalid_rate=finite(c.invalid / c.total) if c.total else None,
        win_rate=finite(stats.win_rate(outcomes)),
        strict_win_rate=finite(stats.strict_win_rate(outcomes)),
        ci95=report_interval(ci), strict_ci95=report_interval(sci),
        sign_test_p=finite(stats.sign_test(c.wins, c.losses)))


def _withheld_figures(figures: OutcomeFigures, reason: str | None) -> OutcomeFigures:
    """The figures of a judge that carries no information (`reason`): counts stay, win rates and intervals go."""
    if not reason:
        return figures
    return dataclasses.replace(figures, win_rate=None, strict_win_rate=None, ci95=withheld(figures.ci95, reason),
                               strict_ci95=withheld(figures.strict_ci95, reason))


def power_of(ci: Interval, comparisons: Comparisons, no_information: str | None = None) -> Power:
    """The `power` object of a judge entry: minimum detectable effect and variance split (brie_bench.power).

    `no_information` (a judge whose verdicts follow position or label) gives no MDE, with that reason.
    """
    from brie_bench import power

    low, high = ci.low, ci.high
    significant = None if not ci.trusted else bool(low is not None and high is not None
                                                   and (low > 0.5 or high < 0.5))
    return Power.from_entry(power.report_entry(comparisons.outcomes, comparisons.clusters,
                                               [(a, b) for _, a, b in comparisons.pairs],
                                               significant=significant, no_information=no_information))


def information_of(rows: Sequence[JRow], comparisons: Comparisons) -> stats_bias.Information:
    """`stats.bias.judge_information` for one judge's rows: does its verdict follow position or label?"""
    outcomes = _outcomes(rows)
    cand_a = _ft_is_a(rows)
    a_first = _a_first(rows)
    pairs = np.asarray([[a, b] for _, a, b in comparisons.pairs], dtype=float).reshape(-1, 2)
    return stats_bias.judge_information(outcomes, cand_a == a_first, cand_a, pairs)


def information_entry(info: stats_bias.Information) -> Information:
    """A judge entry's `information` object (docs/report-schema.md)."""
    return Information(informative=info.informative, follows=info.follows, side=info.side,
                       share=finite(info.share), n=info.n, statement=info.reason,
                       advice=None if info.informative else stats_bias.ADVICE)


def _no_decisive_note(figures: OutcomeFigures, comparisons: Comparisons) -> Interval:
    """The strict win rate's interval; with no decisive comparison it measures only ties and is never trusted.

    Typical case: every verdict flipped between orders, so every comparison became a tie
    and the strict rate reads 0% with a tight-looking interval that says nothing about
    which answer is better.
    """
    sci = figures.strict_ci95
    if figures.wins + figures.losses or not figures.n_valid or not sci.trusted:
        return sci
    flipped = sum(1 for _, a, b in comparisons.pairs if a == a and b == b and a != b)
    why = (f", {flipped} of them because the verdict flipped when the order changed" if flipped else "")
    return dataclasses.replace(sci, trusted=False, note=(
        f"cannot be trusted: no comparison is decisive (all {figures.n_valid} valid ones are ties{why}), so the "
        "strict win rate measures ties, not a preference"))


# --------------------------------------------------------------------------- sections of the report


def judge_entry(rows: Sequence[JRow], model: str | None = None, *, legacy: bool = False,
                build: _Build | None = None, comparisons: Comparisons | None = None) -> JudgeFigures:
    """Headline figures for one judge against one candidate (`build`, `comparisons`: the report's, when in one).

    `model`: the judge's model from the run's metadata, when its rows do not name one.
    A judge whose verdicts follow position or label (`information`) keeps its counts,
    but no win rate of any kind comes from it: every rate and interval is withheld.
    """
    first = rows[0]
    comparisons = comparisons if comparisons is not None else comparisons_of(rows)
    rank = build.rank if build is not None else None
    figures = outcome_figures(comparisons.outcomes, comparisons.clusters)
    info = information_of(rows, comparisons)
    figures = dataclasses.replace(figures, strict_ci95=_no_decisive_note(figures, comparisons))
    power = power_of(figures.ci95, comparisons, no_information=info.reason)
    withhold = info.reason
    lc = stats.length_controlled_win_rate(comparisons.outcomes, comparisons.len_ft, comparisons.len_base,
                                          comparisons.clusters, level=LEVEL)
    lc_ci = report_interval(lc.win_rate)
    from brie_bench.report.controls import style_entry  # length and markdown regressed out

    style = style_entry(rows, comparisons, level=LEVEL, n_boot=N_BOOT, seed=BOOT_SEED,
                        draws=build.draws if build is not None else None, withhold=withhold,
                        counts=build.style_counts if build is not None else None)
    p = np.asarray(rows.column("p_ft")) if isinstance(rows, RowsView) else np.fromiter(map(_P_FT, rows),
                                                                                         dtype=float, count=len(rows))
    logprob = None
    if np.isfinite(p).any():
        logprob = report_interval(stats.logprob_preference(
            p, _row_clusters(rows, rank), n_boot=N_BOOT, level=LEVEL, seed=BOOT_SEED,
            min_boot_clusters=stats.BOOTSTRAP_MIN_CLUSTERS, draws=build.draws if build is not None else None))
    if withhold:  # verdicts that follow position or label: no win rate of any kind comes from them
        lc_ci = withheld(lc_ci, withhold)
        logprob = withheld(logprob, withhold) if logprob is not None else None
    return JudgeFigures(
        judge=first.judge, model=first.judge_model or model, judge_type=first.judge_type,
        baseline=first.item.baseline, candidate=first.item.candidate, n_judgments=len(rows),
        invalid_judgments=int(np.count_nonzero(np.isnan(_outcomes(rows)))),
        **_withheld_figures(figures, withhold).fields(),
        information=information_entry(info), power=power,
        rows=row_level(rows, len(comparisons.keys), legacy=legacy, rank=rank, withhold=withhold),
        length_controlled=LengthControlled(
            **interval_fields(lc_ci), raw_win_rate=None if withhold else finite(lc.raw_win_rate),
            length_coef=None if lc.at_bound else finite(lc.length_coef), estimable=not lc.at_bound),
        style_controlled=style, logprob_preference=logprob)


def row_level(rows: Sequence[JRow], n_comparisons: int, *, legacy: bool = False,
              rank: dict[str, int] | None = None, withhold: str | None = None) -> RowLevel:
    """Every stored judgment counted once (the original Brie Bench's unit), clustered by prompt text.

    Shown beside the comparison-level headline: the two differ only where a comparison
    was judged in both presentation orders (two rows, one comparison under the MT-Bench rule).
    A legacy re-judgment in the same presentation order is a row and a comparison of its own.
    `withhold`: the judge carries no information, so its rates and intervals are blanked.
    """
    outs = _outcomes(rows)
    clusters = _row_clusters(rows, rank)
    f = _withheld_figures(outcome_figures(outs, clusters), withhold)
    c = stats.counts(outs)
    wilson = wilson_interval(stats.wilson_ci(c.wins, c.n_valid, LEVEL))
    keys = (map(rows.cols.keys.__getitem__, unique_values(rows.column("item")).tolist()) if isinstance(rows, RowsView)
            else dict.fromkeys(map(_ITEM, rows)))
    pairs = set(map(_ANSWER_PAIR, keys))
    return RowLevel(
        wins=f.wins, losses=f.losses, ties=f.ties, invalid=f.invalid, n=f.n, n_valid=f.n_valid,
        n_prompts=f.n_prompts, win_rate=f.win_rate, strict_win_rate=f.strict_win_rate, ci95=f.ci95,
        strict_ci95=f.strict_ci95, strict_wilson95=withheld(wilson, withhold) if withhold else wilson,
        # Legacy: every row beyond the first per answer pair is a re-judgment. Native runs judge a pair
        # at most once per order, so their extra rows are the second order, not replicates.
        n_answer_pairs=len(pairs), n_replicates=len(rows) - len(pairs) if legacy else 0,
        n_comparisons=n_comparisons, rows_folded_by_order=len(rows) - n_comparisons)


def bias_entry(rows: Sequence[JRow], *, legacy: bool, comparisons: Comparisons | None = None,
               verdict_like: frozenset[tuple[str, str, str, str, int]] = frozenset()) -> BiasDiagnostics:
    """Label, position, order-consistency and length diagnostics for one judge and candidate.

    `verdict_like`: the (judge, candidate, section, prompt id, sample) of every comparison
    whose answers hold verdict-like text (`verdict_like_entries`), flagged among the flips.
    """
    first = rows[0]
    out_rows = _outcomes(rows)
    ft_is_a = _ft_is_a(rows)
    winning_a, fa = stats.label_winners(out_rows, ft_is_a)
    lb = stats.label_bias(winning_a, fa, level=LEVEL)
    # Position: did the answer shown first win? (= label A in Brie Bench runs, not in legacy ones.)
    decisive_rows = (out_rows == stats.WIN) | (out_rows == stats.LOSS)
    a_first = _a_first(rows)
    first_won = int(np.count_nonzero(decisive_rows & ((out_rows == stats.WIN) == (ft_is_a == a_first))))
    n_decisive = int(np.count_nonzero(decisive_rows))
    pos_ci = stats.wilson_ci(first_won, n_decisive, LEVEL)
    comparisons = comparisons if comparisons is not None else comparisons_of(rows)
    pair_outcomes = np.asarray([[a, b] for _, a, b in comparisons.pairs], dtype=float).reshape(-1, 2)
    pc = stats.position_consistency(pair_outcomes)
    flipped = []
    for i in pc.flipped:
        key, a, b = comparisons.pairs[i]
        flipped.append(FlippedComparison(
            section=key.section, prompt_id=key.prompt_id, sample_index=key.sample_index,
            outcome_first_order=a, outcome_second_order=b, reversal=abs(a - b) == 1.0,
            verdict_like=(first.judge, first.item.candidate, key.section, key.prompt_id,
                          key.sample_index) in verdict_like))
    lenb = stats.length_bias(comparisons.outcomes, comparisons.len_ft, comparisons.len_base, level=LEVEL)
    label_randomised = not legacy and len(set(ft_is_a.tolist())) > 1
    return BiasDiagnostics(
        judge=first.judge, candidate=first.item.candidate, baseline=first.item.baseline,
        label=LabelBias(
            randomised=label_randomised,
            label_a_share=wilson_interval(lb.label_a), p_value=finite(lb.p_label),
            ft_win_rate_as_a=finite(lb.ft_win_rate_as_a), ft_win_rate_as_b=finite(lb.ft_win_rate_as_b),
            odds_ratio=finite(lb.odds_ratio), fisher_p=finite(lb.fisher_p), n_decisive=lb.n,
            significant=bool(label_randomised and lb.fisher_p == lb.fisher_p and lb.fisher_p < ALPHA)),
        position=PositionBias(
            first_shown_share=wilson_interval(pos_ci),
            p_value=finite(stats.sign_test(first_won, n_decisive - first_won)),
            n_decisive=n_decisive,
            significant=bool(n_decisive and stats.sign_test(first_won, n_decisive - first_won) < ALPHA)),
        order_consistency=_order_figures(rows, comparisons, pair_outcomes, pc, flipped),
        length=LengthBias(
            ft_longer=wilson_interval(lenb.longer), ft_shorter=wilson_interval(lenb.shorter),
            n_equal=lenb.n_equal, share_ft_longer=finite(lenb.share_ft_longer),
            spearman_rho=finite(lenb.spearman_rho), p_value=finite(lenb.p_value),
            gap=finite(lenb.gap), fisher_p=finite(lenb.fisher_p), flagged=lenb.flagged,
            gap_threshold=stats.LENGTH_BIAS_GAP, alpha=stats.LENGTH_BIAS_ALPHA,
            confounded=_length_confounded(lenb, comparisons.outcomes)))


def _order_figures(rows: Sequence[JRow], comparisons: Comparisons, pair_outcomes: np.ndarray,
                   pc: stats.PositionConsistency, flipped: list[FlippedComparison]) -> OrderConsistency:
    """Flip rate, the direction of the flips, and flips against same-order replicate noise.

    The flip rate is always shown: it is how consistent the judge is. The report warns
    (`warn`) only when the flips mean something: they go systematically one way (the
    position moved the verdict: `stats.bias.flip_direction`), or they are more frequent
    than two same-order judgments of one comparison disagree (`stats.bias.excess_flips`,
    only where such replicates exist). A merely noisy judge flips too, evenly both ways.
    """
    cols = _Columns.of(rows)
    zero = np.flatnonzero(cols.order == 0)
    last0 = np.full(len(cols.keys), -1, dtype=np.intp)
    np.maximum.at(last0, cols.item[zero], zero)  # each comparison's last row in order 0
    index = _key_numbers(cols)
    at = last0[np.fromiter((index[key] for key, _, _ in comparisons.pairs), dtype=np.intp,
                           count=len(comparisons.pairs))]
    cand_first = np.ones(len(at), dtype=bool)
    shown = at >= 0
    cand_first[shown] = cols.ft_is_a[at[shown]] == cols.a_first[at[shown]]
    direction = stats_bias.flip_direction(pair_outcomes, cand_first)
    # Same-order replicates: consecutive valid judgments of one answer pair by one model, shown the same way
    # (a legacy re-judgment is an item of its own, so the pair is keyed without its replicate number).
    valid = np.flatnonzero(~np.isnan(cols.outcome))
    pair_code = _answer_pair_codes(cols)
    if isinstance(cols.rows, RowsView):
        member_code = np.asarray(cols.rows.column("member")[valid])
    else:
        member_code = _codes((r.member or r.judge for r in map(cols.rows.__getitem__, valid.tolist())), len(valid))
    slot = np.stack([pair_code[cols.item[valid]], member_code, cols.ft_is_a[valid].astype(np.int64),
                     cols.a_first[valid].astype(np.int64)]) if valid.size else np.zeros((4, 0), dtype=np.int64)
    # Consecutive (in stored order) valid judgments of one slot: sort stably by slot, compare neighbours.
    sort = np.lexsort(slot[::-1]) if valid.size else valid
    same = (slot[:, sort][:, 1:] == slot[:, sort][:, :-1]).all(axis=0) if valid.size else np.zeros(0, dtype=bool)
    outs = cols.outcome[valid][sort]
    n_rep, n_dis = int(np.count_nonzero(same)), int(np.count_nonzero(same & (outs[1:] != outs[:-1])))
    excess_p = stats_bias.excess_flips(len(pc.flipped), pc.n_pairs, n_dis, n_rep)
    excess = bool(n_rep >= stats_bias.REPLICATE_MIN_PAIRS and math.isfinite(excess_p)
                  and excess_p < stats_bias.FLIP_ALPHA)
    return OrderConsistency(
        n_pairs=pc.n_pairs, consistent=finite(pc.consistent), n_flipped=len(pc.flipped), reversals=pc.reversals,
        flipped=flipped,
        flip_rate=finite(len(pc.flipped) / pc.n_pairs) if pc.n_pairs else None,
        toward_first=direction.toward_first, toward_second=direction.toward_second,
        direction_p=finite(direction.p_value), systematic=direction.systematic,
        replicates=Replicates(n_pairs=n_rep, n_disagree=n_dis,
                              disagreement_rate=finite(n_dis / n_rep) if n_rep else None,
                              excess_p=finite(excess_p) if n_rep >= stats_bias.REPLICATE_MIN_PAIRS else None,
                              excess=excess),
        warn=bool(direction.systematic or excess))


#: `_answer_pair`, C-level: a 100,000-judgment report asks it of every comparison of every judge.
_ANSWER_PAIR = operator.attrgetter("section", "prompt_id", "sample_index", "baseline", "candidate")


def _key_numbers(cols: _Columns) -> dict[ItemKey, int]:
    """Each comparison's number in `cols.keys`; made once per run's columns when they are the loader's."""
    shared = cols.rows.cols.cache if isinstance(cols.rows, RowsView) and cols.keys is cols.rows.cols.keys else {}
    found = shared.get("key_numbers")
    if found is None:
        found = shared["key_numbers"] = dict(zip(cols.keys, range(len(cols.keys))))
    return found


def _answer_pair_codes(cols: _Columns) -> np.ndarray:
    """Each comparison's answer pair (`_answer_pair`) as a code; made once per run's columns when they are the loader's."""
    shared = cols.rows.cols.cache if isinstance(cols.rows, RowsView) and cols.keys is cols.rows.cols.keys else {}
    found = shared.get("answer_pairs")
    if found is None:
        found = shared["answer_pairs"] = _codes(map(_ANSWER_PAIR, cols.keys), len(cols.keys))
    return np.asarray(found)


def _answer_pair(k: ItemKey) -> tuple[str, str, int, str, str]:
    """The answer pair a comparison compares, without its replicate number."""
    return (k.section, k.prompt_id, k.sample_index, k.baseline, k.candidate)


def _length_confounded(lenb: stats.LengthBias, outcomes: np.ndarray) -> bool:
    """The candidate was longer (or shorter) in at least 90% of 10+ valid comparisons.

    Then there are too few comparisons on the other side to tell a length preference
    from a content preference, and the length-bias test cannot fire even if it should.
    """
    n_valid = int(np.count_nonzero(~np.isnan(outcomes)))
    share = lenb.share_ft_longer
    return bool(n_valid >= 10 and math.isfinite(share) and (share >= 0.9 or share <= 0.1))


def _score_columns(scores: Sequence[dict[str, float]], names: list[str]) -> np.ndarray:
    """(criteria, rows): each criterion's score per row, NaN where a row lacks it.

    One C-level `itemgetter` per row when every row has every criterion (the usual case),
    instead of one pass over the rows per criterion; the values are the same floats.
    """
    n = len(scores)
    try:
        return np.array(list(map(operator.itemgetter(*names), scores)), dtype=float).reshape(n, len(names)).T.copy()
    except KeyError:  # a row without some criterion: NaN there
        return np.stack([np.fromiter(map(operator.methodcaller("get", c, NAN), scores), dtype=float, count=n)
                         for c in names]).reshape(len(names), n)


def criteria_entries(rows: Sequence[JRow], build: _Build | None = None) -> list[Criterion]:
    """Per-criterion mean 1–5 scores and the paired (candidate − baseline) difference."""
    if isinstance(rows, RowsView):  # the loader's score matrices: a criterion is named where a row has it
        rc = rows.cols
        named = (rows.column("has_ft").any(axis=0) & rows.column("has_base").any(axis=0)).tolist()
        names = sorted(c for c, present in zip(rc.criteria, named) if present)
        at = [rc.criteria.index(c) for c in names]
        ft_matrix, base_matrix = rows.column("scores_ft"), rows.column("scores_base")
        ft = {c: np.ascontiguousarray(ft_matrix[:, j]) for c, j in zip(names, at)}
        base = {c: np.ascontiguousarray(base_matrix[:, j]) for c, j in zip(names, at)}
    else:
        ft_scores, base_scores = [r.scores_ft for r in rows], [r.scores_base for r in rows]
        names = sorted(set().union(*ft_scores) & set().union(*base_scores))
        ft = dict(zip(names, _score_columns(ft_scores, names)))
        base = dict(zip(names, _score_columns(base_scores, names)))
    if not names:
        return []
    diffs = stats.criterion_differences(ft, base, _row_clusters(rows, build.rank if build else None),
                                        n_boot=N_BOOT, level=LEVEL, seed=BOOT_SEED,
                                        min_boot_clusters=stats.BOOTSTRAP_MIN_CLUSTERS,
                                        draws=build.draws if build else None)
    first = rows[0]
    return [Criterion(judge=first.judge, candidate=first.item.candidate, criterion=d.criterion,
                      mean_candidate=finite(d.mean_ft), mean_baseline=finite(d.mean_base),
                      difference=report_interval(d.difference, span=(-4.0, 4.0))) for d in diffs.values()]


ALIGNMENT_EXPLANATION = (
    "Agreement compares judges on what they judged: an answer pair and its occurrence, the k-th judgment "
    "of that pair by that judge (or judge family) lining up with every other judge's k-th. In a run made by "
    "Brie Bench one judgment is one comparison, its presentation orders combined (under `orders: both` the two "
    "orders are one designed judgment, counted as in the headline); in an imported legacy run it is one "
    "stored row, whatever its presentation order, so every row of the source files is one item for every judge."
)


def _occurrences(rows: Sequence[JRow], judge: str, legacy: bool,
                 comparisons: dict[tuple[str, str], Comparisons] | None = None) -> tuple[list[ItemKey], list[float]]:
    """One judge's (or family's) judgments as (answer pair, occurrence) keys and their outcomes.

    Legacy: every stored row is a judgment; its occurrence is its rank, in stored order,
    among the judge's rows of the same answer pair. Native: a judgment is a comparison
    (`comparisons_of`: presentation orders combined); a family's members' comparisons of one pair are
    already numbered 0, 1, ... in `ItemKey.replicate` (report.rows), a single judge's are 0.
    """
    mine = _rows_of_judge(rows, judge)
    if not legacy:
        u = comparisons.get((mine[0].item.candidate, judge)) if comparisons and mine else None
        u = u if u is not None else comparisons_of(mine)
        return list(u.keys), u.outcomes.tolist()
    keys: list[ItemKey] = []
    outcomes: list[float] = []
    seen: dict[tuple[str, str, int, str, str], int] = {}
    for r in sorted(mine, key=operator.attrgetter("seq")):
        k = r.item
        pair = (k.section, k.prompt_id, k.sample_index, k.baseline, k.candidate)
        occurrence = seen.get(pair, 0)
        seen[pair] = occurrence + 1
        keys.append(ItemKey(*pair, replicate=occurrence, prompt_key=k.prompt_key))
        outcomes.append(r.outcome)
    return keys, outcomes


def _matrix(rows: Sequence[JRow], judges: list[str], *, legacy: bool = False,
            comparisons: dict[tuple[str, str], Comparisons] | None = None) -> tuple[list[ItemKey], np.ndarray]:
    """Items x judges matrix of outcomes (NaN where a judge gave no valid verdict), items aligned by occurrence.

    An item is (answer pair, occurrence): see `ALIGNMENT_EXPLANATION` and `_occurrences`.
    Items are in first-seen order over the judges.
    """
    per_judge = {j: _occurrences(rows, j, legacy, comparisons) for j in judges}
    items: dict[ItemKey, None] = {}
    for keys_j, _ in per_judge.values():
        items.update(dict.fromkeys(keys_j))
    keys = list(items)
    index = {k: i for i, k in enumerate(keys)}
    m = np.full((len(keys), len(judges)), np.nan)
    for col, j in enumerate(judges):
        for k, o in zip(*per_judge[j]):
            m[index[k], col] = o
    return keys, m


def _family_members(rows: Sequence[JRow], judges: list[str]) -> dict[str, list[str]]:
    """The models behind each judge that is a family (report.rows), in stored order: what the table groups."""
    grouped = _grouped_judges(rows)
    out: dict[str, list[str]] = {}
    if not grouped:
        return out
    for r in sorted(rows, key=operator.attrgetter("seq")):
        if r.judge in grouped and r.judge in judges:
            found = out.setdefault(r.judge, [])
            name = r.member_model or r.member
            if name not in found:
                found.append(name)
    return out


def agreement_entry(rows: Sequence[JRow], judges: list[str], *, legacy: bool = False,
                    build: _Build | None = None,
                    no_information: dict[tuple[str, str], str] | None = None) -> Agreement:
    """Agreement between judges (judge families count as one) over one candidate's items, plus the majority vote.

    `no_information`: (candidate, judge) -> why that judge's verdicts carry no information;
    such judges stay in the agreement figures but get no vote (`_majority_vote`).
    """
    comparisons = build.comparisons if build else None
    keys, m = _matrix(rows, judges, legacy=legacy, comparisons=comparisons)
    ag = stats.agreement(m)
    first = rows[0]
    pairs = [AgreementPair(judge_a=judges[p.raters[0]], judge_b=judges[p.raters[1]], n=p.n,
                           percent=finite(p.percent), cohen_kappa=finite(p.cohen_kappa)) for p in ag.pairs]
    n_all = int(np.count_nonzero((m == m[:, :1]).all(axis=1) & ~np.isnan(m).any(axis=1))) if m.size else 0
    return Agreement(
        candidate=first.item.candidate, baseline=first.item.baseline, judges=judges,
        families=_family_members(rows, judges),
        alignment="rows" if legacy else "comparisons",
        n_items=ag.n_items, n_complete=ag.n_complete, percent_all=finite(ag.percent_all),
        n_all_agree=n_all,
        fleiss_kappa=finite(ag.fleiss_kappa), krippendorff_alpha=finite(ag.krippendorff_alpha),
        gwet_ac1=finite(ag.gwet_ac1),
        pairs=pairs,
        human_llm=human_llm_pairs(rows, pairs),
        note=ag.note,
        majority_vote=_majority_vote(rows, judges, keys, m, no_information or {}, legacy=legacy, build=build))


def _majority_vote(rows: Sequence[JRow], judges: list[str], keys: list[ItemKey], m: np.ndarray,
                   no_info: dict[tuple[str, str], str], *, legacy: bool, build: _Build | None) -> MajorityVote:
    """The majority vote of the judges that carry information.

    A judge whose verdicts follow the position would cast a vote that says nothing about
    the answers, yet could tip or tie every comparison. It stays in the agreement
    figures (its disagreement is worth seeing) but is left out of the vote, and
    `majority_vote.left_out` names it. With no informative judge left the vote has no
    comparisons.
    """
    rank = build.rank if build else None
    candidate = rows[0].item.candidate
    left_out = [j for j in judges if (candidate, j) in no_info]
    kept = [j for j in judges if j not in left_out]
    if not left_out:
        figures = outcome_figures(stats.majority_vote(m).consensus, _clusters(keys, rank))
    elif kept:
        keys, m = _matrix(rows, kept, legacy=legacy, comparisons=build.comparisons if build else None)
        figures = outcome_figures(stats.majority_vote(m).consensus, _clusters(keys, rank))
    else:
        figures = outcome_figures(np.zeros(0), np.zeros(0, dtype=np.int64))
    return MajorityVote(judges=kept, left_out=left_out, **figures.fields())


def human_llm_pairs(rows: Sequence[JRow], pairs: Sequence[AgreementPair]) -> list[HumanAgreement]:
    """How often each person (a `human` judge: terminal or browser) agreed with each other judge.

    Taken from the pairwise figures, oriented person first: the question a run
    with people in it exists to answer is whether the LLM judges agree with them.
    """
    humans = _human_judges(rows)
    out = []
    for p in pairs:
        a, b = p.judge_a, p.judge_b
        if (a in humans) == (b in humans):
            continue
        human, other = (a, b) if a in humans else (b, a)
        out.append(HumanAgreement(human=human, judge=other, n=p.n, percent=p.percent, cohen_kappa=p.cohen_kappa))
    return out


def ranking_entries(data: RunData, build: _Build | None = None) -> list[Ranking]:
    """Bradley–Terry strengths per judge when a run has more than one candidate.

    Pairwise win rates against the baseline do not rank several fine-tunes
    against each other; one strength per contender that explains all the
    comparisons does. Comparisons judged in both orders count once (as
    everywhere in the report); invalid ones are left out; ties count half.
    The baseline is the anchor (strength 0); intervals resample whole prompts.
    """
    candidates = list(view_of(data.rows).cols.candidates)
    if len(candidates) < 2:
        return []
    baseline = data.rows[0].item.baseline
    players = [baseline, *candidates]
    out = []
    for (judge,), rows in group_by(data.rows, "judge").items():  # keys are tuples of the grouped fields
        winners, losers, ties, clusters = [], [], [], []
        for (_,), cand_rows in group_by(rows, "item.candidate").items():
            found = build.comparisons.get((cand_rows[0].item.candidate, cand_rows[0].judge)) if build else None
            comparisons = found if found is not None else comparisons_of(cand_rows)
            cand = players.index(cand_rows[0].item.candidate)
            for outcome, cluster in zip(comparisons.outcomes, comparisons.clusters):
                if math.isnan(outcome):
                    continue
                won = outcome >= 0.5
                winners.append(cand if won else 0)
                losers.append(0 if won else cand)
                ties.append(outcome == stats.TIE_OUTCOME)
                clusters.append(cluster)
        if not winners:
            continue
        bt = stats.bradley_terry(winners, losers, len(players), ties=ties, clusters=np.asarray(clusters, dtype=object),
                                 anchor=0, n_boot=N_BOOT, level=LEVEL, seed=BOOT_SEED)
        out.append(Ranking(judge=judge, anchor=baseline, n_games=bt.n_games, converged=bool(bt.converged),
                           contenders=[RankedContender(contender=name, strength=finite(float(bt.scores[i])),
                                                       low=finite(float(bt.low[i])), high=finite(float(bt.high[i])),
                                                       win_rate_vs_baseline=finite(float(bt.win_rate_vs_anchor[i])))
                                       for i, name in enumerate(players)]))
    return out


def _cost_block(data: RunData) -> Cost:
    """Tokens, latency and (where prices are known) USD, per judge and per contender."""
    from brie_bench.prices import UsageLine, costs_by_name, snapshot_price_table

    meta = data.run.metadata
    # Usage per name first (model, calls, tokens, latency), then one record each once its price is known.
    judges: dict[str, tuple[str | None, int, int, int, float]] = {}
    rc = view_of(data.rows).cols
    latency = np.asarray(rc.latency, dtype=float)
    for code, idx in enumerate(_groups([rc.member])):  # the stored judge: a family's models priced apart
        judges[rc.members[code]] = (rc.row(int(idx[0])).member_model, len(idx), int(rc.input_tokens[idx].sum()),
                                    int(rc.output_tokens[idx].sum()),
                                    sum(latency[idx].tolist(), 0.0))  # in stored order, as a running sum
    contenders: dict[str, tuple[str | None, int, int, int]] = {}
    seen: set[str] = set()
    for g in data.generations:
        if g["gen_key"] in seen:
            continue
        seen.add(g["gen_key"])
        model, n, tokens_in, tokens_out = contenders.get(g["contender"], (g.get("model"), 0, 0, 0))
        contenders[g["contender"]] = (model, n + 1, tokens_in + int(g.get("input_tokens") or 0),
                                      tokens_out + int(g.get("output_tokens") or 0))
    table = snapshot_price_table(data.snapshot.get("prices"))
    total_usd, all_priced = 0.0, True
    prices: dict[tuple[str, str], tuple[float | None, bool]] = {}
    usage = {"judges": {name: (u[0], u[2], u[3]) for name, u in judges.items()},
             "contenders": {name: (u[0], u[2], u[3]) for name, u in contenders.items()}}
    for kind, block in usage.items():
        # `local` is recorded for every contender and judge in the run's metadata (run.run_metadata).
        lines = [UsageLine(name, model, tokens_in, tokens_out,
                           bool(((meta.get(kind) or {}).get(name) or {}).get("local", False)))
                 for name, (model, tokens_in, tokens_out) in block.items()]
        for name, (price, _) in costs_by_name(table, lines).items():
            prices[(kind, name)] = (round(price.usd, 6) if price.priced else None, price.priced)
            total_usd += price.usd
            all_priced = all_priced and price.priced
    judge_costs = [JudgeCost(name=name, model=model, calls=calls, input_tokens=tokens_in, output_tokens=tokens_out,
                             latency_s=latency, usd=prices[("judges", name)][0], priced=prices[("judges", name)][1])
                   for name, (model, calls, tokens_in, tokens_out, latency) in judges.items()]
    # One call per answer (`brie_bench.calls`), the judges' unit too.
    contender_costs = [ContenderCost(name=name, model=model, generations=n, input_tokens=tokens_in,
                                     output_tokens=tokens_out, calls=n, usd=prices[("contenders", name)][0],
                                     priced=prices[("contenders", name)][1])
                       for name, (model, n, tokens_in, tokens_out) in contenders.items()]
    return Cost(judges=judge_costs, contenders=contender_costs,
                calls=sum(e.calls for e in judge_costs) + sum(e.calls for e in contender_costs),
                total_usd=round(total_usd, 6) if all_priced else None,
                known_usd=round(total_usd, 6), all_priced=all_priced)


def _contenders(data: RunData) -> list[Contender]:
    meta = data.run.metadata
    baseline = meta.get("baseline") or data.snapshot.get("baseline")
    names = dict.fromkeys(list((meta.get("contenders") or {}).keys()))
    for baseline_name, candidate in dict.fromkeys((k.baseline, k.candidate) for k in view_of(data.rows).cols.keys):
        names.setdefault(baseline_name, None)
        names.setdefault(candidate, None)
    out = []
    for name in names:
        info = (meta.get("contenders") or {}).get(name) or {}
        options = info.get("options") or {}
        role = info.get("role") or ("baseline" if name == baseline else "candidate")
        out.append(Contender(name=name, role=role, backend=info.get("backend"), model=info.get("model"),
                             adapter=options.get("adapter") if isinstance(options, dict) else None,
                             options=options, provenance=info.get("provenance")))
    return out


def _judge_info(data: RunData) -> list[JudgeInfo]:
    meta = data.run.metadata.get("judges") or {}
    names = dict.fromkeys(list(meta.keys()))
    rc = view_of(data.rows).cols
    firsts: dict[str, JRow] = {}
    for i in np.unique(rc.judge, return_index=True)[1].tolist():  # each judge's first row
        r = rc.row(int(i))
        firsts.setdefault(r.judge, r)
    firsts = {name: firsts[name] for name in rc.judges}  # in first-seen order
    names.update(dict.fromkeys(firsts))
    out = []
    for name in names:
        info = meta.get(name) or {}
        backend = info.get("backend")
        first = firsts.get(name)
        out.append(JudgeInfo(name=name, type=info.get("judge") or (first.judge_type if first else None),
                             model=info.get("model") or (first.judge_model if first else None),
                             backend=backend.get("backend") if isinstance(backend, dict) else backend,
                             options=info.get("options") or {}))
    return out


def _iso(ts: float | None) -> str | None:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds") if ts else None


def _warnings(data: RunData, run: RunInfo, judges: Sequence[JudgeFigures], failed_judges: Sequence[FailedJudge],
              bias: Sequence[BiasDiagnostics], verdict_like: Sequence[VerdictLike]) -> list[ReportWarning]:
    """Everything a reader must see before the numbers, in the order the reports print it."""
    out: list[ReportWarning] = []

    def warn(kind: str, text: str) -> None:
        out.append(ReportWarning(kind=kind, text=text))

    if data.legacy:
        warn("legacy-labels", LEGACY_WARNING)
        n_dis = len(data.run.metadata.get("disagreements") or [])
        if n_dis:
            warn("legacy-parse", f"{n_dis} stored verdict(s) disagree with how Brie Bench's parser reads the judge's "
                 "answer; the report uses Brie Bench's reading (see the legacy import section).")
    if data.run.status not in ("complete",):
        n_failed = run.failed_units
        still = f" ({n_failed} unit{'s' if n_failed != 1 else ''} still failed; a rerun retries them)" if n_failed else ""
        warn("status", f"Run status is '{data.run.status}': some comparisons are missing{still}.")
    for fj in failed_judges:
        warn("judge-failed", f"{fj.judge} gave no verdict: all {fj.failed_units} of its calls failed "
             f"({fj.kind}: {fj.message}).")
    if not data.rows:
        warn("empty", "This run has no judgments yet.")
    elif run.n_prompts < FEW_PROMPTS:
        warn("few-prompts", f"Only {run.n_prompts} distinct prompt(s): every interval is wide, and a difference "
             "between judges, sections or runs of this size is mostly noise (at least "
             f"{FEW_PROMPTS} prompts are needed for a usable estimate).")
    for j in judges:
        who = f"{j.judge} ({j.candidate} vs {j.baseline})"
        if j.information.statement:
            warn("no-information", f"{who}: {j.information.statement}. {j.information.advice}")
        elif not j.ci95.trusted:
            warn("untrusted", f"{who}: the win-rate interval {j.ci95.note}.")
        if (j.invalid_rate or 0) > INVALID_WARN:
            warn("invalid", f"{who}: {j.invalid} of {j.n} comparisons ({j.invalid_rate:.0%}) have no valid verdict; "
                 "they are excluded, not counted as ties.")
    for b in bias:
        who = f"{b.judge} ({b.candidate})"
        if b.label.significant:
            warn("label-bias", f"{who}: the candidate's win rate depends on which label it carried (Fisher p = "
                 f"{b.label.fisher_p:.3g}); this judge's verdicts follow the label.")
        if b.position.significant:
            warn("position-bias", f"{who}: the answer shown first wins {b.position.first_shown_share.estimate:.0%} "
                 f"of decisive verdicts (p = {b.position.p_value:.3g}).")
        length = b.length
        if length.flagged:
            warn("length-bias", f"{who}: possible length bias: the candidate wins "
                 f"{length.ft_longer.estimate:.0%} of {length.ft_longer.n} comparisons when its answer is longer "
                 f"and {length.ft_shorter.estimate:.0%} of {length.ft_shorter.n} when it is shorter (Fisher p = "
                 f"{length.fisher_p:.2g}); much of its win rate may be answer length, not quality. Read the "
                 "length-controlled figure.")
        out.extend(_flip_warnings(who, b.order_consistency))
    if verdict_like:
        n_items = len({(e.section, e.prompt_id, e.sample_index, e.candidate) for e in verdict_like})
        warn("verdict-like-text", f"{n_items} compared answer pair(s) ({len(verdict_like)} comparisons) contain "
             "verdict-like text (e.g. 'Winner: B' or '[[A]]'): possible prompt injection aimed at the judge; they "
             "are listed under verdict_like.")
    return out


def _flip_warnings(who: str, oc: OrderConsistency) -> list[ReportWarning]:
    """Order-flip warnings that mean something (`_order_figures`): one way, beyond replicate noise, injection."""
    out: list[ReportWarning] = []
    flips = (f"{oc.n_flipped} of {oc.n_pairs} comparisons judged in both orders changed verdict when the "
             f"answers swapped places ({oc.reversals} from a win to a loss)")
    if oc.systematic:
        towards = "first" if oc.toward_first > oc.toward_second else "second"
        out.append(ReportWarning(kind="order-flips", text=(
            f"{who}: {flips}, {oc.toward_first} towards the answer shown first and {oc.toward_second} towards the "
            f"one shown second (sign test p = {oc.direction_p:.2g}): position bias, the answer shown {towards} is "
            "favoured; each of these comparisons counts as a tie.")))
    rep = oc.replicates
    if rep.excess:
        out.append(ReportWarning(kind="order-flips", text=(
            f"{who}: {flips}: {oc.flip_rate:.0%}, more often than two judgments of one comparison in the same "
            f"order disagree ({rep.disagreement_rate:.0%} of {rep.n_pairs}; Fisher p = {rep.excess_p:.2g}), so "
            "the order itself moves this judge's verdicts.")))
    injected = [f for f in oc.flipped if f.verdict_like]
    if injected:
        out.append(ReportWarning(kind="order-flips-injection", text=(
            f"{who}: {len(injected)} comparison(s) that flipped between orders hold verdict-like text in an "
            "answer: possible prompt injection; they are flagged in the HTML report's list of flipped comparisons "
            "(brie-bench report --html).")))
    return out


def failure_entries(data: RunData) -> list[Failure]:
    """Per contender or judge: units still failed, failed attempts retried, and the latest error.

    A unit that failed and then succeeded on a rerun counts as retried, never as failed.
    """
    from brie_bench.summary import failures

    done = set(view_of(data.rows).cols.unit_keys) | {g["gen_key"] for g in data.generations}
    return [Failure(name=f.name, unit_kind=f.unit_kind, failed_units=f.failed, retried_attempts=f.retried,
                    kind=f.kind, message=f.message) for _, f in sorted(failures(data.errors, done).items())]


def failed_judge_entries(data: RunData, fails: list[Failure], judge_meta: dict[str, JudgeInfo]) -> list[FailedJudge]:
    """Judges with no stored verdict whose calls failed: they still appear, with the reason."""
    judged = set(view_of(data.rows).cols.members)  # the stored judge, also when a family groups it
    out = []
    for f in fails:
        if f.unit_kind != "judgment" or f.name in judged or not f.failed_units:
            continue
        meta = judge_meta.get(f.name)
        out.append(FailedJudge(judge=f.name, model=meta.model if meta else None, type=meta.type if meta else None,
                               failed_units=f.failed_units, kind=f.kind, message=f.message))
    return out


VERDICT_LIKE_EXPLANATION = (
    "An answer that contains verdict-like text ('Winner: B', '[[A]]', a JSON winner, a fence tag) may be "
    "trying to steer the judge. Such text can void a verdict (the parser calls conflicting verdicts "
    "invalid) but never flip it; these comparisons are listed whatever the run's `orders` setting, "
    "because a single-order run has no order flip to reveal an injection."
)


def verdict_like_entries(data: RunData) -> list[VerdictLike]:
    """Every comparison (item x judge) whose answers contain verdict-like text, with the first passage found.

    Each distinct answer's passage is among its figures (`brie_bench.answer_features`: stored
    with it, or found once per report): most runs have none, and then no row is looked at.
    """
    rc = view_of(data.rows).cols
    passage = rc.answers.features.verdict_like
    hit = np.fromiter((p is not None for p in passage), dtype=bool, count=len(passage))
    if not hit.any():
        return []
    out: list[VerdictLike] = []
    seen: set[tuple[Any, str]] = set()
    for i in np.flatnonzero(hit[rc.text_ft] | hit[rc.text_base]).tolist():
        key, judge = rc.keys[rc.item[i]], rc.judges[rc.judge[i]]
        if (key, judge) in seen:
            continue
        seen.add((key, judge))
        found = {who: passage[answer] for who, answer in (("candidate", rc.text_ft[i]), ("baseline", rc.text_base[i]))}
        passages = {who: text for who, text in found.items() if text}
        if passages:
            out.append(VerdictLike(judge=judge, section=key.section, prompt_id=key.prompt_id,
                                   sample_index=key.sample_index, candidate=key.candidate,
                                   baseline=key.baseline, answers=sorted(passages), passages=passages))
    return out


@collector_paused()  # as load_run: see brie_bench/gcpause.py
def build_report_from_data(data: RunData) -> Report:
    """The report for already-loaded run data (see `build_report`).

    A function of `data` alone (and the module's settings: `N_BOOT`, `BOOT_SEED`, `LEVEL`):
    what its tables share (`_Build`: the prompt numbering, the one set of bootstrap draws,
    the collapsed comparisons) is made here and passed down, so concurrent reports in any
    threads, and the same report built twice, give the same figures.
    """
    return _build_report(data, _Build(data))


def _build_report(data: RunData, build: _Build | None = None) -> Report:
    build = build if build is not None else _Build(data)
    run = data.run
    judge_meta = {j.name: j for j in _judge_info(data)}
    # One judge order everywhere (headline, sections, agreement, bias): candidates as first seen, judges by
    # name, as the run's stored suite lists them (sorted), whichever verdicts a section happens to lack.
    cand_rank = {c: i for i, c in enumerate(dict.fromkeys(c for c, _ in build.by_judge))}
    judge_rank = {name: i for i, name in enumerate(sorted({j for _, j in build.by_judge} | set(judge_meta)))}

    def in_order(candidate: str, judge: str) -> tuple[int, int]:
        return cand_rank.get(candidate, len(cand_rank)), judge_rank.get(judge, len(judge_rank))

    by_judge = {key: build.rows(idx) for key, idx in sorted(build.by_judge.items(), key=lambda kv: in_order(*kv[0]))}
    judges = [judge_entry(rows, judge_meta[j].model if j in judge_meta else None, legacy=data.legacy, build=build,
                          comparisons=build.comparisons[(c, j)])
              for (c, j), rows in by_judge.items()]
    from brie_bench.report.controls import human_calibrated_blocks  # PPI++ where people judged

    human = human_calibrated_blocks(judges, build.comparisons, level=LEVEL)
    judges = [dataclasses.replace(e, human_calibrated=human[(e.candidate, e.judge)])
              if (e.candidate, e.judge) in human else e for e in judges]
    # Judges whose verdicts follow position or label: no win rate anywhere, no vote in the majority.
    no_info = {(e.candidate, e.judge): e.information.statement for e in judges if e.information.statement}
    sections = []
    section_code = view_of(data.rows).cols.section
    by_section = {data.rows[int(idx[0])].item.section: idx for idx in _groups([section_code])}
    for name in data.section_order():
        sec_idx = by_section.get(name, np.zeros(0, dtype=np.intp))
        sec_rows = build.rows(sec_idx)
        entries = []
        for idx in _groups([build.candidate[sec_idx], build.judge[sec_idx]]):
            first = sec_rows[int(idx[0])]
            c = _comparisons_of_cols(build.cols.take(sec_idx[idx]))
            figures = _withheld_figures(outcome_figures(c.outcomes, c.clusters),
                                        no_info.get((first.item.candidate, first.judge)))
            entries.append(SectionJudgeFigures(judge=first.judge, candidate=first.item.candidate,
                                               baseline=first.item.baseline, model=first.judge_model,
                                               **figures.fields()))
        entries.sort(key=lambda e: in_order(e.candidate, e.judge))
        prompt_ids = ({build.cols.keys[i].prompt_id for i in np.unique(build.cols.item[sec_idx]).tolist()}
                      if isinstance(sec_rows, RowsView) else {r.item.prompt_id for r in sec_rows})
        sections.append(Section(section=name, n_prompts=len(prompt_ids),
                                n_judgments=len(sec_rows), judges=entries))
    agreement = []
    for rows in _by_candidate(data.rows):
        names = sorted(_judge_names(rows), key=lambda j: judge_rank.get(j, len(judge_rank)))
        if len(names) >= 2:
            agreement.append(agreement_entry(rows, names, legacy=data.legacy, build=build, no_information=no_info))
    verdict_like = verdict_like_entries(data)
    flagged = frozenset((v.judge, v.candidate, v.section, v.prompt_id, v.sample_index) for v in verdict_like)
    bias = [bias_entry(rows, legacy=data.legacy, comparisons=build.comparisons[key], verdict_like=flagged)
            for key, rows in by_judge.items()]
    criteria = [c for rows in by_judge.values() for c in criteria_entries(rows, build)]
    prompts = build.rank  # every prompt of the run, by name
    fails = failure_entries(data)
    failed_judges = failed_judge_entries(data, fails, judge_meta)
    run_info = RunInfo(
        id=run.id, suite=run.suite_name, suite_path=run.suite_path,
        description=data.snapshot.get("description"), seed=run.seed, status=run.status,
        created_at=_iso(run.created_at), finished_at=_iso(run.finished_at),
        legacy=data.legacy, labels_randomised=not data.legacy,
        versions=run.versions, n_judgments=len(data.rows),
        n_comparisons=sum(len(c.keys) for c in build.comparisons.values()),  # (item, judge) pairs
        n_prompts=len(prompts),
        failed_units=sum(f.failed_units for f in fails),
        retried_attempts=sum(f.retried_attempts for f in fails))
    report = Report(
        schema=SCHEMA_ID, schema_version=SCHEMA_VERSION, brie_bench_version=__version__,
        generated_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        run=run_info,
        verdict=Verdict(text="", candidates=[], rules=""),  # drawn from the rest of the report, below
        method=Method(interval=INTERVAL_EXPLANATION, orders=ORDERS_EXPLANATION,
                      win_rate=WIN_RATE_EXPLANATION, kappa_paradox=stats.KAPPA_PARADOX,
                      agreement_items=ALIGNMENT_EXPLANATION,
                      flips=FLIP_EXPLANATION, level=LEVEL, n_boot=N_BOOT, seed=BOOT_SEED,
                      min_prompts=MIN_PROMPTS, rows=ROWS_EXPLANATION,
                      bootstrap_min_prompts=stats.BOOTSTRAP_MIN_CLUSTERS,
                      length_bias=LengthBiasThresholds(gap=stats.LENGTH_BIAS_GAP, alpha=stats.LENGTH_BIAS_ALPHA),
                      verdict_like=VERDICT_LIKE_EXPLANATION),
        contenders=_contenders(data),
        judge_info=list(judge_meta.values()),
        judge_families=data.judge_families,
        judges=judges,
        failures=fails,
        failed_judges=failed_judges,
        sections=sections,
        agreement=agreement,
        bias=bias,
        criteria=criteria,
        ranking=ranking_entries(data, build),
        verdict_like=verdict_like,
        cost=_cost_block(data),
        legacy=LegacyImport(files=run.metadata.get("files"),
                            disagreements=[LegacyDisagreement.from_stored(d)
                                           for d in run.metadata.get("disagreements") or []],
                            duplicates=run.metadata.get("duplicates", 0),
                            replicates=run.metadata.get("replicates", 0)) if data.legacy else None,
        warnings=_warnings(data, run_info, judges, failed_judges, bias, verdict_like),
    )
    from brie_bench.conclusion import verdict_entry

    # The verdict (brie_bench.conclusion) comes right after `run`: every report form opens with it.
    return dataclasses.replace(report, verdict=verdict_entry(report))


def build_report(store: Store, run_id: str | None = None) -> Report:
    """Build the report of `run_id` (the latest run when None). Pure data; render it with html/markdown/jsonout."""
    return build_report_from_data(load_run(store, run_id))
