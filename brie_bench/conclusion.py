"""The verdict: the rules that turn a built report into one to three plain sentences per candidate.

A report (`brie_bench.report.schema.Report`) holds every figure a careful reader needs, but a team that fine-tunes in a
loop needs a sentence it can paste into a pull request. This module is the one place
where figures become words, so that the terminal, HTML, Markdown, JSON (`verdict`),
the model card and `brie-bench gate` all conclude the same thing from the same rules.

The rules (docs/report-schema.md, "`verdict`"; docs/statistics.md explains the figures):

1. **Each judge reads one of four ways** against each candidate (`judge_readings`):
   *better* when its win-rate interval lies entirely above 50%, *worse* when entirely
   below, *no-difference* when it contains 50%, and *undecided* when it cannot decide.
   Only a trusted interval decides: a judge cannot decide when its verdicts follow the
   position, label or order of the answers (`judges[].information`), when it gave no
   valid verdict (or every call failed), or when its interval is not trusted (too few
   prompts, degenerate). The point estimate never decides anything.
2. **A biased judge's null is no evidence.** With labels and positions randomised, a
   judge that leans to a label or position pulls its win rate towards 50%: a difference
   found despite the lean is not made by it (it is named as a caveat), but its "no
   difference" may be nothing but the lean, so such a judge is *undecided* instead.
3. **Per candidate** (`conclude`): *better* when at least one judge finds it better and
   none worse; *worse* the mirror image; *mixed* when judges find both; *no-difference*
   when every deciding judge finds none; *no-conclusion* when no judge can decide.
   The judges agree when at least two decide and all read the same way.
4. **One caveat**, the one that matters most for that finding (`_caveat`): for a
   difference, what could fake it first (labels not randomised, a length bias, a judge
   that was left out, a label or position lean, few prompts, many invalid verdicts);
   for no difference, the minimum detectable effect (an underpowered null says little);
   for no conclusion, what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from brie_bench.report.schema import (BiasDiagnostics, CandidateVerdict, JudgeFigures, Report, Verdict,
                                      VerdictCaveat, VerdictReading)

#: Readings of one judge against one candidate (`JudgeReading.reading`).
BETTER, WORSE, NULL, UNDECIDED = "better", "worse", "no-difference", "undecided"
#: Findings for a candidate (its judges' readings combined; `Conclusion.finding`).
MIXED, NO_CONCLUSION = "mixed", "no-conclusion"
#: Below this many distinct prompts every figure is rough (as `report.model.FEW_PROMPTS`).
FEW_PROMPTS = 10
#: A judge with more invalid verdicts than this share is named (as `report.model.INVALID_WARN`).
INVALID_SHARE = 0.10
#: The rules in one paragraph, for the JSON report's readers.
RULES = (
    "A judge finds the candidate better when its trusted 95% win-rate interval lies entirely above 50%, worse when "
    "entirely below, and no detectable difference when it contains 50%. A judge whose verdicts follow the position, "
    "label or order of the answers, with no valid verdict, or whose interval cannot be trusted never decides; nor "
    "does a judge whose verdicts lean significantly to one label or position when it finds no difference. The "
    "candidate is better when some judge finds it better and none worse (worse likewise), mixed when judges find "
    "both, and there is no conclusion when no judge can decide."
)


@dataclass(frozen=True)
class JudgeReading:
    """What one judge's figures say about one candidate: a direction, or why it cannot give one."""

    judge: str
    candidate: str
    baseline: str
    reading: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n_prompts: int | None = None
    #: Why the judge cannot decide (undecided), in words that follow "<judge> cannot decide: ".
    reason: str | None = None
    #: What stops it from deciding: no-information, biased, no-verdict, failed, untrusted (None when it decides).
    obstacle: str | None = None

    @property
    def decides(self) -> bool:
        return self.reading != UNDECIDED

    def figure(self) -> str:
        """'93% [86–98%]' (the interval the reading came from)."""
        return figure(self.estimate, self.low, self.high)

    def record(self) -> VerdictReading:
        """As the report's `verdict.candidates[].judges[]` entry."""
        return VerdictReading(judge=self.judge, reading=self.reading, estimate=self.estimate, low=self.low,
                              high=self.high, n_prompts=self.n_prompts, reason=self.reason, obstacle=self.obstacle)


