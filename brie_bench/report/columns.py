"""A run's judgments as columns, coded once: what every table of the report computes over.

`report.rows` reads the stored judgments as tuples; at 100,000 judgments one Python
object per row (a `JRow`) and per-row reads of it were most of a report's time
(benchmarks/report_scale.py). So the loader codes each column once into numpy arrays
(`RunColumns`): contenders, judges, sections and prompts as integer codes, outcomes,
orders and answer lengths as numbers, each comparison (`ItemKey`) made once, the
per-criterion scores as matrices. The statistics read these arrays.

`RowsView` is the same run (or a subset of its rows) as a `Sequence[JRow]`, for the
few places that list single judgments (flipped comparisons, verdict-like text, the
HTML list): a row's `JRow` is made when it is first read, from the stored tuple, and
kept. A view over rows someone built by hand (`columns_of` on a plain list) codes
them the same way, so every builder of the report takes either.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from brie_bench.report.answers import Answers
from brie_bench.report.jrow import NAN, ItemKey, JRow
from brie_bench.stats.outcomes import LOSS, TIE_OUTCOME, WIN, outcome_of


def codes(values: Sequence[Any]) -> tuple[NDArray[np.int64], list[Any]]:
    """Each value's number in first-seen order, and the distinct values: two C-level passes."""
    index = dict.fromkeys(values)
    distinct = list(index)
    lookup = dict(zip(distinct, range(len(distinct))))
    return np.fromiter(map(lookup.__getitem__, values), dtype=np.int64, count=len(values)), distinct


@dataclass(frozen=True, eq=False)
class RunColumns:
    """One run's judgments as arrays; row i of every array is the run's i-th judgment (the loader's order).

    Codes number distinct values in first-seen order (`judges[judge[i]]` is row i's judge).
    `keys` are the distinct comparisons in first-seen order and `item` each row's index
    into them; `clusters` are the run's prompt names (`ItemKey.cluster`) sorted, and
    `prompt` each row's number among them: the columns of a report's `stats.Draws`.
    `member` codes the stored judge (a family's member, else the judge itself). Scores
    are (rows, criteria) matrices from the candidate's and the baseline's side, NaN and
    not `has_*` where a row has no such score. `answers` are the compared answers (their
    texts, read when first needed, and their figures: `report.answers`), `text_ft` /
    `text_base` each row's two answers.
    """

    keys: list[ItemKey]
    item: NDArray[np.intp]
    clusters: list[str]
    prompt: NDArray[np.int64]
    judges: list[str]
    judge: NDArray[np.int64]
    judge_types: list[str]
    judge_type: NDArray[np.int64]
    members: list[str]
    member: NDArray[np.int64]
    candidates: list[str]
    candidate: NDArray[np.int64]
    sections: list[str]
    section: NDArray[np.int64]
    order: NDArray[np.int64]
    outcome: NDArray[np.float64]
    ft_is_a: NDArray[np.bool_]
    a_first: NDArray[np.bool_]
    p_ft: NDArray[np.float64]
    answers: Answers
    text_ft: NDArray[np.intp]
    text_base: NDArray[np.intp]
    len_ft: NDArray[np.float64]
    len_base: NDArray[np.float64]
    criteria: list[str]
    scores_ft: NDArray[np.float64]
    scores_base: NDArray[np.float64]
    has_ft: NDArray[np.bool_]
    has_base: NDArray[np.bool_]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    latency: list[float]
    unit_keys: list[str]
    seq: NDArray[np.int64]
    make_row: Callable[[int], JRow] = field(repr=False)
    made: list[JRow | None] = field(repr=False)
    #: What the report derives from these columns alone (e.g. each comparison's number and answer-pair code), made once.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.item)

    def row(self, i: int) -> JRow:
        """Row i as a `JRow`, made on first use and kept."""
        found = self.made[i]
        if found is None:
            found = self.made[i] = self.make_row(i)
        return found

    def key_prompt(self) -> NDArray[np.int64]:
        """Each comparison's prompt number."""
        rank = dict(zip(self.clusters, range(len(self.clusters))))
        return np.fromiter((rank[k.cluster] for k in self.keys), dtype=np.int64, count=len(self.keys))


