"""How long `brie-bench report` takes, and how big the HTML gets, for a run with many judgments.

Builds a synthetic run in a temporary store through the store's own public methods
(`create_run`, `save_generation`, `link_generations`, `save_judgment`, so the file
always has the current schema; no models, no engine): prompts in four sections, one
of them judged in both orders, four judges with per-criterion scores and realistic
answer lengths (about 0.4-1.4 KB per answer, 0.3-0.6 KB per judge answer). Then
times, each in a fresh process (`python -m brie_bench --db ... report`, what a
person runs, imports included):

* `report --json` (load without answer texts, every statistic, write the JSON);
* `report --html` (load with texts, statistics, render, write), and the file size;
* side by side with the previous code (`--previous`, default HEAD, checked out in a
  temporary git worktree): `report --json` in a fresh process, and load and statistics
  apart, each tree's code in its own process. The 1-minute load average is printed with
  the timings: the machine these run on is shared. `--repeat N` runs the side-by-side
  timings N times, interleaved, and keeps each figure's fastest. When the previous code
  has an older schema version, it reads a copy of the store taken back to that version
  (`store_for`: the columns renamed since renamed back), so both time the same rows.

    python benchmarks/report_scale.py [--judgments 10000] [--no-html]

Ends with: RESULT report_seconds=... report_cpu_seconds=... html_seconds=... size_mb=... judgments=...
(`report_seconds` is `report --json`; the targets: 1 s at 10,000 judgments, 3 s at
100,000; the HTML one: 10 s and 25 MB at 10,000.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from brie_bench.rows import GenerationRow, JudgmentRow  # noqa: E402
from brie_bench.store import Store  # noqa: E402
from brie_bench.store_api import ADDED_COLUMNS, RENAMED_COLUMNS, SCHEMA_VERSION  # noqa: E402

WORDS = ("being time world care anxiety silence dawn river stone breath light thought other face "
         "gift absence presence language body memory desire ethics freedom horizon question").split()
CRITERIA = ("creativity", "coherence", "depth", "engagement", "writing_quality")
JUDGES = ("claude", "gpt", "gemini", "local")


def words(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi))).tolist())


def build(db: Path, n_judgments: int, seed: int = 0) -> str:
    """Create one run with about `n_judgments` judgments (at least 20: a prompt per section); returns its id."""
    rng = np.random.default_rng(seed)
    per_prompt = len(JUDGES) * 1.25  # three sections single order, one both orders
    per_section = max(1, int(round(n_judgments / per_prompt)) // 4)  # at least one prompt each: 20 judgments
    sections = [("philosophy", "one"), ("contemplative", "one"), ("creative", "one"), ("brainstorming", "both")]
    prompts = {name: [(f"{name}-{i + 1}", f"Question {i}: " + words(rng, 8, 30)) for i in range(per_section)]
               for name, _ in sections}
    snapshot = {"name": "scale", "baseline": "baseline",
                "sections": [{"name": n, "prompts": [{"id": i, "text": t} for i, t in prompts[n]]}
                             for n, _ in sections]}
    meta = {"baseline": "baseline",
            "contenders": {"baseline": {"backend": "openai", "model": "gpt-4o-mini", "options": {}, "role": "baseline"},
                           "brie": {"backend": "hf", "model": "Qwen/Qwen2.5-3B-Instruct",
                                    "options": {"adapter": "runs/brie-v2"}, "role": "candidate",
                                    "provenance": {"base_model": "Qwen/Qwen2.5-3B-Instruct", "lora_r": 16}}},
            "judges": {j: {"name": j, "judge": "llm", "model": f"{j}-model", "backend": {"backend": "openai"},
                           "options": {}} for j in JUDGES}}
    with Store(db) as store:
        # The build only: no fsync per commit (the timed part reads, it never writes).
        store.conn.execute("PRAGMA synchronous=OFF")
        run_id = store.create_run(suite_name="scale", suite_path="scale.yaml", fingerprint="scale", snapshot=snapshot,
                                  seed=seed, versions={"brie_bench": "bench"}, metadata=meta)
        links = []
        now = time.time()
        for name, orders in sections:
            for pid, text in prompts[name]:
                keys = {}
                for contender, lo, hi in (("baseline", 60, 180), ("brie", 80, 220)):
                    key = f"{contender}-{name}-{pid}"
                    keys[contender] = key
                    store.save_generation(GenerationRow(
                        key=key, backend="synthetic", model=contender, spec={},
                        messages=[{"role": "user", "content": text}], params={}, sample_index=0,
                        text=words(rng, lo, hi), finish_reason="stop", input_tokens=30, output_tokens=200,
                        latency_s=1.0))
                    links.append((name, pid, 0, contender, key))
                brie_quality = rng.normal(0.3, 1.0)
                for judge in JUDGES:
                    first_ft = bool(rng.integers(0, 2))
                    for order in ((0, 1) if orders == "both" else (0,)):
                        ft_a = first_ft if order == 0 else not first_ft
                        a, b = ("brie", "baseline") if ft_a else ("baseline", "brie")
                        u = rng.random()
                        ft_wins = brie_quality + rng.normal(0, 1) > 0
                        verdict = "invalid" if u < 0.03 else "tie" if u < 0.1 else ("A" if ft_wins == ft_a else "B")
                        winner = None if verdict == "invalid" else "tie" if verdict == "tie" else (a if verdict == "A"
                                                                                                 else b)
                        scores = {lab: {c: int(rng.integers(1, 6)) for c in CRITERIA} for lab in ("A", "B")}
                        raw = ("Reasoning: " + words(rng, 30, 70) + "\n" + "\n".join(
                            f"{c}: A={scores['A'][c]}, B={scores['B'][c]}" for c in CRITERIA)
                            + f"\nWinner: {verdict if verdict != 'invalid' else '?'}")
                        store.save_judgment(JudgmentRow.from_mapping({
                            "run_id": run_id, "unit_key": f"{judge}-{name}-{pid}-{order}", "section": name,
                            "prompt_id": pid, "sample_index": 0, "judge": judge, "judge_type": "llm",
                            "judge_model": f"{judge}-model", "baseline": "baseline", "candidate": "brie",
                            "presentation_order": order, "label_a": a, "label_b": b, "gen_key_a": keys[a],
                            "gen_key_b": keys[b], "verdict": verdict, "winner": winner, "p_a": None,
                            "scores": scores, "reasoning": None,
                            "invalid_reason": "no verdict line" if verdict == "invalid" else None, "raw": raw,
                            "input_tokens": 800, "output_tokens": 120, "latency_s": 2.0, "created_at": now}))
        store.link_generations(run_id, links)
        store.mark_run(run_id, "complete")
    return run_id


def timed_report(db: Path, run_id: str, *flags: str, tree: Path = ROOT) -> tuple[float, float]:
    """(wall, CPU) seconds of `brie-bench report RUN FLAGS` in a fresh process (imports included).

    The CPU time (user + system of the child) is what the wall time would be on a quiet
    machine for this single-threaded command; on a shared one the wall time also counts
    waiting for a core.
    """
    argv = [sys.executable, "-m", "brie_bench", "--db", str(db), "report", run_id, *flags]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tree), env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@contextlib.contextmanager
def previous_tree(rev: str) -> Iterator[Path | None]:
    """A checkout of `rev` (the previous code) in a temporary git worktree; None when git cannot make one.

    `git worktree add` leaves the working tree being measured untouched; the worktree is
    removed afterwards.
    """
    where = Path(tempfile.mkdtemp(prefix="brie-prev-"))
    where.rmdir()
    made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    try:
        yield where if made else None
    finally:
        if made:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def store_for(tree: Path, db: Path, folder: Path) -> Path:
    """`db` as the code in `tree` reads it: `db` itself, or, when that code's schema version is older, a
    copy taken back to it (every column added since dropped, with the triggers, which came with version
    4; every column renamed since renamed back; `meta` set), as that code wrote it."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    version = int(subprocess.run([sys.executable, "-c", "from brie_bench.store import SCHEMA_VERSION as v; print(v)"],
                                 check=True, capture_output=True, text=True, cwd=str(tree), env=env).stdout.split()[-1])
    if version >= SCHEMA_VERSION:
        return db
    older = folder / f"schema-{version}.db"
    src, dst = sqlite3.connect(db), sqlite3.connect(older)
    try:
        src.backup(dst)
        if version < 4:
            for (name,) in dst.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
                dst.execute(f"DROP TRIGGER {name}")
        for (table, column), added_in in ADDED_COLUMNS.items():
            if version < added_in:
                dst.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for (table, column), (renamed_in, before) in RENAMED_COLUMNS.items():
            if version < renamed_in:
                dst.execute(f"ALTER TABLE {table} RENAME COLUMN {column} TO {before}")
        dst.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        dst.commit()
    finally:
        src.close()
        dst.close()
    return older