@dataclass(frozen=True)
class Caveat:
    """The one thing a reader must weigh before acting on a conclusion."""

    kind: str
    text: str


@dataclass(frozen=True)
class Conclusion:
    """One candidate against the baseline: the finding, the readings behind it and its sentences.

    `finding` is a word (better, worse, mixed, no-difference, no-conclusion), not an outcome: in
    Brie Bench an outcome is the 1 / 0.5 / 0 / NaN coding of one comparison (`brie_bench.stats.outcomes`).
    """

    candidate: str
    baseline: str
    finding: str
    readings: tuple[JudgeReading, ...]
    agree: bool | None
    caveat: Caveat | None
    sentences: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    def record(self) -> CandidateVerdict:
        """As the report's `verdict.candidates[]` entry."""
        return CandidateVerdict(candidate=self.candidate, baseline=self.baseline, finding=self.finding,
                                text=self.text, sentences=list(self.sentences), agree=self.agree,
                                judges=[r.record() for r in self.readings],
                                caveat=None if self.caveat is None else VerdictCaveat(kind=self.caveat.kind,
                                                                                      text=self.caveat.text))


# --------------------------------------------------------------------------- words and figures


def percent(x: float | None) -> str:
    """0.934 -> '93%' (whole points: the intervals are wider than a decimal)."""
    return "–" if x is None else f"{100 * x:.0f}%"


def figure(estimate: float | None, low: float | None, high: float | None) -> str:
    """'93% [86–98%]', or the estimate alone when there is no interval."""
    if low is None or high is None:
        return percent(estimate)
    return f"{percent(estimate)} [{100 * low:.0f}–{100 * high:.0f}%]"