class RowsView(Sequence[JRow]):
    """Rows `idx` of a `RunColumns`, as a sequence of `JRow`s made on demand; its columns are `column(name)`."""

    __slots__ = ("cols", "idx")

    def __init__(self, cols: RunColumns, idx: NDArray[np.intp] | None = None) -> None:
        self.cols = cols
        self.idx: NDArray[np.intp] = np.arange(len(cols), dtype=np.intp) if idx is None else idx

    def __len__(self) -> int:
        return len(self.idx)

    @overload
    def __getitem__(self, i: int) -> JRow: ...

    @overload
    def __getitem__(self, i: slice) -> list[JRow]: ...

    def __getitem__(self, i: int | slice) -> JRow | list[JRow]:
        if isinstance(i, slice):
            return [self.cols.row(j) for j in self.idx[i].tolist()]
        return self.cols.row(int(self.idx[i]))

    def __iter__(self) -> Iterator[JRow]:
        return map(self.cols.row, self.idx.tolist())

    def __repr__(self) -> str:
        return f"RowsView({len(self)} of {len(self.cols)} rows)"

    def take(self, idx: NDArray[np.intp]) -> RowsView:
        """The rows at positions `idx` of this view."""
        return RowsView(self.cols, self.idx[idx])

    def column(self, name: str) -> Any:
        """Column `name` of `RunColumns` for these rows."""
        return getattr(self.cols, name)[self.idx]


def view_of(rows: Sequence[JRow]) -> RowsView:
    """`rows` as a `RowsView`: itself when it is one, else its rows coded into columns (`columns_from_rows`)."""
    return rows if isinstance(rows, RowsView) else RowsView(columns_from_rows(rows))


# --------------------------------------------------------------------------- building the columns


def score_matrix(sides: Sequence[dict[str, float]]) -> tuple[list[str], NDArray[np.float64], NDArray[np.bool_]]:
    """(criteria, values, present) of per-row score dicts: values NaN where a row lacks a criterion.

    One C-level `itemgetter` per row when every row has every criterion (the usual case);
    else one pass per criterion. The values are the dicts' floats.
    """
    names = list(dict.fromkeys(itertools.chain.from_iterable(sides)))
    n, k = len(sides), len(names)
    if not k:
        return names, np.zeros((n, 0)), np.zeros((n, 0), dtype=bool)
    try:
        get = operator.itemgetter(*names)
        flat = itertools.chain.from_iterable(map(get, sides)) if k > 1 else map(get, sides)
        values = np.fromiter(flat, dtype=float, count=n * k).reshape(n, k)
        return names, values, np.ones((n, k), dtype=bool)
    except KeyError:
        pass
    values = np.empty((n, k))
    present = np.empty((n, k), dtype=bool)
    for j, c in enumerate(names):
        values[:, j] = np.fromiter(map(operator.methodcaller("get", c, NAN), sides), dtype=float, count=n)
        present[:, j] = np.fromiter(map(operator.methodcaller("__contains__", c), sides), dtype=bool, count=n)
    return names, values, present


