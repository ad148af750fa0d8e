"""What the viewer's pages show, read from the store: run summaries (cached) and the filtered comparison list.

Summaries need a full report per run (the verdict and headline are statistics),
so they are cached per run and rebuilt only when the run changed (its status or
its number of judgments), which keeps the runs list quick on a database that
grows while it is open.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from brie_bench.report.schema import Contender, Report
from brie_bench.store import Store

#: Comparisons per page in the browser.
PAGE_SIZE = 20
#: The verdict filter's values, in blinded terms: which answer the judge picked.
PICKS = ("1", "2", "tie", "invalid")


@dataclass(frozen=True)
class Headline:
    """One judge's headline win rate with its interval, as the list draws it."""

    judge: str
    candidate: str
    estimate: float | None
    low: float | None
    high: float | None
    trusted: bool
    note: str


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list."""

    id: str
    suite: str
    created: str
    status: str
    contenders: tuple[str, ...]
    judges: tuple[str, ...]
    verdict: str
    headline: tuple[Headline, ...]


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _contender_text(c: Contender) -> str:
    """'brie (candidate, adapter out/lora, trained from data.jsonl)': the name with what made it."""
    bits = [str(c.role or "")]
    if c.adapter:
        bits.append(f"adapter {c.adapter}")
    prov = c.provenance
    if isinstance(prov, dict):
        source = prov.get("base_model") or prov.get("dataset") or prov.get("config")
        bits.append(f"trained: {source}" if source else "training manifest stored")
    return f"{c.name} ({', '.join(b for b in bits if b)})"


def summarise(report: Report) -> RunSummary:
    """The runs list's row for one report."""
    run = report.run
    heads = tuple(Headline(j.judge, j.candidate, _finite(j.ci95.estimate), _finite(j.ci95.low), _finite(j.ci95.high),
                           bool(j.ci95.trusted), str(j.ci95.note or ""))
                  for j in report.judges)
    return RunSummary(id=run.id, suite=run.suite, created=(run.created_at or "")[:16].replace("T", " "),
                      status=run.status, contenders=tuple(_contender_text(c) for c in report.contenders),
                      judges=tuple(dict.fromkeys(j.judge for j in report.judges)),
                      verdict=str(report.verdict.text or ""), headline=heads)


@dataclass
class SummaryCache:
    """Run summaries by run id, rebuilt when the run's status or judgment count changed."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[str, tuple[tuple[str, int], RunSummary]] = field(default_factory=dict)

    def summaries(self, store: Store) -> list[RunSummary]:
        """Every run, newest first."""
        from brie_bench.report.model import build_report_from_data
        from brie_bench.report.rows import load_run

        out = []
        for run in reversed(store.runs()):
            stamp = (run.status, store.count_judgments(run.id))
            with self._lock:
                hit = self._cache.get(run.id)
            if hit is None or hit[0] != stamp:
                summary = summarise(build_report_from_data(load_run(store, run.id, texts=False)))
                with self._lock:
                    self._cache[run.id] = (stamp, summary)
            else:
                summary = hit[1]
            out.append(summary)
        return out


def filter_runs(runs: list[RunSummary], *, suite: str = "", contender: str = "", judge: str = "") -> list[RunSummary]:
    """Runs of `suite`, with a contender named `contender`, judged by `judge` (each filter only when given)."""
    return [r for r in runs
            if (not suite or r.suite == suite)
            and (not contender or any(c == contender or c.startswith(contender + " (") for c in r.contenders))
            and (not judge or judge in r.judges)]


@dataclass(frozen=True)
class Judgment:
    """One judge's verdict on a pair, in blinded terms (which answer it picked)."""

    judge: str
    order: int
    pick: str  # "1", "2", "tie" or "invalid"
    reason: str
    raw: str


@dataclass(frozen=True)
class Pair:
    """One blinded comparison: a prompt, its two answers in a fixed random order, and every judge's pick."""

    section: str
    prompt_id: str
    sample: int
    prompt: str
    answer1: str
    answer2: str
    candidate_is_1: bool
    flags: tuple[str, ...]
    judgments: tuple[Judgment, ...]


@dataclass(frozen=True)
class BrowseFilter:
    """The browser's state, exactly what the query string holds (so a link reproduces the view)."""

    judge: str = ""
    section: str = ""
    verdict: str = ""
    flipped: bool = False
    invalid: bool = False
    disagree: bool = False
    q: str = ""
    page: int = 1

    def params(self, **change: Any) -> dict[str, str]:
        """The query parameters of this view (with `change` applied), defaults left out."""
        values = {**self.__dict__, **change}
        out: dict[str, str] = {}
        for key, value in values.items():
            if key == "page" and value == 1:
                continue
            if isinstance(value, bool):
                if value:
                    out[key] = "1"
            elif value:
                out[key] = str(value)
        return out


def read_filter(query: dict[str, str]) -> BrowseFilter:
    """The filter from query parameters; a value that makes no sense is ignored, not an error."""
    try:
        page = max(1, int(query.get("page", "1")))
    except ValueError:
        page = 1
    verdict = query.get("verdict", "")
    return BrowseFilter(judge=query.get("judge", ""), section=query.get("section", ""),
                        verdict=verdict if verdict in PICKS else "", flipped=query.get("flipped") == "1",
                        invalid=query.get("invalid") == "1", disagree=query.get("disagree") == "1",
                        q=query.get("q", "")[:200], page=page)


def _pick(outcome: float | None, candidate_is_1: bool) -> str:
    if outcome is None or math.isnan(outcome):
        return "invalid"
    if outcome == 0.5:
        return "tie"
    candidate = "1" if candidate_is_1 else "2"
    return candidate if outcome > 0.5 else ("2" if candidate == "1" else "1")


def pairs(items: dict[str, Any]) -> list[Pair]:
    """`brie_bench.report.items.comparison_items` output, expanded into `Pair`s."""
    out = []
    for it in items["items"]:
        cf = it["cf"] == 1
        judged = tuple(Judgment(items["judges"][j[0]], int(j[1]), _pick(j[4], cf), str(j[6] or ""), str(j[5] or ""))
                       for j in it["j"])
        out.append(Pair(section=items["sections"][it["s"]], prompt_id=str(it["id"]), sample=int(it["k"]),
                        prompt=items["prompts"][it["p"]], answer1=str(it["a1"]), answer2=str(it["a2"]),
                        candidate_is_1=cf, flags=tuple(it["fl"]), judgments=judged))
    return out


def browse(all_pairs: list[Pair], f: BrowseFilter) -> list[Pair]:
    """The pairs `f` selects. Judge and verdict go together: with a judge, the verdict is that judge's."""
    needle = f.q.casefold()
    out = []
    for p in all_pairs:
        judged = [j for j in p.judgments if not f.judge or j.judge == f.judge]
        if not judged or (f.section and p.section != f.section):
            continue
        if f.verdict and not any(j.pick == f.verdict for j in judged):
            continue
        if (f.flipped and "flip" not in p.flags) or (f.invalid and "invalid" not in p.flags) or \
                (f.disagree and "disagree" not in p.flags):
            continue
        if needle and not any(needle in text.casefold() for text in (p.prompt, p.answer1, p.answer2, p.prompt_id,
                                                                     *(j.raw for j in judged))):
            continue
        out.append(p)
    return out

