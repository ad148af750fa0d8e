"""Read one run's judgments from the store and code them from the fine-tune's side.

Everything the report computes starts from these rows. Coding happens once,
here, so every table and chart agrees on what a row means. The statistics read
the coded columns (`report.columns.RunColumns`, numpy arrays); `RunData.rows` is a
`RowsView` over them that makes a row's `JRow` (`report.jrow`) only when it is read,
from the same stored tuple and by the same rules (`_RowCoder.code`):

* ``outcome``: 1.0 the candidate (fine-tune) won, 0.5 tie, 0.0 it lost, NaN
  invalid (the stored ``winner`` is NULL). Invalid is never a tie.
* ``ft_is_a``: the candidate carried label A (which is always shown first in
  runs made by Brie Bench).
* ``first_label``: the label shown first. Always "A" for Brie Bench runs; for
  imported legacy runs the print order changed while the labels did not, and
  the importer records it in ``presentation_order`` (0 = AB, 1 = BA).

A *unit* is one comparison seen by one judge: (section, prompt, sample,
baseline, candidate, replicate, judge). A unit judged in both orders has two
rows. `replicate` is 0 except in imported legacy runs, where the same judge
re-judged the same comparison: each re-judgment is its own unit (numbered by
the ``-rN`` suffix the importer puts on the unit key).

The *cluster* a row belongs to, the unit every confidence interval resamples,
is its prompt's normalised text (Unicode NFKC, case-folded, whitespace
collapsed), not (section, prompt id): suites rerun one prompt in several
sections (temperatures, token lengths, reproducibility reruns), and those rows
share the prompt, so they are not independent evidence.

*Judge families* (``judge_families`` in the run's metadata or suite snapshot: family
name -> the stored judge names it groups) make several judges one: each member's row
gets the family's name as ``judge`` and the family's models, joined by " + ", as
``judge_model``; the stored judge and model stay in ``member`` and ``member_model``. A
family's judgments of one answer pair are numbered like one judge's re-judgments
(``replicate``): in an imported legacy run per print order, in stored order; in a
native run one number per member, in the order the family lists them. Without that, two
members' rows of one pair would share an `ItemKey` and an order, and the report keeps
only the last such row.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from brie_bench.answer_features import fill, parse_stored
from brie_bench.gcpause import collector_paused
from brie_bench.report.answers import Answers
from brie_bench.report.columns import (Coded, RowsView, RunColumns, codes, columns_from_rows, finish, first_seen,
                                       outcomes_of, score_matrix, view_of, widen_columns)
from brie_bench.report.jrow import NAN, ItemKey, JRow
from brie_bench.rows import JUDGMENT_COLUMNS
from brie_bench.stats.outcomes import outcome_of
from brie_bench.store import RunRow, Store
from brie_bench.textsafe import normalise_prompt

__all__ = ["NAN", "ItemKey", "JRow", "RowsView", "RunColumns", "RunData", "group_by", "judge_families", "load_run"]

_REPLICATE = re.compile(r"-r(\d+)$")


@dataclass
class RunData:
    """A run's metadata, suite snapshot, coded judgments and generation usage."""

    run: RunRow
    snapshot: dict[str, Any]
    #: A `RowsView` when loaded (`load_run`): each `JRow` is made when first read; `columns` holds the arrays.
    rows: Sequence[JRow]
    generations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def legacy(self) -> bool:
        return bool(self.run.metadata.get("legacy"))

    @property
    def judge_families(self) -> dict[str, list[str]]:
        """Family name -> the stored judge names it groups (see `judge_families`)."""
        return judge_families(self.run.metadata, self.snapshot)

    def prompt_texts(self) -> dict[tuple[str, str], str]:
        """(section, prompt id) -> prompt text, from the suite snapshot."""
        out: dict[tuple[str, str], str] = {}
        for section in self.snapshot.get("sections") or []:
            for p in section.get("prompts") or []:
                out[(section.get("name", ""), str(p.get("id")))] = p.get("text", "")
        return out

    @property
    def columns(self) -> RunColumns:
        """The judgments as arrays (`report.columns`): the loader's, or `rows` coded now when built by hand."""
        return view_of(self.rows).cols

    def section_order(self) -> list[str]:
        """Sections in suite order, then any that only appear in judgments."""
        names = [s.get("name", "") for s in self.snapshot.get("sections") or []]
        seen = dict.fromkeys(names)
        judged = self.columns.sections
        seen.update(dict.fromkeys(n for n in judged if n not in seen))
        present = set(judged)
        return [n for n in seen if n in present] or names


