"""`brie-bench gate`: an exit code a CI job can gate a release on, from what a run has shown.

A gate on the point estimate would pass a fine-tune that won 7 of 10 prompts by luck.
So every threshold here is met only by what the 95% interval shows (docs/ci.md):

* `--min-win-rate R`: the lower bound of the candidate's win-rate interval is at least R;
* `--not-worse-than M --against RUN_B`: non-inferiority against a previous run, the lower
  bound of the paired difference (A − B, `report.compare.build_comparison`) is at least −M.

Which judges count is `--judges all|majority|NAME`. A judge whose figures cannot decide
(`brie_bench.conclusion`: its verdicts follow the position or label, no valid verdict, an
interval that cannot be trusted such as one over too few prompts) is skipped, unless
`--require-trusted` asks that every judge the rule looks at can decide. Exit codes tell a
CI job "worse" from "not enough evidence": 0 passed, 1 failed, 3 the data cannot decide,
2 bad input (one line, as everywhere). `--summary FILE` appends Markdown for
`$GITHUB_STEP_SUMMARY`; `--junit FILE` writes one JUnit test case per judge and candidate
(a failure element when it failed, a skipped element when it cannot decide).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from brie_bench.cli_options import common_options
from brie_bench.report.schema import Comparison, ComparisonRow, Report
from brie_bench.conclusion import JudgeReading, judge_readings, percent
from brie_bench.errors import InputError
from brie_bench.textsafe import safe_text

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNDECIDED = 0, 1, 2, 3
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
#: Without any threshold the gate asks that the candidate be shown at least as good as the baseline.
DEFAULT_MIN_WIN_RATE = 0.5
#: Obstacles (brie_bench.conclusion) that stop a judge from deciding a run-vs-run difference too.
NO_EVIDENCE_KINDS = ("no-information", "biased", "no-verdict", "failed")
WORDS = {PASS: "passed", FAIL: "failed", UNDECIDED: "cannot decide"}
MARKS = {PASS: "✅", FAIL: "❌", UNDECIDED: "⚠️"}


@dataclass(frozen=True)
class Rule:
    """What the gate asks: the thresholds (fractions) and which judges must meet them."""

    min_win_rate: float | None
    not_worse_than: float | None
    judges: str = "all"
    require_trusted: bool = False

    def describe(self, against: str | None = None) -> str:
        who = {"all": "every judge that can decide", "majority": "a majority of the judges that can decide"}.get(
            self.judges, f"judge {self.judges}")
        if self.require_trusted:
            who = {"all": "every judge", "majority": "a majority of all judges"}.get(self.judges, who) + \
                " (each must be able to decide)"
        asks = []
        if self.min_win_rate is not None:
            asks.append(f"win rate at least {percent(self.min_win_rate)} (the 95% interval's lower bound)")
        if self.not_worse_than is not None:
            asks.append(f"not worse than run {against or 'B'} by more than {100 * self.not_worse_than:g} points "
                        "(lower bound of the paired difference A − B)")
        return f"{who} must show: {'; '.join(asks)}"


@dataclass(frozen=True)
class Check:
    """One threshold for one judge and candidate: passed, failed or cannot decide, and why."""

    name: str
    status: str
    figure: str
    detail: str


@dataclass(frozen=True)
class Case:
    """One judge against one candidate: all its checks together (one JUnit test case)."""

    judge: str
    candidate: str
    baseline: str
    checks: tuple[Check, ...]

    @property
    def status(self) -> str:
        found = {c.status for c in self.checks}
        return FAIL if FAIL in found else UNDECIDED if UNDECIDED in found else PASS

    def message(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if c.status == self.status)


@dataclass(frozen=True)
class CandidateResult:
    """The rule applied to one candidate's cases."""

    candidate: str
    baseline: str
    status: str
    why: str


