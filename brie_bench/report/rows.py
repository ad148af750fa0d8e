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
"""

from __future__ import annotations

import json
import math
import operator
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from brie_bench.rows import JUDGMENT_COLUMNS
from brie_bench.stats.outcomes import outcome_of
from brie_bench.store import RunRow, Store

NAN = float("nan")
_REPLICATE = re.compile(r"-r(\d+)$")


def normalise_prompt(text: str) -> str:
    """The key two prompts share when they are the same prompt: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


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
    #: The hash, computed once: every table groups rows by their ItemKey, 100,000s of times in a large run.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.section, self.prompt_id, self.sample_index, self.baseline,
                                                self.candidate, self.replicate)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def cluster(self) -> str:
        """The prompt this comparison belongs to: the unit the confidence interval resamples."""
        return self.prompt_key or f"{self.section}\x1f{self.prompt_id}"


@dataclass
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


def _scores(scores: dict[str, Any] | None, label: str) -> dict[str, float]:
    if not scores or not isinstance(scores.get(label), dict):
        return {}
    out: dict[str, float] = {}
    for k, v in scores[label].items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def code_row(d: dict[str, Any], *, legacy: bool, prompt_text: str | None = None,
             item: ItemKey | None = None) -> JRow:
    """Turn one judgment row (joined with both answer texts) into a `JRow`.

    `prompt_text` (from the suite snapshot) names the row's cluster; without it the
    cluster falls back to (section, prompt id). `item`, when given, is the row's
    already-built `ItemKey` (shared by every judge's rows of one comparison).
    """
    baseline, candidate = d["baseline"], d["candidate"]
    ft_is_a = d["label_a"] == candidate
    p_a = d.get("p_a")
    p_ft = NAN if p_a is None or not math.isfinite(p_a) else (p_a if ft_is_a else 1.0 - p_a)
    ft_label, base_label = ("A", "B") if ft_is_a else ("B", "A")
    text_a, text_b = d.get("text_a") or "", d.get("text_b") or ""
    if item is None:
        item = ItemKey(d["section"], str(d["prompt_id"]), int(d["sample_index"]), baseline, candidate,
                       _replicate(d["unit_key"]) if legacy else 0,
                       "text\x1f" + normalise_prompt(prompt_text) if prompt_text else "")
    return JRow(
        item=item,
        unit_key=d["unit_key"], judge=d["judge"], judge_type=d.get("judge_type") or "",
        judge_model=d.get("judge_model"), order_index=int(d["order_index"]),
        label_a=d["label_a"], label_b=d["label_b"], verdict=d["verdict"], winner=d.get("winner"),
        outcome=outcome_of(d.get("winner"), baseline, candidate), ft_is_a=ft_is_a,
        first_label=("A" if int(d["order_index"]) == 0 else "B") if legacy else "A",
        p_ft=p_ft, scores_ft=_scores(d.get("scores"), ft_label), scores_base=_scores(d.get("scores"), base_label),
        text_ft=text_a if ft_is_a else text_b, text_base=text_b if ft_is_a else text_a,
        raw=d.get("raw") or "", reasoning=d.get("reasoning"), invalid_reason=d.get("invalid_reason"),
        input_tokens=int(d.get("input_tokens") or 0), output_tokens=int(d.get("output_tokens") or 0),
        latency_s=d.get("latency_s"),
    )


def _replicate(unit_key: str) -> int:
    m = _REPLICATE.search(unit_key)
    return int(m.group(1)) if m else 0


#: The judgment columns the statistics read: every column of `brie_bench.rows.JudgmentRow` (the
#: one list of them) but the run id, the write time and the judge's own words (`raw`, `reasoning`),
#: which are read only for the HTML list (`texts=True`). Rows are read as tuples, not `JudgmentRow`s:
#: one object per row would slow a 100k-judgment report (benchmarks/report_scale.py).
_TEXT_COLUMNS = ("raw", "reasoning")
_STAT_COLUMNS = tuple(c for c in JUDGMENT_COLUMNS if c not in ("run_id", "created_at", *_TEXT_COLUMNS))


def load_run(store: Store, run_id: str | None = None, *, texts: bool = True) -> RunData:
    """Everything the report needs about one run (the latest when run_id is None).

    Judgments are read as plain tuples, column by column, in one query; each answer
    text is read once per generation (a judgment only refers to it), not once per
    judgment. With ``texts=False`` the judges' own answers (`raw`, `reasoning`) are
    not read at all: the statistics and the JSON report never use them, only the
    HTML list of comparisons does (``raw`` is then "" and ``reasoning`` None).
    """
    run = store.run(run_id)
    legacy = bool(run.metadata.get("legacy"))
    snapshot = store.suite_snapshot(run.id)
    prompt_text = RunData(run=run, snapshot=snapshot, rows=[]).prompt_texts()
    columns = _STAT_COLUMNS + (_TEXT_COLUMNS if texts else ())
    cursor = store.conn.cursor()
    cursor.row_factory = None  # tuples: no per-row dict or sqlite3.Row
    answers: dict[str, str] = dict(cursor.execute(
        "SELECT key, text FROM generations WHERE key IN (SELECT gen_key_a FROM judgments WHERE run_id=? "
        "UNION SELECT gen_key_b FROM judgments WHERE run_id=?)", (run.id, run.id)))
    cursor.execute(f"SELECT {', '.join(columns)} FROM judgments WHERE run_id=? "
                   "ORDER BY section, prompt_id, sample_index, judge, order_index", (run.id,))
    cluster_of: dict[tuple[str, str], str] = {}
    items: dict[tuple[Any, ...], ItemKey] = {}
    parsed_scores: dict[str, Any] = {}
    rows: list[JRow] = []
    for values in cursor:
        d = dict(zip(columns, values))
        text_a, text_b = answers.get(d["gen_key_a"]), answers.get(d["gen_key_b"])
        if text_a is None or text_b is None:  # as the old join: a judgment without its answers is skipped
            continue
        section, pid = d["section"], str(d["prompt_id"])
        cluster = cluster_of.get((section, pid))
        if cluster is None:
            text = prompt_text.get((section, pid))
            cluster = cluster_of[(section, pid)] = "text\x1f" + normalise_prompt(text) if text else ""
        raw_scores = d["scores"]
        if raw_scores:
            if raw_scores not in parsed_scores:
                parsed_scores[raw_scores] = json.loads(raw_scores)
            d["scores"] = parsed_scores[raw_scores]
        else:
            d["scores"] = None
        replicate = _replicate(d["unit_key"]) if legacy else 0
        ident = (section, pid, int(d["sample_index"]), d["baseline"], d["candidate"], replicate, cluster)
        item = items.get(ident)
        if item is None:
            item = items[ident] = ItemKey(*ident)
        d["text_a"], d["text_b"] = text_a, text_b
        rows.append(code_row(d, legacy=legacy, item=item))
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