def judge_families(metadata: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, list[str]]:
    """The run's judge families, the import's (`metadata`) or the suite's (`snapshot`); empty when none.

    Both are stored as ``{family: [judge, ...]}``, the judges named as the store names
    them (a suite's judge names, a legacy file's `judge_model`), and validated when written.
    """
    raw = metadata.get("judge_families") or snapshot.get("judge_families") or {}
    if not isinstance(raw, dict):
        return {}
    return {str(name): [str(m) for m in members] for name, members in raw.items()
            if isinstance(members, list) and members}


def _pair(k: ItemKey) -> tuple[str, str, int, str, str]:
    """The answer pair an item compares, without its replicate number."""
    return (k.section, k.prompt_id, k.sample_index, k.baseline, k.candidate)


def _apply_families(rows: list[JRow], families: dict[str, list[str]], legacy: bool) -> None:
    """Give family members' rows their family's name and models, and renumber the family's judgments.

    The module docstring gives the numbering rule and why it is needed.
    """
    family_of = {m: name for name, members in families.items() for m in members}
    rank = {m: i for members in families.values() for i, m in enumerate(members)}
    grouped = sorted((r for r in rows if r.member in family_of), key=operator.attrgetter("seq"))
    models: dict[str, list[str]] = {}
    for r in grouped:
        found = models.setdefault(family_of[r.member], [])
        if r.member_model and r.member_model not in found:
            found.append(r.member_model)
    members_of_pair: dict[tuple[Any, ...], set[str]] = {}
    for r in grouped:
        members_of_pair.setdefault((_pair(r.item), family_of[r.member]), set()).add(r.member)
    keys: dict[tuple[Any, ...], ItemKey] = {}
    per_order: dict[tuple[Any, ...], int] = {}
    for r in grouped:
        family, pair = family_of[r.member], _pair(r.item)
        if legacy:
            slot = (pair, family, r.presentation_order)
            replicate = per_order.get(slot, 0)
            per_order[slot] = replicate + 1
        else:
            replicate = sorted(members_of_pair[(pair, family)], key=rank.__getitem__).index(r.member)
        ident = (*pair, replicate, r.item.prompt_key)
        found_key = keys.get(ident)
        if found_key is None:
            found_key = keys[ident] = ItemKey(*pair, replicate=replicate, prompt_key=r.item.prompt_key)
        r.item = found_key
        r.judge, r.judge_model = family, " + ".join(models[family]) or r.member_model


def _scores(scores: Any, label: str) -> dict[str, float]:
    if not isinstance(scores, dict) or not isinstance(scores.get(label), dict):
        return {}
    found = scores[label]
    if set(map(type, found.values())) <= {float}:  # the usual case (parsed with parse_int=float): as it is
        return found  # type: ignore[no-any-return]
    out: dict[str, float] = {}
    for k, v in scores[label].items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _replicate(unit_key: str) -> int:
    m = _REPLICATE.search(unit_key)
    return int(m.group(1)) if m else 0


#: The judgment columns the statistics read, in the order `_RowCoder.code` unpacks them (after the rowid): every
#: column of `brie_bench.rows.JudgmentRow` (the one list of them) but the run id, the write time
#: and the judge's own words (`raw`, `reasoning`), which are read only for the HTML list
#: (`texts=True`). Rows are read as tuples, not `JudgmentRow`s: one object per row would slow a
#: 100k-judgment report (benchmarks/report_scale.py).
_STAT_COLUMNS = ("unit_key", "section", "prompt_id", "sample_index", "judge", "judge_type", "judge_model",
                 "baseline", "candidate", "presentation_order", "label_a", "label_b", "gen_key_a", "gen_key_b",
                 "verdict", "winner", "p_a", "scores", "invalid_reason", "input_tokens", "output_tokens",
                 "latency_s")