@dataclass(frozen=True)
class GateResult:
    """Everything the gate decided, for the terminal, the Markdown summary and the JUnit file."""

    run_id: str
    suite: str
    against: str | None
    rule: Rule
    cases: tuple[Case, ...]
    candidates: tuple[CandidateResult, ...]
    verdict: str

    @property
    def status(self) -> str:
        found = {c.status for c in self.candidates}
        if not self.candidates:
            return UNDECIDED
        return FAIL if FAIL in found else UNDECIDED if UNDECIDED in found else PASS

    @property
    def exit_code(self) -> int:
        return {PASS: EXIT_PASSED, FAIL: EXIT_FAILED, UNDECIDED: EXIT_UNDECIDED}[self.status]


# --------------------------------------------------------------------------- thresholds


def parse_fraction(value: str, option: str) -> float:
    """'0.6' or '60%' -> 0.6; anything else (or outside 0-100%) is bad input naming the option."""
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"{value!r} is not a number: give a fraction such as 0.6 or a percentage such as 60%",
                         field=option) from None
    if not 0.0 <= number <= 1.0 or number != number:
        hint = f" (did you mean {number / 100:g}?)" if 1.0 < number <= 100.0 and not text.endswith("%") else ""
        raise InputError(f"{value!r} is outside 0-1 (0-100%){hint}", field=option)
    return number


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} pts"


# --------------------------------------------------------------------------- checks


def min_win_rate_check(reading: JudgeReading, threshold: float) -> Check:
    """Met when the judge decides and its interval's lower bound is at least `threshold`."""
    name = f"win rate ≥ {percent(threshold)}"
    shown = f"{reading.figure()}, {reading.n_prompts} prompts" if reading.n_prompts is not None else "–"
    if not reading.decides or reading.low is None or reading.high is None:
        return Check(name, UNDECIDED, shown, f"cannot decide: {reading.reason}")
    if reading.low >= threshold:
        return Check(name, PASS, shown, f"lower bound {percent(reading.low)} ≥ {percent(threshold)}")
    if reading.high < threshold:
        return Check(name, FAIL, shown, f"the whole interval lies below {percent(threshold)}")
    return Check(name, FAIL, shown, f"lower bound {percent(reading.low)} < {percent(threshold)}: not shown to "
                                    f"reach {percent(threshold)}")


def not_worse_check(entry: ComparisonRow | None, readings: Sequence[JudgeReading | None], margin: float,
                    against: str) -> Check:
    """Non-inferiority: the lower bound of the paired difference A − B is at least −`margin`."""
    name = f"not worse than {against} by > {100 * margin:g} pts"
    if entry is None:
        return Check(name, UNDECIDED, "–", f"cannot decide: this judge did not judge this candidate in run {against}")
    d = entry.difference
    shown = f"A − B {_pts(d.estimate)} [{_pts(d.low)}, {_pts(d.high)}], {entry.n_shared_prompts} shared prompts"
    for which, r in zip(("A", "B"), readings):
        if r is not None and r.obstacle in NO_EVIDENCE_KINDS:
            return Check(name, UNDECIDED, shown, f"cannot decide: in run {which}, {r.reason}")
    if not d.trusted or d.low is None:
        return Check(name, UNDECIDED, shown, f"cannot decide: the difference {d.note or 'cannot be trusted'}")
    if d.low >= -margin:
        return Check(name, PASS, shown, f"lower bound {_pts(d.low)} ≥ {_pts(-margin)}")
    return Check(name, FAIL, shown, f"lower bound {_pts(d.low)} < {_pts(-margin)}: not shown to be within "
                                    f"{100 * margin:g} points of run {against}")