def first_seen(columns: Sequence[NDArray[np.int64]]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows numbered by their combination of code `columns`, in first-seen order; and each number's first row."""
    n = len(columns[0])
    combined = np.zeros(n, dtype=np.int64)
    width = 1
    for c in columns:
        size = int(c.max()) + 1 if n else 1
        width *= size
        if width >= 2 ** 62:  # too many combinations for one integer: number them by rows
            _, inverse = np.unique(np.stack(list(columns), axis=1), axis=0, return_inverse=True)
            combined = inverse.reshape(-1).astype(np.int64)
            break
        combined = combined * size + c
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(len(order))
    return relabel[inverse.reshape(-1)].astype(np.intp), first[order].astype(np.intp)


def outcomes_of(winner: Sequence[str | None], baseline: Sequence[str], candidate: Sequence[str]) -> NDArray[np.float64]:
    """`stats.outcome_of` of every row, as array arithmetic (an unknown winner raises, as there)."""
    n = len(winner)
    won = np.fromiter(map(operator.eq, winner, candidate), dtype=bool, count=n)
    lost = np.fromiter(map(operator.eq, winner, baseline), dtype=bool, count=n)
    tie = np.fromiter(map(operator.eq, winner, itertools.repeat("tie")), dtype=bool, count=n)
    none = np.fromiter(map(operator.is_, winner, itertools.repeat(None)), dtype=bool, count=n)
    out = np.where(won, WIN, np.where(lost, LOSS, np.where(tie, TIE_OUTCOME, NAN)))
    unknown = np.flatnonzero(~(won | lost | tie | none))
    for i in unknown.tolist():
        outcome_of(winner[i], baseline[i], candidate[i])  # raises, naming the winner
    return out


@dataclass
class Coded:
    """Per-row values before they become `RunColumns` (both builders fill one)."""

    n: int
    keys: list[ItemKey]
    item: NDArray[np.intp]
    judge: Sequence[str]
    judge_type: Sequence[str]
    member: Sequence[str]
    candidate: Sequence[str]
    section_of_key: list[str]
    order: NDArray[np.int64]
    outcome: NDArray[np.float64]
    ft_is_a: NDArray[np.bool_]
    a_first: NDArray[np.bool_]
    p_ft: NDArray[np.float64]
    answers: Answers
    text_ft: NDArray[np.intp]
    text_base: NDArray[np.intp]
    criteria: list[str]
    scores_ft: NDArray[np.float64]
    scores_base: NDArray[np.float64]
    has_ft: NDArray[np.bool_]
    has_base: NDArray[np.bool_]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    latency: list[float]
    unit_keys: list[str]
    seq: NDArray[np.int64]


def finish(c: Coded, make_row: Callable[[int], JRow], made: list[JRow | None]) -> RunColumns:
    """The `RunColumns` of coded values: codes, prompt numbers and answer lengths."""
    clusters = sorted({k.cluster for k in c.keys})
    rank = dict(zip(clusters, range(len(clusters))))
    key_prompt = np.fromiter((rank[k.cluster] for k in c.keys), dtype=np.int64, count=len(c.keys))
    judge, judges = codes(c.judge)
    judge_type, judge_types = codes(c.judge_type)
    member, members = (judge, judges) if c.member is c.judge else codes(c.member)
    candidate, candidates = codes(c.candidate)
    key_section, sections = codes(c.section_of_key)  # keys are in first-seen order: so are their sections
    section = key_section[c.item]
    lengths = c.answers.features.chars
    return RunColumns(
        keys=c.keys, item=c.item, clusters=clusters,
        prompt=key_prompt[c.item] if c.n else np.zeros(0, dtype=np.int64),
        judges=judges, judge=judge, judge_types=judge_types, judge_type=judge_type, members=members, member=member,
        candidates=candidates, candidate=candidate,
        sections=sections, section=section, order=c.order, outcome=c.outcome, ft_is_a=c.ft_is_a,
        a_first=c.a_first, p_ft=c.p_ft, answers=c.answers, text_ft=c.text_ft, text_base=c.text_base,
        len_ft=lengths[c.text_ft] if c.n else np.zeros(0), len_base=lengths[c.text_base] if c.n else np.zeros(0),
        criteria=c.criteria, scores_ft=c.scores_ft, scores_base=c.scores_base, has_ft=c.has_ft,
        has_base=c.has_base, input_tokens=c.input_tokens, output_tokens=c.output_tokens, latency=c.latency,
        unit_keys=c.unit_keys, seq=c.seq, make_row=make_row, made=made)


def columns_from_rows(rows: Sequence[JRow]) -> RunColumns:
    """Columns of `JRow`s built by hand (or renamed by judge families): the same coding as the loader's."""
    rows = list(rows)
    n = len(rows)
    items = [r.item for r in rows]
    key_code, keys = codes(items)
    answer_code, answers = codes([*(r.text_ft for r in rows), *(r.text_base for r in rows)])
    ft_is_a = np.fromiter((r.ft_is_a for r in rows), dtype=bool, count=n)
    criteria_ft, ft, has_ft = score_matrix([r.scores_ft for r in rows])
    criteria_base, base, has_base = score_matrix([r.scores_base for r in rows])
    criteria = list(dict.fromkeys([*criteria_ft, *criteria_base]))
    return finish(Coded(
        n=n, keys=keys, item=key_code.astype(np.intp), judge=[r.judge for r in rows],
        judge_type=[r.judge_type for r in rows],
        member=[r.member or r.judge for r in rows], candidate=[k.candidate for k in items],
        section_of_key=[k.section for k in keys],
        order=np.fromiter((r.presentation_order for r in rows), dtype=np.int64, count=n),
        outcome=np.fromiter((r.outcome for r in rows), dtype=float, count=n), ft_is_a=ft_is_a,
        a_first=np.fromiter((r.first_label == "A" for r in rows), dtype=bool, count=n),
        p_ft=np.fromiter((r.p_ft for r in rows), dtype=float, count=n), answers=Answers.of_texts(answers),
        text_ft=answer_code[:n].astype(np.intp), text_base=answer_code[n:].astype(np.intp), criteria=criteria,
        scores_ft=widen_columns(ft, criteria_ft, criteria, NAN),
        scores_base=widen_columns(base, criteria_base, criteria, NAN),
        has_ft=widen_columns(has_ft, criteria_ft, criteria, False),
        has_base=widen_columns(has_base, criteria_base, criteria, False),
        input_tokens=np.fromiter((r.input_tokens for r in rows), dtype=np.int64, count=n),
        output_tokens=np.fromiter((r.output_tokens for r in rows), dtype=np.int64, count=n),
        latency=[r.latency_s or 0.0 for r in rows], unit_keys=[r.unit_key for r in rows],
        seq=np.fromiter((r.seq for r in rows), dtype=np.int64, count=n)), rows.__getitem__, list(rows))


def widen_columns(values: NDArray[Any], names: list[str], into: list[str], fill: Any) -> NDArray[Any]:
    """`values` (rows, names) as (rows, into), `fill` in the columns `names` lacks."""
    if names == into:
        return values
    out = np.full((values.shape[0], len(into)), fill, dtype=values.dtype)
    where = dict(zip(into, range(len(into))))
    for j, name in enumerate(names):
        out[:, where[name]] = values[:, j]
    return out