_TEXT_COLUMNS = ("raw", "reasoning")
#: The columns only a single listed verdict shows, never a statistic: a lazy load (`load_run`) reads them
#: for the rows it makes, when it makes them (`Store.judgment_values`), not for the whole run.
_ROW_ONLY_COLUMNS = ("judge_model", "label_b", "verdict", "invalid_reason")
assert set(_STAT_COLUMNS) | set(_TEXT_COLUMNS) | {"run_id", "created_at"} == set(JUDGMENT_COLUMNS), \
    "report.rows reads every judgment column but run_id and created_at"


class _AnswerSource:
    """Where a loaded run's answers come from: their stored figures, and their texts read up front or on demand.

    `lazy`: a text is read from `store` when first asked for (`text`, `Answers`), so `store`
    must stay open while the report is built; else every text is read now. Either way an
    answer's figures are the stored ones (`answer_features`), worked out from the text for
    an answer that has none (stored before schema 4) or has another version's. `linked` holds
    the stored figures of the run's linked answers (read with `Store.run_generation_figures`).
    """

    def __init__(self, store: Store, keys: list[str], lazy: bool, linked: dict[str, str | None]) -> None:
        self.store, self.lazy = store, lazy
        # The run's linked answers' figures came with its generation figures; any other is read here.
        self.figures = {k: linked[k] for k in keys if k in linked}
        if len(self.figures) < len(keys):
            self.figures.update(store.generation_features([k for k in keys if k not in linked]))
        self.texts: dict[str, str] = {} if lazy else store.generation_texts(keys)

    def stored(self) -> dict[str, Any]:
        """The keys among those asked for whose answers are stored."""
        return self.figures if self.lazy else self.texts

    def text(self, key: str) -> str | None:
        """One answer's text (None when it is not stored)."""
        found = self.texts.get(key)
        if found is None and self.lazy and key in self.figures:
            self.texts.update(self.store.generation_texts([key]))
            found = self.texts.get(key)
        return found

    def read_all(self) -> None:
        """Read every stored text now (a caller about to make every row)."""
        if self.lazy:
            self.texts.update(self.store.generation_texts([k for k in self.figures if k not in self.texts]))

    def answers(self, keys: list[str]) -> Answers:
        """The answers `keys` with their figures, each text read when first needed."""
        table, redo = parse_stored([self.figures.get(k) for k in keys])
        answers = Answers(keys, self.store.generation_texts, table, known=self.texts)
        if redo:
            fill(table, redo, answers.texts_of([keys[i] for i in redo]))
        return answers