def apply_rule(cases: Sequence[Case], judges: str, require_trusted: bool) -> tuple[str, str]:
    """(status, why) for one candidate's cases under `--judges` and `--require-trusted`."""
    decided = [c for c in cases if c.status != UNDECIDED]
    undecided = [c for c in cases if c.status == UNDECIDED]
    passed = [c.judge for c in decided if c.status == PASS]
    failed = [c.judge for c in decided if c.status == FAIL]
    if not cases:
        return UNDECIDED, "no judge gave a verdict"
    if judges == "majority":
        n = len(cases) if require_trusted else len(decided)
        if not decided:
            return UNDECIDED, "no judge can decide"
        if len(passed) * 2 > n:
            return PASS, f"{len(passed)} of {n} judges passed"
        if require_trusted and (len(passed) + len(undecided)) * 2 > n:
            return UNDECIDED, (f"{len(passed)} of {n} judges passed and {len(undecided)} cannot decide: "
                               "they could make a majority")
        return FAIL, f"only {len(passed)} of {n} judges passed"
    if failed:
        return FAIL, f"failed for {', '.join(failed)}"
    if undecided and (require_trusted or not decided):
        return UNDECIDED, f"{', '.join(c.judge for c in undecided)} cannot decide"
    skipped = f" ({', '.join(c.judge for c in undecided)} cannot decide, skipped)" if undecided else ""
    return PASS, f"passed for {', '.join(passed)}{skipped}"


def evaluate(report: Report, rule: Rule, *, comparison: Comparison | None = None,
             report_b: Report | None = None, against: str | None = None) -> GateResult:
    """Apply `rule` to a built report (and, for `--not-worse-than`, the comparison with run B)."""
    readings = judge_readings(report)
    known = list(dict.fromkeys(r.judge for r in readings))
    if rule.judges not in ("all", "majority") and rule.judges not in known:
        raise InputError(f"no judge {rule.judges!r} in run {report.run.id} (its judges: "
                         f"{', '.join(known) or 'none'})", field="--judges")
    readings_b = {(r.judge, r.candidate): r for r in judge_readings(report_b)} if report_b else {}
    single = len({r.candidate for r in readings}) <= 1
    diffs: dict[tuple[str, str | None], ComparisonRow] = {}
    for e in comparison.judges if comparison is not None else []:
        diffs[(e.judge, None if single else e.a.candidate)] = e
    cases = []
    for r in readings:
        if rule.judges not in ("all", "majority") and r.judge != rule.judges:
            continue
        checks = []
        if rule.min_win_rate is not None:
            checks.append(min_win_rate_check(r, rule.min_win_rate))
        if rule.not_worse_than is not None:
            entry = diffs.get((r.judge, None if single else r.candidate))
            r_b = readings_b.get((r.judge, r.candidate))
            if r_b is None and single:  # one candidate a side: runs are matched by judge, as the comparison does
                r_b = next((x for (j, _), x in readings_b.items() if j == r.judge), None)
            checks.append(not_worse_check(entry, (r, r_b), rule.not_worse_than, against or "B"))
        cases.append(Case(r.judge, r.candidate, r.baseline, tuple(checks)))
    results = []
    for cand, base in dict.fromkeys((c.candidate, c.baseline) for c in cases):
        status, why = apply_rule([c for c in cases if c.candidate == cand], rule.judges, rule.require_trusted)
        results.append(CandidateResult(cand, base, status, why))
    return GateResult(run_id=report.run.id, suite=report.run.suite, against=against, rule=rule,
                      cases=tuple(cases), candidates=tuple(results), verdict=report.verdict.text)


# --------------------------------------------------------------------------- outputs


