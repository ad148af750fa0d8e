"""`brie-bench run`: tie suite, plugins, plan, store and engine together, with progress and a summary."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

from brie_bench.textsafe import safe_text

from brie_bench.engine import Engine, EngineStats
from brie_bench.plan import Plan, build_plan
from brie_bench.plugin_manager import Registry
from brie_bench.prices import Cost, cost, format_cost, price_table
from brie_bench.runtime import Runtime, build_runtime, versions
from brie_bench.store import Store
from brie_bench.suite import Suite
from brie_bench.summary import error_counts, tally


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

    def __enter__(self) -> "RichReporter":
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
        contenders[name] = {**backend.identity(), "provenance": backend.provenance(), "local": backend.local,
                            "role": "baseline" if name == suite.baseline else "candidate"}
    judges = {name: {**judge.identity(), "name": name, "model": runtime.judge_model(name)}
              for name, judge in runtime.judges.items()}
    return {"contenders": contenders, "judges": judges, "baseline": suite.baseline}


def estimate_costs(suite: Suite, runtime: Runtime, plan: Plan, stored_gen: set[str],
                   stored_judg: set[str]) -> dict[str, Cost]:
    """A rough cost of the calls not yet stored: 4 characters a token, answers at full max_tokens,
    a judging template of about 500 tokens and judge answers of up to 400 tokens."""
    table = price_table(suite.spec.prices)
    out: dict[str, Cost] = {}
    for unit in plan.generations:
        if unit.key in stored_gen:
            continue
        backend = runtime.contenders[unit.contender]
        tokens_in = sum(len(m.content) for m in unit.request.messages) // 4
        c = cost(table, backend.model, tokens_in, unit.request.params.max_tokens, local=backend.local)
        out[unit.contender] = out.get(unit.contender, Cost(0.0, True)) + c
    max_tokens = {s.name: s.settings.max_tokens for s in suite.sections}
    for unit in plan.judgments:
        if unit.key in stored_judg:
            continue
        judge = runtime.judges[unit.judge]
        backend = judge.backend
        tokens_in = 500 + len(unit.prompt.text) // 4 + 2 * max_tokens[unit.section]
        tokens_out = min(int(getattr(judge.options, "max_tokens", 400) or 400), 400)
        c = cost(table, backend.model if backend else None, tokens_in, tokens_out,
                 local=backend is None or backend.local)
        out[unit.judge] = out.get(unit.judge, Cost(0.0, True)) + c
    return out


def print_plan(console: Console, suite: Suite, plan: Plan, store: Store | None, run_id: str | None,
               runtime: Runtime | None = None) -> None:
    stored_gen = store.stored_generation_keys([u.key for u in plan.generations]) if store else set()
    stored_judg = store.stored_judgment_keys(run_id) if (store and run_id) else set()
    table = Table(title=safe_text(f"Plan for {suite.name}" + (f" (resuming run {run_id})" if run_id else " (new run)")))
    for col in ("section", "prompts", "samples", "orders", "generation calls", "judge calls", "stored"):
        table.add_column(col)
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
    console.print(table)
    per_judge: Counter[str] = Counter(u.judge for u in plan.judgments)
    console.print(safe_text(
        f"generation calls: {len(plan.generations)} ({len(stored_gen)} already stored); "
        f"judge calls: {len(plan.judgments)} ({len(stored_judg)} already stored); "
        + ", ".join(f"{j}: {n}" for j, n in sorted(per_judge.items()))))
    if runtime is not None:
        estimates = estimate_costs(suite, runtime, plan, stored_gen, stored_judg)
        total = sum(estimates.values(), Cost(0.0, True))
        console.print(safe_text("estimated cost of what is left: " + ", ".join(
            f"{name}: {format_cost(c)}" for name, c in estimates.items()) + f"; total {format_cost(total)}"))


def print_summary(console: Console, store: Store, run_id: str, stats: EngineStats,
                  runtime: Runtime | None = None, suite: Suite | None = None) -> None:
    rows = store.judgments(run_id)
    errors = error_counts(store.errors(run_id))
    table = Table(title=f"Run {run_id}: each candidate against the baseline", box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False,
                  caption="W/L/T: comparisons the candidate won/lost/tied (ties count half in win%; a pair judged in both orders counts once, a tie if the orders disagree); inv: invalid, never counted; retry/fail: judge calls retried/failed")
    tallies = tally(rows)
    widths = {"judge": max([len(t.judge) for t in tallies] + [5]),
              "model": max([len(t.judge_model or "-") for t in tallies] + [5]),
              "candidate": max([len(t.candidate) for t in tallies] + [9])}
    for col in ("judge", "model", "candidate", "W", "L", "T", "inv", "win%", "retry", "fail"):
        table.add_column(col, overflow="fold", no_wrap=col not in widths, min_width=min(24, widths.get(col, 0)))
    for t in tallies:
        rate = f"{t.win_rate:.1%}" if t.win_rate is not None else "-"
        e = errors.get(t.judge, {"retried": 0, "failed": 0})
        table.add_row(safe_text(t.judge), safe_text(t.judge_model or "-"), safe_text(t.candidate),
                      str(t.wins), str(t.losses), str(t.ties), str(t.invalid), rate, str(e["retried"]),
                      str(e["failed"]))
    console.print(table)
    contender_errors = {n: e for n, e in errors.items() if n not in {t.judge for t in tallies}}
    for name, e in sorted(contender_errors.items()):
        console.print(safe_text(f"{name}: {e['retried']} calls retried, {e['failed']} failed"))
    console.print(safe_text(
        f"generations: {stats.generations_done} new, {stats.generations_cached} cached, "
        f"{stats.generations_failed} failed; judgments: {stats.judgments_done} new, {stats.judgments_cached} "
        f"stored, {stats.judgments_failed} failed, {stats.judgments_blocked} waiting on failed generations; "
        f"model calls: {stats.calls}, retries: {stats.retries}"))
    if runtime is not None and suite is not None:
        table_prices = price_table(suite.spec.prices)
        costs: dict[str, Cost] = {}
        for r in rows:
            backend = runtime.judges[r["judge"]].backend if r["judge"] in runtime.judges else None
            c = cost(table_prices, r["judge_model"], r["input_tokens"], r["output_tokens"],
                     local=backend is None or backend.local)
            costs[r["judge"]] = costs.get(r["judge"], Cost(0.0, True)) + c
        for g in store.run_generations(run_id):
            backend = runtime.contenders.get(g["contender"])
            c = cost(table_prices, g["model"], g["input_tokens"], g["output_tokens"],
                     local=backend is None or backend.local)
            costs[g["contender"]] = costs.get(g["contender"], Cost(0.0, True)) + c
        total = sum(costs.values(), Cost(0.0, True))
        console.print(safe_text("cost: " + ", ".join(f"{n}: {format_cost(c)}" for n, c in sorted(costs.items()))
                           + f"; run total {format_cost(total)}"))
    for line in stats.failures[:10]:
        console.print(safe_text(f"  failed {line}", style="red"), soft_wrap=True)


def execute_run(suite: Suite, registry: Registry, *, db: str, seed: int | None = None,
                concurrency: int | None = None, limit: int | None = None, dry_run: bool = False,
                new_run: bool = False, console: Console | None = None) -> int:
    """Run (or resume) a suite; returns the exit code (0 ok, 1 failed units)."""
    console = console or Console()
    runtime = build_runtime(suite, registry)
    run_seed = suite.spec.seed if seed is None else seed
    plan = build_plan(suite.limited(limit), runtime.contenders, runtime.judges, run_seed)
    fingerprint = suite.fingerprint()
    if dry_run:
        from pathlib import Path

        store = Store(db, readonly=True) if Path(db).exists() else None
        run_id = None if (store is None or new_run) else store.find_resumable_run(fingerprint, run_seed)
        print_plan(console, suite, plan, store, run_id, runtime)
        if store:
            store.close()
        return 0
    runtime.check_ready()
    with Store(db) as store:
        run_id = None if new_run else store.find_resumable_run(fingerprint, run_seed)
        if run_id is None:
            run_id = store.create_run(suite_name=suite.name, suite_path=suite.path, fingerprint=fingerprint,
                                      snapshot=suite.snapshot(), seed=run_seed, versions=versions(),
                                      metadata=run_metadata(suite, runtime))
            console.print(safe_text(f"run {run_id}: {suite.name} (seed {run_seed})"))
        else:
            console.print(safe_text(f"resuming run {run_id}: {suite.name} (seed {run_seed})"))
        store.mark_run(run_id, "running")
        live = all(j.concurrent for j in runtime.judges.values())
        with RichReporter(console, live=live) as reporter:
            engine = Engine(store, run_id, runtime, run_seed=run_seed, reporter=reporter, concurrency=concurrency)
            try:
                stats = asyncio.run(_run_and_close(engine, runtime, plan))
            except BaseException:
                store.mark_run(run_id, "interrupted")
                raise
        store.mark_run(run_id, "complete" if stats.failed == 0 else "incomplete")
        print_summary(console, store, run_id, stats, runtime, suite)
        return 0 if stats.failed == 0 else 1


async def _run_and_close(engine: Engine, runtime: Runtime, plan: Plan) -> EngineStats:
    try:
        return await engine.run(plan)
    finally:
        await runtime.aclose()
