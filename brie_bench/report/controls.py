"""The report's "beyond length" blocks: the style-controlled and the human-calibrated win rate.

Kept out of report/model.py, which only calls `style_entry` for each judge and
`human_calibrated_blocks` once over all judges; the statistics are in
`brie_bench.stats.style` and `brie_bench.stats.ppi`. Both blocks carry one plain
`sentence` that the terminal, Markdown and HTML reports print as it is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from brie_bench.report.figures import finite, interval_fields, report_interval, withheld
from brie_bench.report.columns import RowsView, RunColumns
from brie_bench.report.rows import ItemKey, JRow
from brie_bench.report.schema import HumanCalibrated, Interval, StyleCoefficient, StyleControlled
from brie_bench.stats import Draws
from brie_bench.stats.ppi import PPI_MIN_LABELLED, human_calibrated_win_rate, humans_for_width
from brie_bench.stats.style import (
    STYLE_FEATURES,
    StyleCounts,
    style_controlled_win_rate,
    style_counts,
)

#: Total interval width the planning line asks about: how many more human-labelled prompts reach it.
PPI_TARGET_WIDTH = 0.10


class _ComparisonsLike(Protocol):
    """What these blocks read of a judge's collapsed comparisons (`report.model.Comparisons`)."""

    keys: list[ItemKey]
    outcomes: np.ndarray
    clusters: np.ndarray


class _InformationLike(Protocol):
    @property
    def statement(self) -> str | None: ...


class _JudgeLike(Protocol):
    """What `human_calibrated_blocks` reads of a judge entry (`schema.JudgeFigures`)."""

    @property
    def judge(self) -> str: ...

    @property
    def candidate(self) -> str: ...

    @property
    def judge_type(self) -> str | None: ...

    @property
    def information(self) -> _InformationLike: ...


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def style_entry(rows: Sequence[JRow], comparisons: _ComparisonsLike, *, level: float, n_boot: int, seed: int,
                draws: Draws | None = None, withhold: str | None = None,
                counts: dict[str, StyleCounts] | None = None) -> StyleControlled:
    """A judge entry's `style_controlled` block (docs/report-schema.md): σ(β), each style coefficient, a sentence.

    The answers of each comparison are its stored texts (any row of it: both orders show
    the same two answers). `withhold` (the judge carries no information) blanks every figure.
    `draws`: the report's one set of draws (its `_Build`), else the statistic's own.
    `counts`: each answer text's `StyleCounts`, filled as texts are first seen. A report
    passes one dict for all its judges (every judge reads the same answers, so each is
    counted once per report, not once per judge); it holds only a pure function of the
    text, so no figure depends on it.
    """
    key_index = getattr(comparisons, "key_index", None)
    if isinstance(rows, RowsView) and key_index is not None and getattr(comparisons, "columns", None) is rows.cols:
        z = _style_matrix_of_columns(rows, key_index)
    else:
        seen: dict[str, StyleCounts] = {} if counts is None else counts
        text = {r.item: (r.text_ft, r.text_base) for r in rows}

        def count(answer: str) -> StyleCounts:
            found = seen.get(answer)
            if found is None:
                found = seen[answer] = style_counts(answer)
            return found

        z = _style_matrix([text[k] for k in comparisons.keys], count)
    fit = style_controlled_win_rate(comparisons.outcomes, z, comparisons.clusters, level=level,
                                    n_boot=n_boot, seed=seed, draws=draws)
    coefs = []
    for c in fit.coefficients:
        shown = not fit.at_bound and not c.constant and not withhold
        coefs.append(StyleCoefficient(feature=c.feature, per_sd=finite(c.coef.estimate) if shown else None,
                                      low=finite(c.coef.low) if shown else None,
                                      high=finite(c.coef.high) if shown else None,
                                      sd=finite(c.scale), constant=c.constant,
                                      sentence=c.sentence() if shown else None))
    ci = report_interval(fit.win_rate)
    if withhold:
        ci = withheld(ci, withhold)
    raw = None if withhold else finite(fit.raw_win_rate)
    return StyleControlled(**interval_fields(ci), raw_win_rate=raw, estimable=not fit.at_bound,
                           length_unit="characters", coefficients=coefs,
                           sentence=_style_sentence(ci, raw, coefs))


def _style_matrix(pairs: Sequence[tuple[str, str]], count: Callable[[str], StyleCounts]) -> np.ndarray:
    """`style_differences` of every (candidate, baseline) answer pair as one (n, k) array.

    The same arithmetic, over columns: a 100,000-judgment report has 80,000 such pairs,
    and one small array per pair was a second of its time. Each distinct text is counted
    once (`count`); the features are exact float64 operations on the same integers, so
    every value equals `style_differences`'.
    """
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(t, len(index)) for pair in pairs for t in pair), dtype=np.intp,
                        count=2 * len(pairs))
    table = np.array(list(map(operator.attrgetter(*STYLE_FEATURES), map(count, index))),
                     dtype=float).reshape(len(index), len(STYLE_FEATURES))
    return _style_features(table[codes[0::2]], table[codes[1::2]])


def _style_matrix_of_columns(rows: RowsView, key_index: np.ndarray) -> np.ndarray:
    """`_style_matrix` of the comparisons `key_index` (the run's `ItemKey` numbers) from the loader's columns.

    A comparison's answers are those of its last row among `rows` (as `style_entry`'s dict
    of rows keeps them); every distinct answer of the run is counted once, in one pass
    over all of them (`_answer_styles`).
    """
    rc = rows.cols
    item = rows.column("item")
    last = np.full(len(rc.keys), -1, dtype=np.intp)
    np.maximum.at(last, item, np.arange(len(item), dtype=np.intp))
    at = last[key_index]
    table = _answer_styles(rc)
    return _style_features(table[rows.column("text_ft")[at]], table[rows.column("text_base")[at]])


