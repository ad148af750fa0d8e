"""Read one run's judgments from the store and code them from the fine-tune's side.

Everything the report computes starts from these rows. Coding happens once,
here, so every table and chart agrees on what a row means:

* ``outcome``: 1.0 the candidate (fine-tune) won, 0.5 tie, 0.0 it lost, NaN
  invalid (the stored ``winner`` is NULL). Invalid is never a tie.
* ``ft_is_a``: the candidate carried label A (which is always shown first in
  runs made by Brie Bench).
* ``first_label``: the label shown first. Always "A" for Brie Bench runs; for
  imported legacy runs the print order changed while the labels did not, and
  the importer records the print order in ``order_index`` (0 = AB, 1 = BA).

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

import json
import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from brie_bench.rows import JUDGMENT_COLUMNS
from brie_bench.stats.outcomes import outcome_of
from brie_bench.store import RunRow, Store
from brie_bench.textsafe import normalise_prompt

NAN = float("nan")
_REPLICATE = re.compile(r"-r(\d+)$")


@dataclass(frozen=True)
class ItemKey:
    """One comparison between two answers, independent of the judge.

    `prompt_key` (the normalised prompt text) is not part of equality: it only names
    the cluster. `replicate` is: a legacy re-judgment is a unit of its own.
    """

    section: str
    prompt_id: str
    sample_index: int
    baseline: str
    candidate: str
    replicate: int = 0
    prompt_key: str = field(default="", compare=False)
    #: The hash and the cluster name, computed once: every table groups rows by their ItemKey and
    #: their prompt, 100,000s of times in a large run.
    _hash: int = field(default=0, init=False, repr=False, compare=False)
    _cluster: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.section, self.prompt_id, self.sample_index, self.baseline,
                                                self.candidate, self.replicate)))
        object.__setattr__(self, "_cluster", self.prompt_key or f"{self.section}\x1f{self.prompt_id}")

    def __hash__(self) -> int:
        return self._hash

    @property
    def cluster(self) -> str:
        """The prompt this comparison belongs to: the unit the confidence interval resamples."""
        return self._cluster


@dataclass(slots=True)
class JRow:
    """One stored judgment, coded from the candidate's point of view."""

    item: ItemKey
    unit_key: str
    judge: str
    judge_type: str
    judge_model: str | None
    order_index: int
    label_a: str
    label_b: str
    verdict: str
    winner: str | None
    outcome: float
    ft_is_a: bool
    first_label: str
    p_ft: float
    scores_ft: dict[str, float]
    scores_base: dict[str, float]
    text_ft: str
    text_base: str
    raw: str
    reasoning: str | None
    invalid_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float | None
    #: The stored judge and its model: equal to `judge` and `judge_model` unless a family groups judges.
    member: str = ""
    member_model: str | None = None
    #: The judgment's place in the store's insertion order (its SQLite rowid): what "stored order" means.
    seq: int = -1


@dataclass
class RunData:
    """A run's metadata, suite snapshot, coded judgments and generation usage."""

    run: RunRow
    snapshot: dict[str, Any]
    rows: list[JRow]
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

    def section_order(self) -> list[str]:
        """Sections in suite order, then any that only appear in judgments."""
        names = [s.get("name", "") for s in self.snapshot.get("sections") or []]
        seen = dict.fromkeys(names)
        for r in self.rows:
            seen.setdefault(r.item.section, None)
        return [n for n in seen if any(r.item.section == n for r in self.rows)] or names


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
            slot = (pair, family, r.order_index)
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
                 "baseline", "candidate", "order_index", "label_a", "label_b", "gen_key_a", "gen_key_b",
                 "verdict", "winner", "p_a", "scores", "invalid_reason", "input_tokens", "output_tokens",
                 "latency_s")
_TEXT_COLUMNS = ("raw", "reasoning")
#: Where `scores` sits in a stored tuple (after the rowid).
_SCORES_AT = 1 + _STAT_COLUMNS.index("scores")
assert set(_STAT_COLUMNS) | set(_TEXT_COLUMNS) | {"run_id", "created_at"} == set(JUDGMENT_COLUMNS), \
    "report.rows reads every judgment column but run_id and created_at"