def summary_markdown(result: GateResult) -> str:
    """A Markdown block for a CI job summary ($GITHUB_STEP_SUMMARY): result, rule, verdict, one row per check."""
    from brie_bench.report.markdown import cell

    against = f", against run `{cell(result.against)}`" if result.against else ""
    out = [f"## {MARKS[result.status]} Brie Bench gate {WORDS[result.status]} (exit {result.exit_code})", "",
           f"Run `{cell(result.run_id)}` (suite {cell(result.suite)}){against}. Rule: "
           f"{cell(result.rule.describe(result.against))}.", ""]
    for c in result.candidates:
        out += [f"- **{cell(c.candidate)}** against {cell(c.baseline)}: {WORDS[c.status]}, {cell(c.why)}"]
    out += ["", f"**Verdict:** {cell(result.verdict)}", "",
            "| Judge | Candidate | Check | Result | Figure | Why |", "| --- | --- | --- | --- | --- | --- |"]
    for case in result.cases:
        for ch in case.checks:
            out.append(f"| {cell(case.judge)} | {cell(case.candidate)} | {cell(ch.name)} | "
                       f"{MARKS[ch.status]} {WORDS[ch.status]} | {cell(ch.figure)} | {cell(ch.detail)} |")
    return "\n".join(out) + "\n\n"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    """Text XML 1.0 can hold (a stored name may carry control characters)."""
    return _NOT_XML.sub("\ufffd", str(text))


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one test case per judge and candidate; <failure> when it failed, <skipped> when it cannot decide."""
    import xml.etree.ElementTree as ET

    n = len(result.cases)
    failures = sum(1 for c in result.cases if c.status == FAIL)
    skipped = sum(1 for c in result.cases if c.status == UNDECIDED)
    counts = {"tests": str(n), "failures": str(failures), "errors": "0", "skipped": str(skipped), "time": "0"}
    root = ET.Element("testsuites", {"name": "brie-bench gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _x(f"brie-bench gate: {result.suite} ({result.run_id})"),
                                              **counts})
    props = ET.SubElement(suite, "properties")
    for key, value in (("run", result.run_id), ("against", result.against or ""),
                       ("rule", result.rule.describe(result.against)), ("result", WORDS[result.status]),
                       ("exit_code", str(result.exit_code)), ("verdict", result.verdict)):
        ET.SubElement(props, "property", {"name": key, "value": _x(value)})
    for case in result.cases:
        tc = ET.SubElement(suite, "testcase", {"classname": _x(f"brie-bench.{result.suite}.{case.candidate}"),
                                               "name": _x(f"{case.judge}: {case.candidate} vs {case.baseline}"),
                                               "time": "0"})
        details = "\n".join(f"{c.name}: {WORDS[c.status]}: {c.figure}; {c.detail}" for c in case.checks)
        if case.status == FAIL:
            ET.SubElement(tc, "failure", {"message": _x(case.message()), "type": "gate"}).text = _x(details)
        elif case.status == UNDECIDED:
            ET.SubElement(tc, "skipped", {"message": _x(case.message())})
        ET.SubElement(tc, "system-out").text = _x(details)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def print_result(console: Any, result: GateResult) -> None:
    """The verdict, one line per check, and the gate's result with its exit code."""
    console.print(safe_text(f"Verdict: {result.verdict}", style="bold"))
    console.print(safe_text(f"rule: {result.rule.describe(result.against)}"))
    styles = {PASS: "green", FAIL: "red", UNDECIDED: "yellow"}
    for case in result.cases:
        for ch in case.checks:
            console.print(safe_text(f"{WORDS[ch.status].upper():13} {case.judge} ({case.candidate}): {ch.name}: "
                                    f"{ch.figure}; {ch.detail}", style=styles[ch.status]))
    for c in result.candidates:
        console.print(safe_text(f"{c.candidate}: {WORDS[c.status]}: {c.why}"))
    console.print(safe_text(f"gate {WORDS[result.status]} (exit {result.exit_code})", style=styles[result.status]))


def _append_summary(path: str, text: str, *, db: str, follow_symlinks: bool) -> None:
    """Append `text` (GitHub appends step summaries), writing the whole file again atomically."""
    from brie_bench.atomic import check_target

    target = check_target(path, db=db, follow_symlinks=follow_symlinks)
    try:
        old = target.read_bytes().decode("utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the summary file: {getattr(exc, 'strerror', None) or exc}",
                         path=path) from None
    sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
    _write(path, old + sep + text, db=db, follow_symlinks=follow_symlinks)


def _write(path: str, text: str, *, db: str, follow_symlinks: bool) -> None:
    from brie_bench.atomic import write_text

    try:
        write_text(path, text, db=db, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc.strerror or exc}", path=path) from None


@click.command("gate")
@click.argument("run", required=False)
@click.option("--against", default=None, metavar="RUN_B", help="A previous run to compare with (--not-worse-than).")
@click.option("--min-win-rate", "min_win_rate", default=None, metavar="RATE",
              help="Pass only if the win rate's 95% interval has its lower bound at least RATE (0.6 or 60%). "
                   "Default, with no other threshold: 0.5.")