class _RowCoder:
    """Codes the stored judgment tuples of one run into `JRow`s (the module docstring says how).

    What many rows share is made once: one `ItemKey` per comparison, one cluster name per
    prompt, and one pair of parsed score dicts per distinct stored scores text.
    """

    def __init__(self, legacy: bool, prompt_text: dict[tuple[str, str], str], answers: _AnswerSource,
                 read: tuple[str, ...] = _STAT_COLUMNS,
                 row_only: Callable[[int], tuple[Any, ...]] | None = None) -> None:
        self.legacy, self.prompt_text, self.answers = legacy, prompt_text, answers
        #: The statistics' columns the stored tuples hold (after the rowid), and how a row's others
        #: (`_ROW_ONLY_COLUMNS`, by its rowid) are read when it is made.
        self.read, self.row_only = read, row_only
        self.cluster_of: dict[tuple[str, str], str] = {}
        self.items: dict[tuple[Any, ...], ItemKey] = {}
        self.scores: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        #: The distinct stored scores texts of the run (`_columns` registers them). The statistics read
        #: the scores as matrices parsed a chunk at a time (`_score_matrices`) and make a handful of
        #: rows; a row's scores are parsed when it is made, and once `_ROWS_BEFORE_BULK_PARSE` have
        #: been, every text is parsed in one call into `_parsed` (the HTML list makes every row).
        self.score_texts: list[str] = []
        self._parsed: dict[str, Any] | None = None

    def item(self, section: str, pid: str, sample_index: int, baseline: str, candidate: str,
             replicate: int) -> ItemKey:
        cluster = self.cluster_of.get((section, pid))
        if cluster is None:
            text = self.prompt_text.get((section, pid))
            cluster = self.cluster_of[(section, pid)] = "text\x1f" + normalise_prompt(text) if text else ""
        ident = (section, pid, sample_index, baseline, candidate, replicate, cluster)
        found = self.items.get(ident)
        if found is None:
            found = self.items[ident] = ItemKey(*ident)
        return found

    def parse_values(self, texts: list[str]) -> list[Any]:
        """Every distinct, non-empty stored scores text `texts` parsed, in one `json.loads` call where possible.

        A 100,000-judgment run has about as many distinct texts; one call per text cost
        more in the json module's Python wrapper than in its parser. The store writes each
        text with `json.dumps` of an object, so the texts joined by commas form one array of
        as many values; when they do not (a hand-edited store), each is parsed alone (and a
        text that is not JSON raises, as it always did).

        The array is parsed by orjson, 2.5 times faster here than the json module, to the
        same values, except that an integer stays an `int` (both `_scores` and
        `score_matrix` make it a float); what orjson refuses (NaN, Infinity, an integer or
        float out of range) goes to the json module, as before.
        """
        parsed: Any = None
        if texts and all(t[:1] == "{" and t[-1:] == "}" for t in texts):
            joined = "[" + ",".join(texts) + "]"
            try:
                parsed = orjson.loads(joined)
            except orjson.JSONDecodeError:
                try:
                    parsed = json.loads(joined, parse_int=float)
                except ValueError:
                    parsed = None
        if not isinstance(parsed, list) or len(parsed) != len(texts):
            parsed = [json.loads(t, parse_int=float) for t in texts]
        return list(parsed)

    def score_pair(self, raw: str | None) -> tuple[dict[str, float], dict[str, float]]:
        """(scores of label A, scores of label B), from the stored JSON text."""
        if not raw:
            return {}, {}
        found = self.scores.get(raw)
        if found is None:
            if self._parsed is None and len(self.scores) >= _ROWS_BEFORE_BULK_PARSE:
                # Many rows are being made (the HTML list makes every one): the rest in one call.
                self._parsed = dict(zip(self.score_texts, self.parse_values(self.score_texts)))
            known = self._parsed or {}
            parsed = known[raw] if raw in known else json.loads(raw, parse_int=float)
            found = self.scores[raw] = (_scores(parsed, "A"), _scores(parsed, "B"))
        return found

    def complete(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """A stored tuple with every `_STAT_COLUMNS` value, in that order (the row-only ones read now)."""
        if self.row_only is None:
            return values
        width = 1 + len(self.read)
        found = dict(zip(self.read, values[1:width]))
        found.update(zip(_ROW_ONLY_COLUMNS, self.row_only(values[0])))
        return (values[0], *map(found.__getitem__, _STAT_COLUMNS), *values[width:])

    def code(self, values: tuple[Any, ...]) -> JRow | None:
        """One row, or None when an answer it compares is missing (as the old join skipped it)."""
        (seq, unit_key, section, prompt_id, sample_index, judge, judge_type, judge_model, baseline, candidate,
         presentation_order, label_a, label_b, gen_key_a, gen_key_b, verdict, winner, p_a, scores, invalid_reason,
         input_tokens, output_tokens, latency_s, *texts) = self.complete(values)
        text_a, text_b = self.answers.text(gen_key_a), self.answers.text(gen_key_b)
        if text_a is None or text_b is None:
            return None
        presentation_order = int(presentation_order)
        ft_is_a = label_a == candidate
        p_ft = NAN if p_a is None or not math.isfinite(p_a) else (p_a if ft_is_a else 1.0 - p_a)
        scores_a, scores_b = self.score_pair(scores)
        raw, reasoning = texts if texts else ("", None)
        return JRow(
            self.item(section, str(prompt_id), int(sample_index), baseline, candidate,
                      _replicate(unit_key) if self.legacy else 0),
            unit_key, judge, judge_type or "", judge_model, presentation_order, label_a, label_b, verdict, winner,
            outcome_of(winner, baseline, candidate), ft_is_a,
            ("A" if presentation_order == 0 else "B") if self.legacy else "A", p_ft,
            scores_a if ft_is_a else scores_b, scores_b if ft_is_a else scores_a,
            text_a if ft_is_a else text_b, text_b if ft_is_a else text_a,
            raw or "", reasoning, invalid_reason, int(input_tokens or 0), int(output_tokens or 0), latency_s,
            judge, judge_model, int(seq))


def _sides(values: list[Any], label: str) -> list[dict[str, float]]:
    """`_scores(value, label)` of every parsed scores value; C-level when each is an object of numbers
    (`int`s too: `score_matrix` reads them as floats, as `_scores` would make them)."""
    try:
        sides = list(map(operator.itemgetter(label), values))
    except (TypeError, KeyError, IndexError):
        sides = None
    if sides is not None and set(map(type, values)) <= {dict} and set(map(type, sides)) <= {dict} \
            and set(map(type, itertools.chain.from_iterable(map(dict.values, sides)))) <= {float, int}:
        return sides
    return [_scores(v, label) for v in values]


#: Rows made one `json.loads` each before `_RowCoder.score_pair` parses every scores text at once.
_ROWS_BEFORE_BULK_PARSE = 1000
#: Scores texts parsed per `json.loads` call by `_score_matrices`: about 2 MB of JSON, whose parsed dicts
#: are dropped before the next chunk, so their memory is reused instead of growing by 100 MB and more.
_SCORE_CHUNK = 8192


def _score_matrices(texts: list[str], coder: _RowCoder) -> tuple[tuple[list[str], Any, Any], tuple[list[str], Any, Any]]:
    """`score_matrix` of label A's and label B's scores in each of `texts`, parsed a chunk at a time.

    Why chunks: a 100,000-judgment run's parsed scores are a few hundred thousand dicts; made all
    at once they cost more in fresh memory (page faults) and garbage-collector passes than in
    parsing. Each chunk's criteria are merged by name, in first-seen order, as one parse would.
    """
    sides: tuple[list[tuple[list[str], Any, Any]], list[tuple[list[str], Any, Any]]] = ([], [])
    for start in range(0, max(1, len(texts)), _SCORE_CHUNK):  # one chunk at least: no texts, no criteria
        parsed = coder.parse_values(texts[start:start + _SCORE_CHUNK])
        for found, label in zip(sides, "AB"):
            found.append(score_matrix(_sides(parsed, label)))
        del parsed
    out = []
    for found in sides:
        names = list(dict.fromkeys(itertools.chain.from_iterable(names for names, _, _ in found)))
        out.append((names, np.concatenate([widen_columns(values, chunk, names, NAN) for chunk, values, _ in found]),
                    np.concatenate([widen_columns(has, chunk, names, False) for chunk, _, has in found])))
    return out[0], out[1]


def _columns(stored: list[tuple[Any, ...]], coder: _RowCoder) -> RunColumns:
    """The stored judgment tuples (each answer of each row stored) as `RunColumns`; rows made lazily by `coder`."""
    n = len(stored)
    if not n:
        return columns_from_rows([])
    transposed = list(zip(*stored))
    column = dict(zip(coder.read, transposed[1:]))
    seq = transposed[0]
    (unit_key, section, prompt_id, sample_index, judge, judge_type, baseline, candidate, presentation_order, label_a,
     gen_key_a, gen_key_b, winner, p_a, scores, input_tokens, output_tokens, latency_s) = map(column.__getitem__, (
        "unit_key", "section", "prompt_id", "sample_index", "judge", "judge_type", "baseline", "candidate",
        "presentation_order", "label_a", "gen_key_a", "gen_key_b", "winner", "p_a", "scores", "input_tokens",
        "output_tokens", "latency_s"))
    legacy = coder.legacy
    replicate = list(map(_replicate, unit_key)) if legacy else [0] * n
    pid = list(map(str, prompt_id))
    sample = list(map(int, sample_index))
    key_code, firsts = first_seen([codes(section)[0], codes(pid)[0], codes(sample)[0], codes(baseline)[0],
                                   codes(candidate)[0], codes(replicate)[0]])
    keys = [coder.item(section[f], pid[f], sample[f], baseline[f], candidate[f], replicate[f])
            for f in firsts.tolist()]
    ft_is_a = np.fromiter(map(operator.eq, label_a, candidate), dtype=bool, count=n)
    order = np.fromiter(map(int, presentation_order), dtype=np.int64, count=n)
    p = np.array(p_a, dtype=float)
    finite = np.isfinite(p)
    p_ft = np.where(finite, np.where(ft_is_a, p, 1.0 - np.where(finite, p, 0.0)), NAN)
    gen_code, gens = codes([*gen_key_a, *gen_key_b])
    answers = coder.answers.answers(gens)
    text_a, text_b = gen_code[:n].astype(np.intp), gen_code[n:].astype(np.intp)
    # Scores: each distinct stored text parsed once, then a (texts, criteria) matrix per label.
    score_code, distinct = codes(scores)
    texts = coder.score_texts = [t for t in distinct if t]
    (names_a, values_a, has_a), (names_b, values_b, has_b) = _score_matrices(texts, coder)
    criteria = list(dict.fromkeys([*names_a, *names_b]))
    # Each distinct text's row among `texts`; an empty one's is len(texts), the NaN row `per_row` adds.
    nonempty = np.fromiter(map(bool, distinct), dtype=bool, count=len(distinct))
    text_row = np.where(nonempty, np.cumsum(nonempty) - 1, len(texts))
    row_text = text_row[score_code]

    def per_row(values: Any, names: list[str], fill: Any) -> Any:
        wide = np.full((len(texts) + 1, len(criteria)), fill, dtype=values.dtype)
        for j, name in enumerate(names):
            wide[:len(texts), criteria.index(name)] = values[:, j]
        return wide[row_text]

    sa, sb = per_row(values_a, names_a, NAN), per_row(values_b, names_b, NAN)
    ha, hb = per_row(has_a, names_a, False), per_row(has_b, names_b, False)
    cand = ft_is_a[:, None]
    return finish(Coded(
        n=n, keys=keys, item=key_code.astype(np.intp), judge=judge,
        judge_type=[t or "" for t in judge_type], member=judge, candidate=candidate,
        section_of_key=[k.section for k in keys], order=order,
        outcome=outcomes_of(winner, baseline, candidate), ft_is_a=ft_is_a,
        a_first=order == 0 if legacy else np.ones(n, dtype=bool), p_ft=p_ft, answers=answers,
        text_ft=np.where(ft_is_a, text_a, text_b), text_base=np.where(ft_is_a, text_b, text_a), criteria=criteria,
        scores_ft=np.where(cand, sa, sb), scores_base=np.where(cand, sb, sa), has_ft=np.where(cand, ha, hb),
        has_base=np.where(cand, hb, ha),
        input_tokens=_counts(input_tokens), output_tokens=_counts(output_tokens),
        latency=[x or 0.0 for x in latency_s], unit_keys=list(unit_key), seq=np.array(seq, dtype=np.int64)),
        lambda i: coder.code(stored[i]) or _missing(i), [None] * n)


def _counts(values: Sequence[int | None]) -> Any:
    """A token-count column as int64, None as 0 (`int(x or 0)`, in one conversion)."""
    as_float = np.array(values, dtype=float)
    if not np.all(np.isnan(as_float) | (np.abs(as_float) < 2.0 ** 53)):
        return np.fromiter((int(x or 0) for x in values), dtype=np.int64, count=len(values))
    return np.nan_to_num(as_float, nan=0.0).astype(np.int64)


def _missing(i: int) -> JRow:  # pragma: no cover - the loader keeps only rows whose answers are stored
    raise LookupError(f"judgment row {i} compares an answer that is not stored")


@collector_paused()  # a few hundred thousand acyclic objects: see brie_bench/gcpause.py
def load_run(store: Store, run_id: str | None = None, *, texts: bool = True, lazy: bool = False) -> RunData:
    """Everything the report needs about one run (the latest when run_id is None).

    Judgments are read as plain tuples, column by column, in one query, and coded once
    into arrays (`report.columns.RunColumns`); `rows` is a `RowsView` over them that makes
    each `JRow` when it is first read. Each answer text is read once per generation (a
    judgment only refers to it), not once per judgment. With ``texts=False`` the judges'
    own answers (`raw`, `reasoning`) are not read at all: the statistics and the JSON
    report never use them, only the HTML list of comparisons does (``raw`` is then ""
    and ``reasoning`` None).

    With ``lazy=True`` no answer text is read up front either: the statistics read each
    answer's stored figures (`brie_bench.answer_features`), and a text is read when a
    row that shows it is first made. The caller builds the report before it closes
    `store`; the HTML list, which shows every answer, loads with ``lazy=False``.
    """
    run = store.run(run_id)
    snapshot = store.suite_snapshot(run.id)
    families = judge_families(run.metadata, snapshot)
    # A lazy load leaves the row-only columns to the rows it makes; a run with judge families makes every row.
    read = tuple(c for c in _STAT_COLUMNS if c not in _ROW_ONLY_COLUMNS) if lazy and not families else _STAT_COLUMNS
    stored = store.judgment_tuples(run.id, read + (_TEXT_COLUMNS if texts else ()))
    a_at, b_at = 1 + read.index("gen_key_a"), 1 + read.index("gen_key_b")
    # The answers the judgments name, read after them (a judgment is stored after its answers).
    named = list(dict.fromkeys(itertools.chain(map(operator.itemgetter(a_at), stored),
                                               map(operator.itemgetter(b_at), stored))))
    figures = store.run_generation_figures(run.id)
    answers = _AnswerSource(store, named, lazy, {r[4]: r[10] for r in figures})
    legacy = bool(run.metadata.get("legacy"))
    coder = _RowCoder(legacy, RunData(run=run, snapshot=snapshot, rows=[]).prompt_texts(), answers, read,
                      None if read == _STAT_COLUMNS else
                      lambda seq: store.judgment_values(run.id, [seq], _ROW_ONLY_COLUMNS)[seq])
    present = answers.stored()
    if len(present) < len(named):
        stored = [r for r in stored if r[a_at] in present and r[b_at] in present]  # as the old join skipped them
    if families:
        answers.read_all()  # every row is made below
    cols = _columns(stored, coder)
    if families:
        rows = list(RowsView(cols))
        _apply_families(rows, families, legacy)
        cols = columns_from_rows(rows)
    generations = [dict(zip(("section", "prompt_id", "sample_index", "contender", "gen_key", "input_tokens",
                             "output_tokens", "finish_reason", "model", "backend"), r)) for r in figures]
    return RunData(run=run, snapshot=snapshot, rows=RowsView(cols), generations=generations,
                   errors=store.errors(run.id))


def group_by(rows: Iterable[JRow], *keys: str) -> dict[tuple[Any, ...], list[JRow]]:
    """Rows grouped by attribute names (``item.section`` style paths allowed), in first-seen order."""
    out: dict[tuple[Any, ...], list[JRow]] = {}
    get = operator.attrgetter(*keys)
    for r in rows:
        k = (get(r),) if len(keys) == 1 else get(r)
        found = out.get(k)
        if found is None:
            out[k] = [r]
        else:
            found.append(r)
    return out
