"""`brie-bench run`: tie suite, plugins, plan, store and engine together, with progress and a summary."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

from brie_bench.termtable import Notes, legend, new_table, print_items, print_table
from brie_bench.textsafe import safe_text

from brie_bench.engine import Engine, EngineStats
from brie_bench.errors import InputError
from brie_bench.outputs import TRUNCATED
from brie_bench.plan import Plan, build_plan
from brie_bench.plugin_manager import Registry
from brie_bench.preflight import check_models, describe, require_models, stay_offline_if_unreachable
from brie_bench.cost_estimate import estimate_costs, is_local
from brie_bench.prices import Cost, UsageLine, costs_by_name, format_cost, price_table
from brie_bench.runtime import Runtime, build_runtime, versions
from brie_bench.signals import StopOnSignal
from brie_bench import store_api
from brie_bench.store_api import DatabaseGone, Store
from brie_bench.suite import Suite, destination_items
from brie_bench.summary import done_keys, failures, tally


class RichReporter:
    """Progress bars per phase with counts, errors and ETA."""

    def __init__(self, console: Console, live: bool = True) -> None:
        # A person judging at this terminal needs it to themselves: no live redraws then.
        self.progress = Progress(
            TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=console, transient=False, disable=not live)
        self.tasks: dict[str, TaskID] = {}
        self.errors: Counter[str] = Counter()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, name: str, total: int, done: int) -> None:
        self.tasks[name] = self.progress.add_task(name, total=total, completed=done, errors=0)

    def advance(self, name: str, ok: bool) -> None:
        if not ok:
            self.errors[name] += 1
        self.progress.update(self.tasks[name], advance=1, errors=self.errors[name])

    def finish(self, name: str) -> None:
        self.progress.refresh()


def run_metadata(suite: Suite, runtime: Runtime) -> dict[str, Any]:
    """What was compared and judged, with provenance (e.g. an adapter's training manifest). No secrets."""
    contenders = {}
    for name, backend in runtime.contenders.items():
        contenders[name] = {**backend.identity(), "provenance": backend.provenance(), "local": is_local(backend),
                            "role": "baseline" if name == suite.baseline else "candidate"}
    judges = {}
    for name, judge in runtime.judges.items():
        judges[name] = {**judge.identity(), "name": name, "model": runtime.judge_model(name),
                        "local": is_local(judge.backend)}
        shown = getattr(judge, "shown_options", None)  # a judge may hide options its mode ignores
        if callable(shown):
            judges[name]["options"] = shown()
    return {"contenders": contenders, "judges": judges, "baseline": suite.baseline}


def cost_text(costs: dict[str, tuple[Cost, bool]], total_label: str) -> str:
    """"baseline, brie: local, no price; gpt-4o: $0.0123; total $0.0123" (names sorted)."""
    return "; ".join(cost_parts(costs, total_label))


def cost_parts(costs: dict[str, tuple[Cost, bool]], total_label: str) -> list[str]:
    """`cost_text`'s parts, each whole on a terminal line ("total $0.8002" never loses its figure)."""
    local = sorted(n for n, (_, is_loc) in costs.items() if is_loc)
    priced = sorted(n for n, (_, is_loc) in costs.items() if not is_loc)
    parts = [f"{n}: {format_cost(costs[n][0])}" for n in priced]
    if local:
        parts.append(f"{', '.join(local)}: local, no price")
    if priced:
        total = sum((costs[n][0] for n in priced), Cost(0.0, True))
        parts.append(f"{total_label} {format_cost(total)}")
    else:
        parts.append(f"{total_label}: local, no price")
    return parts


def print_plan(console: Console, suite: Suite, plan: Plan, store: Store | None, run_id: str | None,
               runtime: Runtime | None = None) -> None:
    stored_gen = store.stored_generation_keys([u.key for u in plan.generations]) if store else set()
    stored_judg = store.stored_judgment_keys(run_id) if (store and run_id) else set()
    table = new_table(f"Plan for {suite.name}" + (f" (resuming run {run_id})" if run_id else " (new run)"))
    for col in ("section", "prompts", "samples", "orders", "gen", "judge", "stored"):
        table.add_column(col, justify="left" if col in ("section", "orders") else "right")
    gen_by_section: Counter[str] = Counter()
    seen: set[str] = set()
    for link in plan.links:
        if link.key not in seen:
            seen.add(link.key)
            gen_by_section[link.section] += 1
    judg_by_section: Counter[str] = Counter(u.section for u in plan.judgments)
    stored_by_section: Counter[str] = Counter(u.section for u in plan.judgments if u.key in stored_judg)
    for s in suite.sections:
        table.add_row(safe_text(s.name), str(len(s.prompts)), str(s.settings.samples), s.settings.orders,
                      str(gen_by_section[s.name]), str(judg_by_section[s.name]),
                      f"{stored_by_section[s.name]}/{judg_by_section[s.name]}")
    print_table(console, table)
    legend(console, [("gen", "generation calls"), ("judge", "judge calls"),
                     ("stored", "judgments already stored")])
    per_judge: Counter[str] = Counter(u.judge for u in plan.judgments)
    print_items(console, [f"generation calls: {len(plan.generations)} ({len(stored_gen)} already stored)",
                          f"judge calls: {len(plan.judgments)} ({sum(stored_by_section.values())} already stored)",
                          ", ".join(f"{j}: {n}" for j, n in sorted(per_judge.items()))], sep="; ", hang="  ")
    if runtime is not None:
        estimates = estimate_costs(suite, runtime, plan, stored_gen, stored_judg)
        local = {n: is_local(b) for n, b in runtime.contenders.items()}
        local.update({n: is_local(j.backend) for n, j in runtime.judges.items()})
        parts = cost_parts({n: (c, local.get(n, False)) for n, c in estimates.items()}, "total")
        print_items(console, [f"estimated cost of what is left: {parts[0]}", *parts[1:]], sep="; ", hang="  ")
        for problem in runtime.problems():
            console.print(safe_text(f"warning: {problem}", style="yellow"))


def print_summary(console: Console, store: Store, run_id: str, stats: EngineStats,
                  runtime: Runtime | None = None, suite: Suite | None = None) -> None:
    """The end-of-run table (per judge and candidate) and what is still failed, from the store."""
    rows = store.judgments(run_id)
    errors = store.errors(run_id)
    failed = failures(errors, done_keys(store, run_id, errors))
    tallies = tally(rows)
    candidates = sorted({t.candidate for t in tallies})
    baseline = tallies[0].baseline if tallies else (suite.baseline if suite else "the baseline")
    judge_names = list(runtime.judges) if runtime is not None else []
    for t in tallies:
        if t.judge not in judge_names:
            judge_names.append(t.judge)
    title = (f"Run {run_id}: {candidates[0]} against {baseline}" if len(candidates) == 1
             else f"Run {run_id}: each candidate against {baseline}")
    table = new_table(title)
    # Several candidates: each one heads a group of judge rows (a column of its own would not fit 80).
    grouped = len(candidates) > 1
    for col in ("candidate / judge" if grouped else "judge", "W", "L", "T", "inv", "win%", "fail", "retried"):
        table.add_column(col, justify="left" if "judge" in col else "right")
    notes = Notes()

    def counts(name: str) -> tuple[str, str]:
        f = failed.get(name)
        if f is None:
            return "0", "0"
        note = notes.mark(f"{name}: {f.failed} unit{'s' if f.failed != 1 else ''} still failed, last error "
                          f"{f.kind}: {f.message}") if f.failed else ""
        return f"{f.failed}{note}", str(f.retried)

    indent = "  " if grouped else ""
    for candidate in candidates:
        if grouped:
            table.add_row(safe_text(candidate, style="bold"), *[""] * 7)
        for t in (t for name in judge_names for t in tallies if t.judge == name and t.candidate == candidate):
            rate = f"{t.win_rate:.1%}" if t.win_rate is not None else "-"
            if t.no_information:  # verdicts that follow position or label: marked, no win rate
                from brie_bench.stats.bias import ADVICE

                rate = "no info" + notes.mark(f"{t.judge}: {t.no_information}. {ADVICE}")
            table.add_row(safe_text(indent + t.judge), str(t.wins), str(t.losses), str(t.ties), str(t.invalid),
                          rate, *counts(t.judge))
    for name in judge_names:  # every call failed (or none was made): the judge still gets its row
        if not any(t.judge == name for t in tallies):
            table.add_row(safe_text(name), "-", "-", "-", "-", "-", *counts(name))
    print_table(console, table)
    legend(console, [("W/L/T", "comparisons won/lost/tied (both orders of a pair count once)"),
                     ("inv", "invalid, never counted"), ("win%", "ties count half"),
                     ("fail", "judge calls still failed; a rerun retries them"),
                     ("retried", "failed attempts tried again")])
    notes.print(console, style="red")
    for name, f in sorted(failed.items()):
        if name in judge_names or not (f.failed or f.retried):
            continue
        line = f"{name}: {f.failed} generation{'s' if f.failed != 1 else ''} still failed, {f.retried} failed " \
               f"attempt{'s' if f.retried != 1 else ''} retried"
        if f.failed:
            line += f"; last error {f.kind}: {f.message}"
        console.print(safe_text(line, style="red" if f.failed else None))
    console.print(safe_text(
        f"generations: {stats.generations_done} new, {stats.generations_cached} cached, "
        f"{stats.generations_failed} failed; judgments: {stats.judgments_done} new, {stats.judgments_cached} "
        f"stored, {stats.judgments_failed} failed, {stats.judgments_blocked} waiting on failed generations; "
        f"model calls: {stats.calls}, retries: {stats.retries}"))
    if runtime is not None and suite is not None:
        lines = [UsageLine(r.judge, r.judge_model, r.input_tokens, r.output_tokens,
                           is_local(judge.backend if (judge := runtime.judges.get(r.judge)) else None))
                 for r in rows]
        lines += [UsageLine(g["contender"], g["model"], g["input_tokens"], g["output_tokens"],
                            is_local(runtime.contenders.get(g["contender"])))
                  for g in store.run_generations(run_id)]
        costs = costs_by_name(price_table(suite.spec.prices), lines)
        if costs:
            parts = cost_parts(costs, "run total")
            print_items(console, [f"cost: {parts[0]}", *parts[1:]], sep="; ", hang="  ")
    cut = [e for e in errors if e["kind"] == TRUNCATED]
    if cut:
        units = len({e["unit_key"] for e in cut})
        console.print(safe_text(f"truncated: {len(cut)} stored text{'s' if len(cut) != 1 else ''} of {units} "
                                f"unit{'s' if units != 1 else ''} cut to max_stored_chars (marked in the text; "
                                f"last: {cut[-1]['message']})", style="yellow"))
    shown = Counter(stats.failures)  # the same failure of many units is one line with a count
    for line, n in list(shown.items())[:10]:
        console.print(safe_text(f"  failed {line}" + (f" (×{n})" if n > 1 else ""), style="red"))
    if len(shown) > 10:
        console.print(safe_text(f"  ... and {len(shown) - 10} other failures (brie-bench report lists them)",
                                style="red"))


class LibraryOutput:
    """While a run lasts: library log records and warnings go to the run log, never the terminal.

    Some libraries give their own logger a handler that writes to the terminal
    (huggingface_hub does, for its "Retrying in 8s [Retry 4/5]" lines): `sweep` takes
    those handlers off (their records still reach the log through the root logger) and
    `restore` puts them back. `sweep` is called again after heavy imports, for loggers
    that a library created in the meantime.
    """

    def __init__(self) -> None:
        self.removed: list[tuple[logging.Logger, logging.Handler, bool]] = []

    def sweep(self) -> None:
        for logger in [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
            for handler in list(logger.handlers):
                if _writes_to_terminal(handler):
                    self.removed.append((logger, handler, logger.propagate))
                    logger.removeHandler(handler)
                    logger.propagate = True

    def restore(self) -> None:
        for logger, handler, propagate in reversed(self.removed):
            logger.addHandler(handler)
            logger.propagate = propagate
        self.removed.clear()


def _writes_to_terminal(handler: logging.Handler) -> bool:
    """A plain StreamHandler, the kind a library adds for itself (stderr, bound at its import).

    Exactly that class: subclasses (FileHandler, test-capture handlers) are left alone.
    """
    return type(handler) is logging.StreamHandler


@contextmanager
def library_output_to(log_path: Path) -> Iterator[LibraryOutput]:
    """Send Python warnings and library log records to `log_path` instead of the run display.

    transformers, peft, huggingface_hub and the SDKs warn through `warnings` and `logging`; on a
    terminal that shows live progress bars those lines tear the display apart.
    The file is created only when something is written.
    """
    writable = os.access(log_path.parent if str(log_path.parent) else ".", os.W_OK)
    handler: logging.Handler = (logging.FileHandler(log_path, encoding="utf-8", delay=True) if writable
                                else logging.NullHandler())  # a read-only folder: drop them, never crash
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    output = LibraryOutput()
    output.sweep()
    try:
        yield output
    finally:
        output.restore()
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()


def log_path_for(db: str) -> Path:
    """The run log next to the database: brie-bench.db -> brie-bench.log (in this folder for a server)."""
    return store_api.log_path_for(db)


def execute_run(suite: Suite, registry: Registry, *, db: str, seed: int | None = None,
                concurrency: int | None = None, limit: int | None = None, dry_run: bool = False,
                new_run: bool = False, console: Console | None = None,
                power_plan: dict[str, Any] | None = None) -> int:
    """Run (or resume) a suite; returns the exit code (0 ok, 1 failed units).

    `power_plan` (``{"effect": ..., "pilot": ...}``) adds the power plan to a dry run
    (`brie_bench.planning`); it implies `dry_run`.
    """
    console = console or Console()
    run_seed = suite.spec.seed if seed is None else seed
    runtime = build_runtime(suite, registry, seed=run_seed)  # judges sample with the run's seed too
    plan = build_plan(suite.limited(limit), runtime.contenders, runtime.judges, run_seed)
    fingerprint = suite.fingerprint()
    if dry_run or power_plan is not None:
        store = store_api.open_if_stored(db)
        run_id = None if (store is None or new_run) else store.find_resumable_run(fingerprint, run_seed)
        try:
            print_plan(console, suite, plan, store, run_id, runtime)
            console.print(safe_text("calls go to:"))
            for parts in destination_items(runtime):  # broken only between parts: a URL keeps its "->"
                print_items(console, [f"  {parts[0]}", *parts[1:]], sep=" ", hang="    ")
            checks = check_models(_model_owners(runtime))
            if checks:
                console.print(safe_text("local models:"))
                for check in checks:
                    console.print(safe_text(f"  {describe(check)}"))
            if power_plan is not None:
                from brie_bench.planning import print_power_plan

                options = dict(power_plan)
                pilot_id = options.pop("pilot", None)
                pilot = None
                if pilot_id is not None:
                    if store is None:
                        raise InputError(f"--pilot {pilot_id}: the database does not exist")
                    from brie_bench.report.pilot import pilot_variance

                    pilot = pilot_variance(store, pilot_id)
                print_power_plan(console, suite, plan, runtime, pilot=pilot, **options)
        finally:
            if store:
                store.close()
        return 0
    runtime.check_ready()
    live = all(j.concurrent for j in runtime.judges.values())
    # Something moves on the screen from the start: the model check and the heavy imports take seconds.
    with library_output_to(log_path_for(db)), _status(console, "checking models…", live):
        checks = require_models(_model_owners(runtime))  # exit 2 in seconds, before the database is touched
        stay_offline_if_unreachable(checks)
    with library_output_to(log_path_for(db)) as library, Store(db) as store:
        with _status(console, "loading libraries and models…", live):
            runtime.prepare()  # heavy imports once, in this thread, before any worker thread starts
        library.sweep()  # loggers the heavy imports created
        # Processes started together on one file join one run and share its units (leases).
        run_id, created = store.resume_or_create_run(
            new=new_run, suite_name=suite.name, suite_path=suite.path, fingerprint=fingerprint,
            snapshot=suite.snapshot(), seed=run_seed, versions=versions(), metadata=run_metadata(suite, runtime))
        if created:
            console.print(safe_text(f"run {run_id}: {suite.name} (seed {run_seed})"))
        else:
            console.print(safe_text(f"resuming run {run_id}: {suite.name} (seed {run_seed})"))
        store.mark_run(run_id, "running")
        with RichReporter(console, live=live) as reporter:
            engine = Engine(store, run_id, runtime, run_seed=run_seed, reporter=reporter, concurrency=concurrency,
                            max_stored_chars=suite.spec.max_stored_chars)
            try:
                with StopOnSignal() as stopper:  # SIGINT, SIGTERM, SIGHUP: unwind, give leases back, then exit
                    try:
                        stats = asyncio.run(_run_and_close(engine, runtime, plan, stopper))
                    except asyncio.CancelledError:
                        interrupted = stopper.interrupted()
                        if interrupted is None:
                            raise
                        raise interrupted from None
            except BaseException:
                try:
                    store.mark_run(run_id, "interrupted")
                except Exception as exc:
                    # The database itself failed (damaged, disk full, deleted, a lost server): report that error.
                    if not (store_api.is_database_error(exc) or isinstance(exc, DatabaseGone)):
                        raise

                raise
        store.mark_run(run_id, "complete" if stats.failed == 0 else "incomplete")
        store.check_present()  # counts are reported as stored only while the file still holds them
        print_summary(console, store, run_id, stats, runtime, suite)
        return 0 if stats.failed == 0 else 1


def _model_owners(runtime: Runtime) -> dict[str, object]:
    """Every backend that may load a model of its own: contenders, then judges' backends ("judge NAME")."""
    owners: dict[str, object] = dict(runtime.contenders)
    owners.update({f"judge {name}": j.backend for name, j in runtime.judges.items() if j.backend is not None})
    return owners


@contextmanager
def _status(console: Console, text: str, live: bool) -> Iterator[None]:
    """A transient spinner line while nothing else is on screen (none when a person judges at this terminal)."""
    if not live:
        yield
        return
    with console.status(text):
        yield


async def _run_and_close(engine: Engine, runtime: Runtime, plan: Plan, stopper: StopOnSignal | None = None) -> EngineStats:
    if stopper is not None:
        stopper.attach()
    try:
        return await engine.run(plan)
    finally:
        try:
            await runtime.aclose()
        finally:
            if stopper is not None:
                stopper.detach()