@click.option("--not-worse-than", "not_worse_than", default=None, metavar="MARGIN",
              help="With --against: pass only if the lower bound of the paired difference A − B is at least "
                   "−MARGIN (0.05 or 5%): non-inferiority.")
@click.option("--judges", "judges", default="all", show_default=True, metavar="all|majority|NAME",
              help="Which judges must pass: every judge, a majority, or the one named.")
@click.option("--require-trusted", is_flag=True,
              help="Every judge the rule looks at must be able to decide (else exit 3); by default a judge that "
                   "cannot decide is skipped, and exit 3 only when none can.")
@click.option("--summary", "summary_path", default=None, metavar="FILE",
              help="Append a Markdown summary to FILE (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--junit", "junit_path", default=None, metavar="FILE",
              help="Write JUnit XML: one test case per judge and candidate.")
@click.option("--follow-symlinks", is_flag=True,
              help="Write an output path that is a symbolic link to the file it points to (else refused).")
@common_options
@click.pass_context
def gate_command(ctx: click.Context, run: str | None, against: str | None, min_win_rate: str | None,
                 not_worse_than: str | None, judges: str, require_trusted: bool, summary_path: str | None,
                 junit_path: str | None, follow_symlinks: bool, db_opt: str | None,
                 plugins_dir_opt: str | None) -> None:
    """Pass or fail RUN (default: the latest) on what its intervals show: exit 0 passed, 1 failed, 3 cannot decide.

    A threshold is met only by the 95% interval, never by the point estimate. Exit 2 is
    bad input. See docs/ci.md for a GitHub Actions workflow.
    """
    from brie_bench.atomic import check_target
    from brie_bench.report.cli import _db
    from brie_bench.report.model import build_report_from_data
    from brie_bench.report.rows import load_run
    from brie_bench.store import Store

    rate = parse_fraction(min_win_rate, "--min-win-rate") if min_win_rate is not None else None
    margin = parse_fraction(not_worse_than, "--not-worse-than") if not_worse_than is not None else None
    if margin is not None and against is None:
        raise InputError("compares with a previous run: give it with --against RUN_B",
                         field="--not-worse-than")
    if against is not None and margin is None:
        raise InputError("needs a non-inferiority margin: add --not-worse-than MARGIN (e.g. 0.05)",
                         field="--against")
    if rate is None and margin is None:
        rate = DEFAULT_MIN_WIN_RATE
    if not judges.strip():
        raise InputError("give all, majority or a judge's name", field="--judges")
    rule = Rule(rate, margin, judges.strip(), require_trusted)
    db = _db(ctx, db_opt, plugins_dir_opt)
    for path in (summary_path, junit_path):
        if path:
            check_target(path, db=db, follow_symlinks=follow_symlinks)
    with Store(db, readonly=True) as store:
        data = load_run(store, run, texts=False)
        data_b = load_run(store, against, texts=False) if against is not None else None
    report = build_report_from_data(data)
    comparison = report_b = None
    if data_b is not None:
        from brie_bench.report.compare import build_comparison

        report_b = build_report_from_data(data_b)
        comparison = build_comparison(data, data_b)
    result = evaluate(report, rule, comparison=comparison, report_b=report_b,
                      against=data_b.run.id if data_b is not None else None)
    from brie_bench.cli import err_console, out_console

    print_result(out_console(), result)
    if summary_path:
        _append_summary(summary_path, summary_markdown(result), db=db, follow_symlinks=follow_symlinks)
        err_console().print(safe_text(f"wrote {summary_path}"))
    if junit_path:
        _write(junit_path, junit_xml(result), db=db, follow_symlinks=follow_symlinks)
        err_console().print(safe_text(f"wrote {junit_path}"))
    ctx.exit(result.exit_code)


__all__ = ["EXIT_FAILED", "EXIT_PASSED", "EXIT_UNDECIDED", "Case", "Check", "GateResult", "Rule", "apply_rule",
           "evaluate", "gate_command", "junit_xml", "parse_fraction", "summary_markdown"]
