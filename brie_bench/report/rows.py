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
baseline, candidate, judge). A unit judged in both orders has two rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from brie_bench.store import RunRow, Store

NAN = float("nan")


@dataclass(frozen=True)
class ItemKey:
    """One comparison between two answers, independent of the judge."""

    section: str
    prompt_id: str
    sample_index: int
    baseline: str
    candidate: str

    @property
    def cluster(self) -> str:
        """The prompt this comparison belongs to: the unit the confidence interval resamples."""
        return f"{self.section}\x1f{self.prompt_id}"


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


def outcome_of(winner: str | None, baseline: str, candidate: str) -> float:
    """1 / 0.5 / 0 / NaN for candidate win / tie / loss / invalid."""
    if winner is None:
        return NAN
    if winner == candidate:
        return 1.0
    if winner == baseline:
        return 0.0
    if winner == "tie":
        return 0.5
    raise ValueError(f"winner {winner!r} is neither {baseline!r}, {candidate!r} nor 'tie'")


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


def code_row(d: dict[str, Any], *, legacy: bool) -> JRow:
    """Turn one judgment row (joined with both answer texts) into a `JRow`."""
    baseline, candidate = d["baseline"], d["candidate"]
    ft_is_a = d["label_a"] == candidate
    p_a = d.get("p_a")
    p_ft = NAN if p_a is None or not math.isfinite(p_a) else (p_a if ft_is_a else 1.0 - p_a)
    ft_label, base_label = ("A", "B") if ft_is_a else ("B", "A")
    text_a, text_b = d.get("text_a") or "", d.get("text_b") or ""
    return JRow(
        item=ItemKey(d["section"], str(d["prompt_id"]), int(d["sample_index"]), baseline, candidate),
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


def load_run(store: Store, run_id: str | None = None) -> RunData:
    """Everything the report needs about one run (the latest when run_id is None)."""
    run = store.run(run_id)
    legacy = bool(run.metadata.get("legacy"))
    rows = [code_row(d, legacy=legacy) for d in store.iter_judgments_with_texts(run.id)]
    return RunData(run=run, snapshot=store.suite_snapshot(run.id), rows=rows,
                   generations=store.run_generations(run.id), errors=store.errors(run.id))


def group_by(rows: Iterable[JRow], *keys: str) -> dict[tuple[Any, ...], list[JRow]]:
    """Rows grouped by attribute names (``item.section`` style paths allowed), in first-seen order."""
    out: dict[tuple[Any, ...], list[JRow]] = {}
    for r in rows:
        k = tuple(_attr(r, name) for name in keys)
        out.setdefault(k, []).append(r)
    return out


def _attr(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