def names(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _prompts(n: int | None) -> str:
    return f"{n} prompt{'' if n == 1 else 's'}" if n is not None else "no prompt"


# --------------------------------------------------------------------------- rule 1 and 2: each judge


def _bias_of(report: Report, judge: str, candidate: str) -> BiasDiagnostics | None:
    return next((b for b in report.bias if b.judge == judge and b.candidate == candidate), None)


def lean(bias: BiasDiagnostics | None) -> str | None:
    """The label or position a judge's verdicts lean to, in words, when the lean is significant; else None.

    In Brie Bench runs label A is always shown first, so the two tests usually fire together.
    """
    if bias is None:
        return None
    label, position = bias.label, bias.position
    parts, figures = [], []
    if label.significant:
        share = label.label_a_share.estimate
        side, won = ("A", share) if share is None or share >= 0.5 else ("B", 1 - share)
        parts.append("label")
        p = label.fisher_p
        figures.append(f"label {side} won {percent(won)} of {label.n_decisive} decisive verdicts"
                       + (f", Fisher p = {p:.2g}" if p is not None else ""))
    if position.significant:
        share = position.first_shown_share.estimate
        side, won = ("first", share) if share is None or share >= 0.5 else ("second", 1 - share)
        parts.append("position")
        p = position.p_value
        if not figures:  # with label A always shown first, the label's figure already says it
            figures.append(f"the answer shown {side} won {percent(won)} of {position.n_decisive} decisive "
                           "verdicts" + (f", p = {p:.2g}" if p is not None else ""))
    if not parts:
        return None
    return f"its verdicts follow the {' and '.join(parts)} of the answers, not their content ({'; '.join(figures)})"


def _reading(entry: JudgeFigures, bias: BiasDiagnostics | None) -> JudgeReading:
    ci = entry.ci95

    def reading(kind: str, reason: str | None = None, obstacle: str | None = None) -> JudgeReading:
        return JudgeReading(judge=entry.judge, candidate=entry.candidate, baseline=entry.baseline, reading=kind,
                            estimate=ci.estimate, low=ci.low, high=ci.high, n_prompts=entry.n_prompts,
                            reason=reason, obstacle=obstacle)

    statement = entry.information.statement
    if statement:
        statement = statement.removeprefix("this judge's ").split("; ")[0]
        return reading(UNDECIDED, reason=f"its {statement}", obstacle="no-information")
    if not entry.n_valid:
        return reading(UNDECIDED, reason="it gave no valid verdict", obstacle="no-verdict")
    low, high = ci.low, ci.high
    if not ci.trusted or low is None or high is None:
        note = str(ci.note or "cannot be trusted")
        why = f"{note.replace(': ', ' (', 1)})" if ": " in note else note
        return reading(UNDECIDED, reason=f"its win-rate interval {why}", obstacle="untrusted")
    if low > 0.5:
        return reading(BETTER)
    if high < 0.5:
        return reading(WORSE)
    leaning = lean(bias)
    if leaning:  # rule 2: a judge pulled towards 50% by a label or position lean shows no difference by itself
        return reading(UNDECIDED, obstacle="biased", reason=leaning)
    return reading(NULL)


def judge_readings(report: Report) -> list[JudgeReading]:
    """Every (judge, candidate) reading of a report, judges whose every call failed included (undecided)."""
    out = [_reading(e, _bias_of(report, e.judge, e.candidate)) for e in report.judges]
    pairs = list(dict.fromkeys((e.candidate, e.baseline) for e in report.judges))
    if not pairs:  # no verdict at all: the failed judges still say why
        baseline = next((c.name for c in report.contenders if c.role == "baseline"), None)
        pairs = [(c.name, baseline or "baseline") for c in report.contenders if c.role == "candidate"]
    for fj in report.failed_judges:
        for candidate, baseline in pairs:
            out.append(JudgeReading(judge=fj.judge, candidate=candidate, baseline=baseline, reading=UNDECIDED,
                                    obstacle="failed", reason=f"all {fj.failed_units} of its calls failed "
                                                          f"({fj.kind}: {fj.message})"))
    return out


# --------------------------------------------------------------------------- rule 3 and 4: each candidate


def _finding(readings: Sequence[JudgeReading]) -> str:
    kinds = {r.reading for r in readings if r.decides}
    if not kinds:
        return NO_CONCLUSION
    if BETTER in kinds and WORSE in kinds:
        return MIXED
    if BETTER in kinds:
        return BETTER
    if WORSE in kinds:
        return WORSE
    return NULL


def _entry(report: Report, judge: str, candidate: str) -> JudgeFigures | None:
    return next((e for e in report.judges if e.judge == judge and e.candidate == candidate), None)


def _difference_caveats(report: Report, finding: str, readings: Sequence[JudgeReading]) -> Iterable[Caveat]:
    """Caveats for a found difference, most important first: what could fake it, then what weakens it."""
    run = report.run
    movers = [r for r in readings if r.reading in (BETTER, WORSE)]
    if run.legacy:
        yield Caveat("legacy-labels", "labels were not randomised in this imported run: a judge's preference for "
                                      "the label 'B' is credited to the fine-tune, and could make this result.")
    for r in movers:
        bias = _bias_of(report, r.judge, r.candidate)
        if bias is not None and bias.length.flagged:
            length = bias.length
            entry = _entry(report, r.judge, r.candidate)
            lc = entry.length_controlled if entry is not None else None
            at_equal = (f"; at equal length its win rate is {figure(lc.estimate, lc.low, lc.high)}"
                        if lc is not None and lc.estimate is not None else "")
            yield Caveat("length-bias", f"{r.judge} favours the longer answer (the candidate wins "
                                        f"{percent(length.ft_longer.estimate)} when longer, "
                                        f"{percent(length.ft_shorter.estimate)} when shorter), "
                                        f"so much of this may be answer length{at_equal}.")
    for r in readings:
        if r.obstacle == "no-information":
            yield Caveat("no-information", f"{r.judge} was left out: {r.reason}.")
    for r in movers:
        leaning = lean(_bias_of(report, r.judge, r.candidate))
        if leaning:
            yield Caveat("bias", f"{r.judge}'s verdicts also {leaning.removeprefix('its verdicts ')}; with "
                                 "randomised labels this pulls towards 50% rather than making a difference, but read "
                                 "the bias section.")
    n_prompts = run.n_prompts
    if n_prompts is not None and n_prompts < FEW_PROMPTS:
        yield Caveat("few-prompts", f"only {_prompts(n_prompts)}: the interval is wide and another set of prompts "
                                    f"could well differ (at least {FEW_PROMPTS} are needed for a usable estimate).")
    for r in readings:
        if not r.decides and r.obstacle != "no-information":
            yield Caveat("left-out", f"{r.judge} cannot decide: {r.reason}.")
    for r in movers:
        e = _entry(report, r.judge, r.candidate)
        if e is not None and (e.invalid_rate or 0) > INVALID_SHARE:
            yield Caveat("invalid", f"{r.judge} gave no valid verdict on {e.invalid} of {e.n} "
                                    "comparisons; they are left out, not counted as ties.")


def _null_caveats(report: Report, readings: Sequence[JudgeReading]) -> Iterable[Caveat]:
    """Caveats for no detectable difference: first, how large a difference the run could have missed."""
    nulls = [r for r in readings if r.reading == NULL]
    entries = [e for e in (_entry(report, r.judge, r.candidate) for r in nulls) if e is not None]
    found = sorted((e.power for e in entries if e.power.mde is not None), key=lambda p: float(p.mde or 0.0))
    if found:
        p = found[0]
        mde = float(p.mde or 0.0)
        if p.detectable_above is not None and p.detectable_below is not None:
            yield Caveat("underpowered", f"this run could only detect a true win rate above "
                                         f"{percent(p.detectable_above)} or below {percent(p.detectable_below)} "
                                         f"(minimum detectable effect ±{100 * mde:.0f} points at 80% power): a "
                                         "smaller real difference could easily have been missed.")
        else:
            yield Caveat("underpowered", "this run is too small to detect any difference with 80% power, so "
                                         "\"no difference\" says almost nothing.")
    else:
        yield Caveat("underpowered", "no minimum detectable effect could be computed, so \"no difference\" may "
                                     "only mean too little data.")
    for r in readings:
        if not r.decides:
            yield Caveat("left-out", f"{r.judge} cannot decide: {r.reason}.")


def _no_conclusion_caveats(report: Report, readings: Sequence[JudgeReading]) -> Iterable[Caveat]:
    """What to do when no judge can decide."""
    obstacles = {r.obstacle for r in readings}
    if obstacles & {"no-information", "biased"}:
        from brie_bench.stats.bias import ADVICE

        yield Caveat("advice", ADVICE)
    if any(r.obstacle == "untrusted" for r in readings):
        yield Caveat("advice", "Add prompts: an interval needs at least 5 distinct prompts to be trusted, and "
                               f"{FEW_PROMPTS} or more to be usable.")
    if obstacles & {"no-verdict", "failed"}:
        yield Caveat("advice", "Check the judges' errors (`brie-bench report` lists them) and rerun to retry.")


def _caveat(report: Report, finding: str, readings: Sequence[JudgeReading]) -> Caveat | None:
    if finding in (BETTER, WORSE, MIXED):
        found = _difference_caveats(report, finding, readings)
    elif finding == NULL:
        found = _null_caveats(report, readings)
    else:
        found = _no_conclusion_caveats(report, readings)
    return next(iter(found), None)


def _group(readings: Sequence[JudgeReading], *, inline: bool = False) -> str:
    """'gpt4o (93% [86–98%]) and gemini (90% [82–96%]), 25 prompts' — one prompt count when they share it.

    `inline` (inside a longer clause) keeps each judge's prompt count in its parentheses.
    """
    counts = {r.n_prompts for r in readings}
    if len(counts) == 1 and not inline:
        return f"{names([f'{r.judge} ({r.figure()})' for r in readings])}, {_prompts(readings[0].n_prompts)}"
    return names([f"{r.judge} ({r.figure()}, {_prompts(r.n_prompts)})" for r in readings])


def _sentences(c_cand: str, c_base: str, finding: str, readings: Sequence[JudgeReading],
               agree: bool | None, caveat: Caveat | None) -> tuple[str, ...]:
    deciding = [r for r in readings if r.decides]
    undecided = [r for r in readings if not r.decides]
    by = {kind: [r for r in deciding if r.reading == kind] for kind in (BETTER, WORSE, NULL)}
    only = len(readings) == 1
    out: list[str] = []
    if finding == NO_CONCLUSION:
        if only:
            r = readings[0]
            out.append(f"No conclusion about {c_cand} against {c_base}.")
            out.append(f"Its only judge, {r.judge}, cannot decide: {r.reason}, so no conclusion follows from it.")
        else:
            out.append(f"No conclusion about {c_cand} against {c_base}: none of its {len(readings)} judges can "
                       "decide, so no conclusion follows from them.")
            out.append("; ".join(f"{r.judge}: {r.reason}" for r in readings) + ".")
    else:
        who = "its only judge, " if only else ""
        if finding == MIXED:
            out.append(f"The judges disagree about {c_cand} against {c_base}: better according to "
                       f"{_group(by[BETTER], inline=True)}, worse according to {_group(by[WORSE], inline=True)}.")
        elif finding == NULL:
            out.append(f"No detectable difference between {c_cand} and {c_base} according to {who}"
                       f"{_group(by[NULL])}.")
        else:
            out.append(f"{c_cand} is {finding} than {c_base} according to {who}{_group(by[finding])}.")
        others = []
        if finding != NULL and by[NULL]:
            others.append(f"{_group(by[NULL], inline=True)} find{'s' if len(by[NULL]) == 1 else ''} no detectable "
                          "difference")
        if undecided:
            others.append(f"{names([r.judge for r in undecided])} cannot decide")
        if agree is True:
            out.append(f"The {len(deciding)} judges that decide agree" + (f"; {'; '.join(others)}." if others
                                                                          else "."))
        elif agree is False and finding != MIXED:
            out.append(f"The judges do not agree: {'; '.join(others)}.")
        elif finding == MIXED and others:
            out.append(f"Besides, {'; '.join(others)}.")
        elif undecided:  # one judge decides
            out.append(f"Of its {len(readings)} judges only {deciding[0].judge} decides.")
    if caveat is not None:
        text = caveat.text
        out.append(text if caveat.kind == "advice" else f"Caveat: {text}")
    return tuple(out)


def conclude(report: Report) -> list[Conclusion]:
    """One conclusion per candidate, in report order (rules 1-4 of the module docstring)."""
    readings = judge_readings(report)
    out = []
    for cand, base in dict.fromkeys((r.candidate, r.baseline) for r in readings):
        mine = tuple(r for r in readings if r.candidate == cand)
        finding = _finding(mine)
        deciding = [r for r in mine if r.decides]
        agree = None if len(deciding) < 2 else len({r.reading for r in deciding}) == 1
        caveat = _caveat(report, finding, mine)
        out.append(Conclusion(cand, base, finding, mine, agree, caveat,
                              _sentences(cand, base, finding, mine, agree, caveat)))
    return out


def verdict_entry(report: Report) -> Verdict:
    """The report's `verdict` object (docs/report-schema.md): the sentences for every candidate, and why.

    Read from the rest of `report`; its own `verdict` field is not looked at (the
    builder fills it with this result).
    """
    conclusions = conclude(report)
    text = " ".join(c.text for c in conclusions) or "No conclusion: this run has no judgments yet."
    return Verdict(text=text, candidates=[c.record() for c in conclusions], rules=RULES)


__all__ = ["BETTER", "MIXED", "NO_CONCLUSION", "NULL", "RULES", "UNDECIDED", "WORSE", "Caveat", "Conclusion", "JudgeReading",
           "conclude", "figure", "judge_readings", "verdict_entry"]