_INPROCESS = """
import inspect, sys, time
from brie_bench.store import Store
from brie_bench.report.rows import load_run
from brie_bench.report.model import build_report_from_data
# As `report --json` loads (answer texts read only when shown), where the code has that choice.
lazy = {"lazy": True} if "lazy" in inspect.signature(load_run).parameters else {}
t0, c0 = time.perf_counter(), time.process_time()
with Store(sys.argv[1], readonly=True) as store:
    data = load_run(store, sys.argv[2], texts=False, **lazy)
    t1, c1 = time.perf_counter(), time.process_time()
    build_report_from_data(data)
    t2, c2 = time.perf_counter(), time.process_time()
print(t1 - t0, t2 - t1, c2 - c0)
"""


def inprocess(tree: Path, db: Path, run_id: str) -> tuple[float, float, float]:
    """(load wall, statistics wall, CPU) seconds of `load_run` + `build_report_from_data` from `tree`'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _INPROCESS, str(db), run_id], check=True, capture_output=True,
                         text=True, cwd=str(tree), env=env).stdout.split()
    load_s, stats_s, cpu_s = map(float, out[-3:])
    return load_s, stats_s, cpu_s


def load_average() -> str:
    """The 1-minute load average: the machine is shared, so every timing says how busy it was."""
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=10_000)
    parser.add_argument("--no-html", action="store_true", help="time `report --json` only")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the side-by-side timing of the previous code (--previous)")
    parser.add_argument("--previous", default="HEAD",
                        help="the git revision timed side by side (checked out in a temporary worktree)")
    parser.add_argument("--db", type=Path, help="reuse this store (built by an earlier run, name its --run); "
                        "a path that does not exist yet is where the store is built and kept")
    parser.add_argument("--run", help="the run id in --db")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the side-by-side comparison this many times, interleaved, and keep each "
                             "figure's fastest (a shared machine's load changes from one run to the next)")
    args = parser.parse_args()
    target_s = 1.0 if args.judgments <= 10_000 else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "scale.db"
        t0 = time.perf_counter()
        reuse = args.db is not None and args.db.exists()
        if reuse and not args.run:
            parser.error(f"--db {args.db} exists: name its run with --run")
        run_id = args.run if reuse else build(db, args.judgments)
        built = time.perf_counter() - t0
        if args.db is not None and not reuse:  # kept: profile or time it again with --db/--run
            print(f"built the store at {db} (run {run_id}); reuse it with --db {db} --run {run_id}")
        with Store(db, readonly=True) as store:
            n = store.count_judgments(run_id)
        load_before = load_average()
        json_s, json_cpu = timed_report(db, run_id, "--json", str(Path(tmp) / "report.json"))
        print(f"built {n} judgments in {built:.1f}s; report --json {json_s:.2f}s wall, {json_cpu:.2f}s CPU "
              f"(load average {load_before})")
        html = ""
        if not args.no_html:
            out = Path(tmp) / "report.html"
            html_s, html_cpu = timed_report(db, run_id, "--html", str(out))
            size_mb = out.stat().st_size / 1e6
            print(f"report --html {html_s:.2f}s wall, {html_cpu:.2f}s CPU, {size_mb:.2f} MB")
            html = (f" html_seconds={html_s:.2f} html_cpu_seconds={html_cpu:.2f} size_mb={size_mb:.2f} "
                    "html_target_s=10 html_target_mb=25")
        compare = ""
        if not args.no_compare:
            with previous_tree(args.previous) as prev:
                if prev is None:
                    print(f"no git worktree of {args.previous}: no side-by-side timing")
                else:
                    # Interleaved, the current code first, so a change in load hits both alike; with
                    # --repeat, each figure's fastest of the rounds.
                    prev_db = store_for(prev, db, Path(tmp))
                    rounds = []
                    for _ in range(max(1, args.repeat)):
                        rounds.append((timed_report(db, run_id, "--json", str(Path(tmp) / "now.json")),
                                       timed_report(prev_db, run_id, "--json", str(Path(tmp) / "prev.json"),
                                                    tree=prev),
                                       inprocess(ROOT, db, run_id), inprocess(prev, prev_db, run_id)))
                    now_json = min(r[0][0] for r in rounds)
                    prev_json, prev_cpu = min(r[1][0] for r in rounds), min(r[1][1] for r in rounds)
                    now_parts = tuple(min(r[2][i] for r in rounds) for i in range(3))
                    prev_parts = tuple(min(r[3][i] for r in rounds) for i in range(3))
                    load_after = load_average()
                    print(f"side by side, fastest of {len(rounds)} (load average {load_before} -> {load_after}):")
                    print(f"  report --json      now {now_json:6.2f}s wall   previous ({args.previous}) "
                          f"{prev_json:6.2f}s wall, {prev_cpu:.2f}s CPU")
                    print(f"  load_run           now {now_parts[0]:6.2f}s        previous {prev_parts[0]:6.2f}s")
                    print(f"  build_report       now {now_parts[1]:6.2f}s        previous {prev_parts[1]:6.2f}s")
                    compare = (f" previous_report_seconds={prev_json:.2f} rerun_report_seconds={now_json:.2f}"
                               f" load_seconds={now_parts[0]:.2f} previous_load_seconds={prev_parts[0]:.2f}"
                               f" statistics_seconds={now_parts[1]:.2f} previous_statistics_seconds={prev_parts[1]:.2f}"
                               f" load_after={load_after}")
        print(f"RESULT report_seconds={json_s:.2f} report_cpu_seconds={json_cpu:.2f}{html}{compare} judgments={n} "
              f"target_s={target_s:g} load_before={load_before}")


if __name__ == "__main__":
    main()