def _answer_styles(rc: RunColumns) -> np.ndarray:
    """Each answer's `StyleCounts` as a float row (`STYLE_FEATURES` order): the answers' stored figures
    (`brie_bench.answer_features`), or counted once per run's columns where none were stored."""
    return rc.answers.features.style


def _style_features(cand: np.ndarray, base: np.ndarray) -> np.ndarray:
    """`style_differences` over rows of counts (candidate's, baseline's): the same float64 operations."""
    lc, lb = cand[:, 0], base[:, 0]
    total = lc + lb
    n = len(cand)
    z = np.empty((n, len(STYLE_FEATURES)))
    z[:, 0] = np.divide(lc - lb, total, out=np.zeros(n), where=total != 0)
    dc, db = cand[:, 1:] / (lc + 1.0)[:, None], base[:, 1:] / (lb + 1.0)[:, None]
    z[:, 1:] = (dc - db) / (dc + db + 1.0)
    return z


def _style_sentence(ci: Interval, raw_win_rate: float | None, coefficients: Sequence[StyleCoefficient]) -> str:
    """One line: the rate at equal style, and the style preferences whose intervals exclude zero."""
    if ci.estimate is None:
        return f"Style-controlled win rate: {ci.note or 'cannot be estimated'}."
    clear = [c.sentence for c in coefficients if c.sentence and c.sentence.startswith("judges favour")]
    rate = (f"At equal style (length and markdown: headers, list items, bold) the candidate would win "
            f"{_pct(ci.estimate)} [{_pct(ci.low)}–{_pct(ci.high)}], against "
            f"{_pct(raw_win_rate)} as judged")
    return rate + ("; " + "; ".join(clear) + "." if clear else "; no clear style preference.")


def human_calibrated_blocks(entries: Sequence[_JudgeLike],
                            comparisons_by: Mapping[tuple[str, str], _ComparisonsLike], *,
                            level: float) -> dict[tuple[str, str], HumanCalibrated]:
    """The `human_calibrated` block of each LLM judge entry whose candidate people also judged (PPI++).

    Keyed by (candidate, judge). Y is the people's verdict on a comparison (the mean
    when several people judged it), Ŷ the judge's; the comparisons are matched by answer
    pair. Entries of human judges, and of candidates no person judged, get nothing. A
    judge whose verdicts carry no information (position or label) gets the block with
    its figures withheld.
    """
    humans: dict[str, list[str]] = {}
    for e in entries:
        if e.judge_type == "human":
            humans.setdefault(e.candidate, []).append(e.judge)
    out: dict[tuple[str, str], HumanCalibrated] = {}
    for e in entries:
        people = humans.get(e.candidate)
        if not people or e.judge_type == "human":
            continue
        judge_comparisons = comparisons_by.get((e.candidate, e.judge))
        if judge_comparisons is None:
            continue
        sums: dict[ItemKey, list[float]] = {}
        for person in people:
            pc = comparisons_by.get((e.candidate, person))
            if pc is None:
                continue
            for k, o in zip(pc.keys, pc.outcomes.tolist()):
                if o == o:
                    sums.setdefault(k, []).append(o)
        human = np.asarray([float(np.mean(sums[k])) if k in sums else np.nan for k in judge_comparisons.keys])
        res = human_calibrated_win_rate(human, judge_comparisons.outcomes, judge_comparisons.clusters, level=level)
        ci = report_interval(res.win_rate)
        statement = e.information.statement
        if statement:
            ci = withheld(ci, statement)
        human_only = report_interval(res.human_only)
        need = humans_for_width(res, PPI_TARGET_WIDTH)
        narrower_by = finite(res.narrower_by)
        out[(e.candidate, e.judge)] = HumanCalibrated(
            **interval_fields(ci), human_only=human_only, humans=people, n_human_verdicts=res.n_human,
            n_labelled_prompts=res.n_labelled, n_judged_prompts=res.n_prompts, lambda_=finite(res.lam),
            narrower_by=narrower_by, target_width=PPI_TARGET_WIDTH, labelled_prompts_for_target=need,
            sentence=_ppi_sentence(ci, human_only, people, res.n_human, res.n_labelled, res.n_prompts,
                                   narrower_by, need))
    return out


def _ppi_sentence(ci: Interval, ho: Interval, humans: Sequence[str], n: int, n_labelled: int, n_judged: int,
                  gain: float | None, need: int | None) -> str:
    """One line: what people would say, from how many of their verdicts, and how much the judge narrowed it."""
    who = ", ".join(humans)
    if ci.estimate is None or ci.low is None:
        why = ci.note or f"fewer than {PPI_MIN_LABELLED} prompts judged by people"
        return f"Human-calibrated win rate (from {n} human verdicts by {who}): {why}."
    text = (f"People ({who}) would give the candidate {_pct(ci.estimate)} [{_pct(ci.low)}–"
            f"{_pct(ci.high)}] (PPI++ from {n} human verdicts on {n_labelled} prompts and this "
            f"judge's verdicts on {n_judged}); people alone: {_pct(ho.estimate)} "
            f"[{_pct(ho.low)}–{_pct(ho.high)}]")
    if gain is not None and gain > 0:
        text += f", an interval {gain:.0%} narrower"
    if need is not None and need > n_labelled:
        text += (f"; about {need - n_labelled} more human-judged prompts would narrow it to "
                 f"{PPI_TARGET_WIDTH * 100:.0f} points")
    return text + "."