class _RowCoder:
    """Codes the stored judgment tuples of one run into `JRow`s (the module docstring says how).

    What many rows share is made once: one `ItemKey` per comparison, one cluster name per
    prompt, and one pair of parsed score dicts per distinct stored scores text.
    """

    def __init__(self, legacy: bool, prompt_text: dict[tuple[str, str], str], answers: dict[str, str]) -> None:
        self.legacy, self.prompt_text, self.answers = legacy, prompt_text, answers
        self.cluster_of: dict[tuple[str, str], str] = {}
        self.items: dict[tuple[Any, ...], ItemKey] = {}
        self.scores: dict[str, tuple[dict[str, float], dict[str, float]]] = {}

    def item(self, section: str, pid: str, sample_index: int, baseline: str, candidate: str,
             unit_key: str) -> ItemKey:
        cluster = self.cluster_of.get((section, pid))
        if cluster is None:
            text = self.prompt_text.get((section, pid))
            cluster = self.cluster_of[(section, pid)] = "text\x1f" + normalise_prompt(text) if text else ""
        ident = (section, pid, sample_index, baseline, candidate, _replicate(unit_key) if self.legacy else 0, cluster)
        found = self.items.get(ident)
        if found is None:
            found = self.items[ident] = ItemKey(*ident)
        return found

    def parse_scores(self, texts: Iterable[str | None]) -> None:
        """Parse every distinct stored scores text in one `json.loads` call (`score_pair` then finds them).

        A 100,000-judgment run has about as many distinct texts; one call per text cost
        more in the json module's Python wrapper than in its parser. The store writes each
        text with `json.dumps` of an object, so the texts joined by commas form one array of
        as many values; when they do not (a hand-edited store), each is parsed alone.
        """
        todo = [t for t in dict.fromkeys(texts) if t and t not in self.scores]
        if not todo:
            return
        parsed: Any = None
        if all(t[:1] == "{" and t[-1:] == "}" for t in todo):
            try:
                parsed = json.loads("[" + ",".join(todo) + "]", parse_int=float)
            except ValueError:
                parsed = None
        if not isinstance(parsed, list) or len(parsed) != len(todo):
            return  # `score_pair` parses each alone, raising where a text is not JSON
        for text, value in zip(todo, parsed):
            self.scores[text] = (_scores(value, "A"), _scores(value, "B"))

    def score_pair(self, raw: str | None) -> tuple[dict[str, float], dict[str, float]]:
        """(scores of label A, scores of label B), from the stored JSON text."""
        if not raw:
            return {}, {}
        found = self.scores.get(raw)
        if found is None:
            parsed = json.loads(raw, parse_int=float)
            found = self.scores[raw] = (_scores(parsed, "A"), _scores(parsed, "B"))
        return found

    def code(self, values: tuple[Any, ...]) -> JRow | None:
        """One row, or None when an answer it compares is missing (as the old join skipped it)."""
        (seq, unit_key, section, prompt_id, sample_index, judge, judge_type, judge_model, baseline, candidate,
         order_index, label_a, label_b, gen_key_a, gen_key_b, verdict, winner, p_a, scores, invalid_reason,
         input_tokens, output_tokens, latency_s, *texts) = values
        text_a, text_b = self.answers.get(gen_key_a), self.answers.get(gen_key_b)
        if text_a is None or text_b is None:
            return None
        order_index = int(order_index)
        ft_is_a = label_a == candidate
        p_ft = NAN if p_a is None or not math.isfinite(p_a) else (p_a if ft_is_a else 1.0 - p_a)
        scores_a, scores_b = self.score_pair(scores)
        raw, reasoning = texts if texts else ("", None)
        return JRow(
            self.item(section, str(prompt_id), int(sample_index), baseline, candidate, unit_key),
            unit_key, judge, judge_type or "", judge_model, order_index, label_a, label_b, verdict, winner,
            outcome_of(winner, baseline, candidate), ft_is_a,
            ("A" if order_index == 0 else "B") if self.legacy else "A", p_ft,
            scores_a if ft_is_a else scores_b, scores_b if ft_is_a else scores_a,
            text_a if ft_is_a else text_b, text_b if ft_is_a else text_a,
            raw or "", reasoning, invalid_reason, int(input_tokens or 0), int(output_tokens or 0), latency_s,
            judge, judge_model, int(seq))


def load_run(store: Store, run_id: str | None = None, *, texts: bool = True) -> RunData:
    """Everything the report needs about one run (the latest when run_id is None).

    Judgments are read as plain tuples, column by column, in one query; each answer
    text is read once per generation (a judgment only refers to it), not once per
    judgment. With ``texts=False`` the judges' own answers (`raw`, `reasoning`) are
    not read at all: the statistics and the JSON report never use them, only the
    HTML list of comparisons does (``raw`` is then "" and ``reasoning`` None).
    """
    run = store.run(run_id)
    snapshot = store.suite_snapshot(run.id)
    columns = _STAT_COLUMNS + (_TEXT_COLUMNS if texts else ())
    cursor = store.conn.cursor()
    cursor.row_factory = None  # tuples: no per-row dict or sqlite3.Row
    answers: dict[str, str] = dict(cursor.execute(
        "SELECT key, text FROM generations WHERE key IN (SELECT gen_key_a FROM judgments WHERE run_id=? "
        "UNION SELECT gen_key_b FROM judgments WHERE run_id=?)", (run.id, run.id)))
    coder = _RowCoder(bool(run.metadata.get("legacy")), RunData(run=run, snapshot=snapshot, rows=[]).prompt_texts(),
                      answers)
    cursor.execute(f"SELECT rowid, {', '.join(columns)} FROM judgments WHERE run_id=? "
                   "ORDER BY section, prompt_id, sample_index, judge, order_index", (run.id,))
    stored = cursor.fetchall()
    coder.parse_scores(r[_SCORES_AT] for r in stored)
    rows = [row for row in map(coder.code, stored) if row is not None]
    families = judge_families(run.metadata, snapshot)
    if families:
        _apply_families(rows, families, bool(run.metadata.get("legacy")))
    generations = [dict(zip(("section", "prompt_id", "sample_index", "contender", "gen_key", "input_tokens",
                             "output_tokens", "finish_reason", "model", "backend"), r)) for r in cursor.execute(
        "SELECT rg.section, rg.prompt_id, rg.sample_index, rg.contender, rg.gen_key, g.input_tokens, "
        "g.output_tokens, g.finish_reason, g.model, g.backend FROM run_generations rg "
        "JOIN generations g ON g.key = rg.gen_key WHERE rg.run_id=?", (run.id,))]
    return RunData(run=run, snapshot=snapshot, rows=rows, generations=generations, errors=store.errors(run.id))


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
