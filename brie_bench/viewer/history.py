"""The history chart's data: the headline win rate of every run of one suite, one line per judge.

A team that evaluates checkpoint after checkpoint runs the same suite again and
again; this lines those runs up, oldest first, so a better or worse checkpoint
shows as a step in a line, with its interval band saying whether the step is
more than noise. It reads only the runs list's summaries (`viewer.data`), so
it costs nothing beyond the list itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from brie_bench.report.svg import IntervalRow, Series


class HeadlineLike(Protocol):
    """What the chart needs of one judge's headline (`viewer.data.Headline`); read-only."""

    @property
    def judge(self) -> str: ...
    @property
    def candidate(self) -> str: ...
    @property
    def estimate(self) -> float | None: ...
    @property
    def low(self) -> float | None: ...
    @property
    def high(self) -> float | None: ...
    @property
    def trusted(self) -> bool: ...


class RunLike(Protocol):
    """What the chart needs of one run's summary (`viewer.data.RunSummary`); read-only."""

    @property
    def id(self) -> str: ...
    @property
    def suite(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def headline(self) -> Sequence[HeadlineLike]: ...


@dataclass(frozen=True)
class History:
    """Runs of one suite, oldest first, and each judge's (and candidate's) win rate across them."""

    suite: str
    runs: tuple[RunLike, ...]
    series: tuple[Series, ...]


def history(summaries: Sequence[RunLike], suite: str) -> History:
    """The runs of `suite` (oldest first; `summaries` are newest first, as the runs list shows them) and one
    series per judge; a candidate is named when a suite has several."""
    runs = [r for r in reversed(summaries) if r.suite == suite]  # summaries come newest first
    keys: dict[tuple[str, str], None] = {}
    for r in runs:
        for h in r.headline:
            keys.setdefault((h.judge, h.candidate), None)
    several = len({c for _, c in keys}) > 1
    series = []
    for judge, candidate in keys:
        points: list[IntervalRow | None] = []
        for r in runs:
            found = next((h for h in r.headline if h.judge == judge and h.candidate == candidate), None)
            points.append(None if found is None else
                          IntervalRow(r.id, found.estimate, found.low, found.high, found.trusted))
        series.append(Series(f"{judge} · {candidate}" if several else judge, tuple(points)))
    return History(suite, tuple(runs), tuple(series))


def history_context(summaries: Sequence[RunLike], suite: str) -> dict[str, Any]:
    """The history page's template context: the chosen suite (default: the newest run's) and its history."""
    suites = sorted({r.suite for r in summaries})
    if suite not in suites:
        suite = summaries[0].suite if summaries else ""
    return {"suites": suites, "suite": suite, "history": history(summaries, suite)}


__all__ = ["History", "history", "history_context"]
